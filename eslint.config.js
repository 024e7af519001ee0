// @ts-check
/**
 * ESLint over every TypeScript and JavaScript file (`pnpm lint`; CI runs it through
 * test/ops/lint.test.ts). typescript-eslint with type information, for the rules that need the
 * types: a promise nobody awaits or catches, a promise where a callback's result is ignored,
 * `await` on a non-promise, an object stringified as `[object Object]`. The rules here catch bugs;
 * layout is Prettier's alone (`pnpm format`), and eslint-config-prettier turns off every rule
 * that would argue with it.
 *
 * Type information comes from two programs, tsconfig.eslint.json (everything but the UI) and
 * web/tsconfig.json (the UI: DOM and JSX), named as `parserOptions.project`. The project service
 * (`projectService`) opens each package's own tsconfig.json instead and type-checks the shared
 * sources once per package: measured on this repository, twice the CPU time (80 s against 44 s)
 * and twice the memory (3.2 GB against 1.7 GB), for the same findings.
 *
 * Off on purpose: the no-unsafe-* family (~500 findings: every `JSON.parse`, `res.json()` and
 * driver row is `any`, and an annotation would silence each without making anything safer);
 * require-await (an `async` handler without `await` is how Fastify and tap are written);
 * restrict-template-expressions (no-base-to-string already catches the `[object Object]` bug);
 * no-control-regex (every control character in a pattern here is deliberate: input validation
 * rejects them, tests look for ANSI escapes); no-regex-spaces (spaces in a test's pattern show
 * the column layout it checks).
 */
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.tap/**', 'coverage/**', 'bench/results/**', 'test-artifacts/**'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.eslint.json', './web/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // a closure that reads the variable is declared before its one assignment
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      'no-control-regex': 'off',
      'no-regex-spaces': 'off',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // tap's t.test() returns a promise tap itself waits for: not awaiting it is how tap is used.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  // Tests walk rendered manifests, logs and responses by path: `any` is the honest type there.
  { files: ['**/test/**', 'test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  { files: ['web/src/**'], languageOptions: { globals: { ...globals.browser } } },
  prettier,
);
