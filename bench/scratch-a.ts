import { initialBench } from './replication-bench.js';
const rounds = Number(process.env.ROUNDS ?? 3);
const r = await initialBench({ initialFiles: 20_000, initialDirs: 100, incSizes: [], modify: 0, create: 0, delete: 0, bigBytes: 0, patchBytes: 0, lagWrites: 0, rounds, incRounds: 0 });
console.log(JSON.stringify(r.median));
