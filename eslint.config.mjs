// Type-aware lint (CONVENTIONS.md): no floating or misused promises, exhaustive switches,
// consistent type imports, and process.env read only in the config module.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // test/support/*.mjs: plain ESM scripts the tests start with `node` (outside the TS project).
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '*.js', '*.mjs', 'test/support/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through libs/platform/src/config.ts' },
      ],
    },
  },
  {
    // The config module reads the environment; tests and benchmarks set it up for child processes.
    files: ['libs/platform/src/config.ts', 'test/**/*.ts', '**/*.spec.ts', '**/*.int-spec.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // The dashboard's browser modules: TypeScript (checkJs, DOM lib) already checks every name.
    files: ['apps/gateway/dashboard/**/*.js'],
    languageOptions: { sourceType: 'module' },
    rules: { 'no-undef': 'off' },
  },
);
