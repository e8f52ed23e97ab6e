// After `npm ci` builds dist/ (prepare): put this package's own CLI in node_modules/.bin, so that
// `npx intersync …` in a clone runs it at once. Without the link npx looked the name up in the registry
// first (a minute without a network) and could install and build a second copy of the package.
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';

const main = 'dist/cli/main.js';
chmodSync(main, 0o755);
mkdirSync('node_modules/.bin', { recursive: true });
rmSync('node_modules/.bin/intersync', { force: true });
symlinkSync(`../../${main}`, 'node_modules/.bin/intersync');
