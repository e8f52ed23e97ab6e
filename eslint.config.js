import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layers of src/, lowest first (docs/architecture.md, "Layout"): a part may import its own layer and those
// listed for it, never one above. core and policy hold the words and the pluggable decisions; fsio the file-system
// floor under both capture (presto) and apply; the daemons wire everything; the CLI sits on top.
const LAYERS = ['core', 'policy', 'fsio', 'journal', 'presto', 'apply', 'net', 'reint', 'copy', 'daemon', 'cli'];
const MAY_IMPORT = {
  core: [],
  policy: ['core'],
  fsio: ['core'],
  journal: ['core', 'fsio'],
  presto: ['core', 'policy', 'fsio', 'journal'],
  apply: ['core', 'policy', 'fsio', 'journal'],
  net: ['core', 'policy', 'fsio', 'journal', 'apply'],
  reint: ['core', 'policy', 'fsio', 'journal', 'apply', 'net'],
  copy: ['core', 'policy', 'fsio', 'journal', 'presto', 'apply', 'net'],
  daemon: ['core', 'policy', 'fsio', 'journal', 'presto', 'apply', 'net', 'reint', 'copy'],
  cli: ['core', 'policy', 'fsio', 'journal', 'presto', 'apply', 'net', 'reint', 'copy', 'daemon'],
};

/** One no-restricted-imports entry per forbidden direction: `#layer/...` and `../layer/...` alike. */
const layering = LAYERS.map((layer) => {
  const forbidden = LAYERS.filter((x) => x !== layer && !MAY_IMPORT[layer].includes(x));
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: forbidden.map((x) => ({
          group: [`\\#${x}/*`, `../${x}/*`, `../../${x}/*`],
          message: `src/${layer} may not import src/${x} (layers: ${layer} imports only ${MAY_IMPORT[layer].join(', ') || 'itself'}; see docs/architecture.md)`,
        })),
      }],
    },
  };
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...layering,
);
