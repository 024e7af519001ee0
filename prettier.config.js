// @ts-check
/**
 * Prettier owns layout (`pnpm format` writes it, `pnpm lint` checks it); ESLint (eslint.config.js)
 * owns bugs. Prettier rather than Biome: ESLint stays the linter either way, since the rules that
 * matter here need TypeScript's type information (typescript-eslint), so Biome would be a second
 * toolchain used only as a formatter. Prettier is the formatter most TypeScript contributors
 * already run in their editors, needs no native binary, and also formats the YAML (docker-compose,
 * k8s/). Its check over the whole tree takes a few seconds, beside ESLint's type-aware pass.
 * 140 columns and single quotes: the width and quotes the code was already written in (at 120,
 * the one formatting commit would touch 60% more lines).
 *
 * @type {import('prettier').Config}
 */
export default {
  printWidth: 140,
  singleQuote: true,
};
