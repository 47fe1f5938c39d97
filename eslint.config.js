// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['examples/*/build/**', 'dist/**', 'node_modules/**', 'build/**', 'prebuilds/**', 'docs/**', 'coverage/**', 'bench/**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
    },
  },
  // The layers of DESIGN.md, enforced: uapi is self-contained, the planner does no I/O, the CLI uses the public API.
  {
    files: ['src/uapi/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^\\.\\./(?!util/)|^node:|^koffi$', message: 'src/uapi is the Linux ABI as data: it imports nothing outside uapi/ and util/.' }],
      }],
    },
  },
  // src/util holds small shared helpers every layer may import (UndoStack, alignment, ranges, comparators): they import nothing.
  {
    files: ['src/util/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./|^node:|^koffi$', message: 'src/util is shared by every layer: it imports nothing.' }] }] },
  },
  {
    files: ['src/plan/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(sys|kvm|map|cli)/|^node:|^koffi$', message: 'The planner is pure: no I/O, no FFI, no executor.' }] }] },
  },
  {
    files: ['src/cli/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: '^(\\.\\./)+(uapi|sys|vfio|plan|kvm|map)/|^(\\.\\./)+errors\\.js$', message: 'The CLI uses the public API (src/index.ts) only.' }] }] },
  },
  // Lines under 140 characters. Core max-len is deprecated in ESLint 9 but works and needs no new dependency;
  // it covers all source, tests, benchmarks and examples.
  {
    files: ['src/**/*.ts', 'test/**/*.{ts,mjs}', 'bench/**/*.{ts,mjs}', 'examples/**/*.{ts,mjs}'],
    rules: { 'max-len': ['error', { code: 140, ignoreUrls: true }] },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
  },
);
