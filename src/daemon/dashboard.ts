/**
 * The dashboard (`--ui`): static files under /ui/ (ui/ of the package, uPlot from its npm package,
 * nothing fetched from the network) and a JSON + SSE API under /ui/api/, behind a login with the
 * fileset secret (or a node's credential) or the admin password. Invariants: every /ui/api/ request
 * without a live session cookie gets 401 and changes nothing; the session cookie is HttpOnly,
 * SameSite=Strict, and only a POST with a JSON body can change anything (resolve).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { formatTid, type Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { resolveOpenConflict, type Keep } from './resolve.js';
import type { MetricsView } from './prom-metrics.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
// uPlot from its npm package, wherever npm put it.
const UPLOT = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
const SESSION_MS = 12 * 3600_000;
const COOKIE = 'isync_ui';
const TICK_MS = 1000;

/** The files served under /ui/: name -> [path, content type]. */
const STATIC: Record<string, readonly [string, string]> = {
  '': [join(ROOT, 'ui', 'index.html'), 'text/html; charset=utf-8'],
  'app.js': [join(ROOT, 'ui', 'app.js'), 'text/javascript; charset=utf-8'],
  'style.css': [join(ROOT, 'ui', 'style.css'), 'text/css; charset=utf-8'],
  'uPlot.js': [join(UPLOT, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
  'uPlot.css': [join(UPLOT, 'uPlot.min.css'), 'text/css; charset=utf-8'],
};

/** What the dashboard reads from the running node. */
export interface DashboardSource {
  readonly db: FilesetDb;
  readonly dir: string;
  readonly role: 'server' | 'client';
  readonly view: MetricsView;
  /** Write tokens held now: scope and holder. */
  tokens(): ReadonlyArray<{ readonly scope: string; readonly holder: string }>;
  /** Accepted passwords: the fileset secret or this node's credential, and the admin password. */
  passwords(): readonly string[];
}

interface Sample {
  readonly t: number;
  readonly lag: number;
  readonly records: number;
  readonly bytes: number;
}

export class Dashboard {
  readonly #src: () => DashboardSource | null;
  readonly #sessions = new Map<string, number>();
  readonly #samples: Sample[] = [];
  readonly #history = new Map<string, Array<{ t: number; connected: boolean }>>();
  readonly #tail: Array<Record<string, unknown>> = [];
  readonly #listeners = new Set<(event: string, data: unknown) => void>();
  #cursor: Tid | null = null;
  #last: { t: number; tid: bigint; bytes: number } | null = null;
  #timer: NodeJS.Timeout | undefined;

  constructor(src: () => DashboardSource | null) {
    this.#src = src;
  }

  routes(app: FastifyInstance, trust: (req: FastifyRequest) => void): void {
    for (const [name, [file, type]] of Object.entries(STATIC)) {
      app.get(`/ui/${name}`, async (_req, reply) => reply.type(type).header('cache-control', 'no-cache').send(readFileSync(file)));
    }
    app.get('/ui', async (_req, reply) => reply.redirect('/ui/'));
    app.post('/ui/api/login', async (req, reply) => {
      const pw = (req.body as { password?: unknown } | null)?.password;
      const ok = typeof pw === 'string' && (this.#src()?.passwords() ?? []).some((p) => same(p, pw));
      if (!ok) return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'wrong password', hint: 'the fileset secret, this node\'s credential, or the admin password' } });
      trust(req);
      const id = randomBytes(32).toString('hex');
      this.#sessions.set(id, Date.now() + SESSION_MS);
      const secure = (req.protocol === 'https') ? '; Secure' : '';
      return reply.header('set-cookie', `${COOKIE}=${id}; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}${secure}`).send({ ok: true });
    });
    const guard = async (req: FastifyRequest, reply: FastifyReply): Promise<boolean> => {
      const id = /(?:^|;\s*)isync_ui=([0-9a-f]{64})/.exec(req.headers.cookie ?? '')?.[1];
      const until = id === undefined ? undefined : this.#sessions.get(id);
      if (until === undefined || until < Date.now()) {
        await reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'log in first', hint: 'POST /ui/api/login' } });
        return false;
      }
      trust(req);
      return true;
    };
    app.get('/ui/api/summary', async (req, reply) => ((await guard(req, reply)) ? this.summary() : reply));
    app.post('/ui/api/resolve', async (req, reply) => {
      if (!(await guard(req, reply))) return reply;
      const b = req.body as { id?: unknown; keep?: unknown } | null;
      if (typeof b?.id !== 'number' || !['local', 'remote', 'both'].includes(String(b.keep))) {
        return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: 'send {id, keep: local|remote|both}', hint: null } });
      }
      const src = this.#src();
      if (src === null) return reply.code(503).send({ error: { code: 'IO', message: 'starting', hint: 'try again' } });
      const c = resolveOpenConflict(src.db, src.dir, { id: b.id }, b.keep as Keep, Date.now());
      return { id: c.id, path: c.path, kept: b.keep };
    });
    app.get('/ui/api/events', async (req, reply) => {
      if (!(await guard(req, reply))) return reply;
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      const send = (event: string, data: unknown): void => {
        raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      send('hello', { samples: this.#samples, tail: this.#tail });
      this.#listeners.add(send);
      req.raw.on('close', () => this.#listeners.delete(send));
      return reply;
    });
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
    app.addHook('onClose', async () => clearInterval(this.#timer));
  }

  summary(): Record<string, unknown> {
    const s = this.#src();
    if (s === null) return { starting: true };
    const db = s.db;
    const now = Date.now();
    return {
      fileset: db.meta.fileset, uuid: db.meta.uuid, nodeId: db.meta.nodeId, role: s.role, dir: s.dir,
      lastTid: formatTid(db.lastTid), pendingLml: db.lmlCount(),
      lml: db.readLml(0n, 50).map((r) => ({ seq: r.seq.toString(), kind: r.kind, path: r.newPath === null ? r.path : `${r.path} -> ${r.newPath}` })),
      tokens: s.tokens().map((t) => ({ ...t, words: t.scope === '/' ? 'the whole fileset' : `the folder ${t.scope.slice(1)}/` })),
      peers: s.view.peers().map((p) => ({ peer: p.peer, lagRecords: p.lagRecords, lagSeconds: p.lagSeconds, connected: p.connected, history: this.#history.get(p.peer) ?? [] })),
      conflicts: db.conflicts(false).map((c) => ({
        id: c.id, path: c.path, kind: c.kind, policy: c.policy, time: c.time, kept: c.kept,
        // Both versions side by side: what is at the name (the server's) and the local one kept beside.
        remote: preview(join(s.dir, c.path)),
        local: c.kept === null ? null : preview(c.kept.startsWith('/') ? c.kept : join(s.dir, c.kept)),
      })),
      conflictCounts: s.view.conflicts(),
      now,
    };
  }

  #tick(): void {
    const s = this.#src();
    if (s === null) return;
    const now = Date.now();
    const tid = s.db.lastTid;
    const bytes = s.view.bytes();
    const total = bytes.in + bytes.out;
    const peers = s.view.peers();
    for (const p of peers) {
      const h = this.#history.get(p.peer) ?? [];
      if (h.length === 0 || h[h.length - 1]!.connected !== p.connected) h.push({ t: now, connected: p.connected });
      if (h.length > 50) h.shift();
      this.#history.set(p.peer, h);
    }
    const dt = this.#last === null ? 1 : Math.max(0.001, (now - this.#last.t) / 1000);
    const sample: Sample = {
      t: Math.round(now / 1000),
      lag: peers.reduce((m, p) => Math.max(m, p.lagRecords), 0),
      records: this.#last === null ? 0 : Number(tid - this.#last.tid) / dt,
      bytes: this.#last === null ? 0 : (total - this.#last.bytes) / dt,
    };
    this.#last = { t: now, tid, bytes: total };
    this.#samples.push(sample);
    if (this.#samples.length > 600) this.#samples.shift();
    const fresh: Array<Record<string, unknown>> = [];
    if (this.#cursor === null) this.#cursor = (tid > 20n ? tid - 20n : 0n) as Tid;
    for (const r of s.db.readKml(this.#cursor, 200)) {
      fresh.push(tailRow(r));
      this.#cursor = r.tid;
    }
    this.#tail.push(...fresh);
    while (this.#tail.length > 100) this.#tail.shift();
    for (const l of this.#listeners) {
      l('sample', sample);
      for (const r of fresh) l('kml', r);
    }
  }
}

function tailRow(r: KmlRecord): Record<string, unknown> {
  return { tid: formatTid(r.tid), kind: r.kind, path: r.newPath === null ? r.path : `${r.path} -> ${r.newPath}`, size: r.size, origin: r.origin, time: r.time };
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The first bytes of a file as text, for side-by-side display. */
function preview(file: string): { size: number; text: string } | null {
  try {
    const buf = readFileSync(file);
    return { size: buf.length, text: buf.subarray(0, 2048).toString('utf8') };
  } catch {
    return null;
  }
}
