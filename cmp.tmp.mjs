import Database from 'better-sqlite3';
const open = (d) => { const db = new Database(`${d}/.intermezzo/default/fileset.db`, { readonly: true }); db.defaultSafeIntegers(true); return db; };
const [a, b] = process.argv.slice(2).map(open);
const rows = (db) => new Map(db.prepare('select fid,path,type,mode,hash,version,target from objects').all().map((r) => [r.fid, r]));
const A = rows(a), B = rows(b);
for (const [fid, r] of A) { const o = B.get(fid); if (!o) console.log('only server', fid, r.path, r.type); else for (const k of ['path','type','mode','hash','version','target']) if (r[k] !== o[k]) console.log('diff', fid, k, String(r[k]), '| client', String(o[k]), '| path', r.path, o.path); }
for (const [fid, o] of B) if (!A.has(fid)) console.log('only client', fid, o.path, o.type, 'v', String(o.version));
