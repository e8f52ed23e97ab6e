import type { Command } from 'commander';
import { IntersyncError } from '#core/errors.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { IdentityDb } from '#journal/identity-db.js';
import { findFileset } from '#journal/layout.js';
import { statePaths } from '#journal/state-dir.js';
import { encodeJoinToken } from '#net/protocol/join-token.js';
import { isLoopback } from '#net/protocol/endpoint.js';
import { fmtAge } from './output.js';
import { resolveStateDir } from './state-dir.js';

type Print = (line: string) => void;

interface Common {
  fileset?: string;
  stateDir?: string;
  json: boolean;
}

/** The server's fileset in DIR, its meta and its identity store (in the state directory). */
function served<T>(dir: string, o: Common, fn: (meta: (k: string) => string | undefined, m: FilesetDb['meta'], ids: IdentityDb) => T): T {
  const paths = findFileset(dir, o.fileset);
  const db = FilesetDb.open(paths.db, { readonly: true, check: false });
  try {
    if (db.getMeta('role') === 'client') throw IntersyncError.BAD_ARGUMENT(`${paths.dir} is a client; enrolment and invitations belong to its server`);
    const sp = statePaths(resolveStateDir(o.stateDir, dir, o.fileset), db.meta.nodeId, paths.name);
    const ids = IdentityDb.open(sp.identityDb, { create: true });
    try {
      return fn((k) => db.getMeta(k), db.meta, ids);
    } finally {
      ids.close();
    }
  } finally {
    db.close();
  }
}

export function parseDuration(text: string): number {
  const m = /^([0-9]{1,6})(s|m|h|d)$/.exec(text);
  if (m === null) throw IntersyncError.BAD_ARGUMENT(`--expires ${text} is not a duration`, 'write it as 30m, 1h, 7d');
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export function cmdInvite(dir: string, o: Common & { expires: string; replicate: boolean; address?: string }, print: Print): void {
  const ms = parseDuration(o.expires);
  served(dir, o, (meta, m, ids) => {
    const listen = meta('listen_url');
    const fp = meta('tls_fingerprint') ?? '';
    let url = listen;
    if (o.address !== undefined) url = /^https?:\/\//.test(o.address) ? o.address : `${fp === '' ? 'http' : 'https'}://${o.address}`;
    if (url === undefined) {
      throw IntersyncError.BAD_ARGUMENT(`the server of ${dir} has not served yet, so its address is not known`, `start it (intersync ${dir}), or give --address HOST:PORT`);
    }
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw IntersyncError.BAD_ARGUMENT(`--address ${o.address ?? url} is not HOST:PORT or a URL`);
    }
    if (u.protocol === 'https:' && fp === '') throw IntersyncError.BAD_ARGUMENT('the server serves plain HTTP: its address must be http://');
    if (u.protocol === 'http:' && !isLoopback(u.hostname)) process.stderr.write('intersync: warning: this server speaks plain HTTP; the token\'s secret and the credentials would cross the network in clear text\n');
    const inv = ids.invite({ now: Date.now(), expiresMs: ms, replicate: o.replicate });
    const token = encodeJoinToken({
      url: u.origin, uuid: m.uuid, fileset: m.fileset, secret: inv.secret, fingerprint: u.protocol === 'https:' ? fp : null,
      replicate: o.replicate, expires: inv.expires,
    });
    if (o.json) {
      print(JSON.stringify({ token, url: u.origin, uuid: m.uuid, fileset: m.fileset, fingerprint: fp === '' ? null : fp, replicate: o.replicate, expires: inv.expires }));
      return;
    }
    print(token);
    process.stderr.write(`one-time invitation to fileset '${m.fileset}' at ${u.origin}, valid until ${new Date(inv.expires).toISOString()}${o.replicate ? ' (replicator)' : ''}\n`);
    process.stderr.write('on the new machine: intersync join TOKEN DIR   (DIR empty or new)\n');
  });
}

export function cmdNodes(dir: string, o: Common, print: Print): void {
  served(dir, o, (_meta, _m, ids) => {
    const rows = ids.nodes();
    if (o.json) {
      for (const n of rows) print(JSON.stringify(n));
      return;
    }
    if (rows.length === 0) {
      print('no enrolled nodes (invite one: intersync invite DIR)');
      return;
    }
    const now = Date.now();
    const table = rows.map((n) => [
      n.node, n.revoked === null ? 'enrolled' : 'REVOKED', n.replicate ? 'replicator' : 'client', n.via,
      new Date(n.enrolled).toISOString(), n.lastSeen === null ? 'never' : `${fmtAge(now - n.lastSeen)} ago`, n.address ?? '-',
    ]);
    const head = ['NODE', 'STATE', 'ROLE', 'VIA', 'ENROLLED', 'LAST SEEN', 'ADDRESS'];
    const width = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
    for (const r of [head, ...table]) print(r.map((c, i) => c.padEnd(width[i]!)).join('  ').trimEnd());
  });
}

export function cmdRevoke(dir: string, node: string, o: Common, print: Print): void {
  served(dir, o, (_meta, _m, ids) => {
    if (!ids.revoke(node, Date.now())) throw IntersyncError.BAD_ARGUMENT(`node ${node} is not enrolled on this server`, `list them: intersync nodes ${dir}`);
    if (o.json) print(JSON.stringify({ node, revoked: true }));
    else print(`node ${node} revoked: its requests are refused from now on, its open stream closes within a second`);
  });
}

/** `invite`, `nodes`, `revoke`: the server's side of per-node identity. */
export function addTrustCommands(program: Command, print: Print): void {
  const stateDir = '--state-dir <DIR>';
  const stateHelp = 'the server\'s state directory (default: the one its daemon recorded)';
  program
    .command('invite')
    .description('print a join token for one new client: the server\'s address, the fileset, a one-time enrolment secret and the fingerprint of the server\'s certificate')
    .argument('<DIR>', 'the server\'s backing directory')
    .option('--expires <DURATION>', 'how long the invitation can be used: 30m, 1h, 7d', '1h')
    .option('--replicate', 'the new client registers as a replicator', false)
    .option('--address <HOST:PORT>', 'where clients reach the server (default: where it listens, a wildcard address as this host\'s name)')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option(stateDir, stateHelp)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExample:\n  server$ intersync invite /exports/site --expires 2h\n  isync1-eyJ2Ijo…\n  client$ intersync join isync1-eyJ2Ijo… /imports/site')
    .action((dir: string, o: Common & { expires: string; replicate: boolean; address?: string }) => cmdInvite(dir, o, print));

  program
    .command('nodes')
    .description('list the nodes enrolled on this server: state, role, how they enrolled, when each was last seen')
    .argument('<DIR>', 'the server\'s backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option(stateDir, stateHelp)
    .option('--json', 'one JSON object per line', false)
    .addHelpText('after', '\nExample:\n  intersync nodes /exports/site\n  intersync nodes /exports/site --json')
    .action((dir: string, o: Common) => cmdNodes(dir, o, print));

  program
    .command('revoke')
    .description('end a node\'s access at once: its requests fail (401 REVOKED) and its open stream is closed')
    .argument('<DIR>', 'the server\'s backing directory')
    .argument('<NODE>', 'the node id (see intersync nodes DIR)')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option(stateDir, stateHelp)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExample:\n  intersync revoke /exports/site 3f2a9c0d11e4b7a5')
    .action((dir: string, node: string, o: Common) => cmdRevoke(dir, node, o, print));
}
