import { defaultClientConditions, defineConfig } from 'vite';

// The shared contracts are bundled from their TypeScript sources (the `@hatch/source` export
// condition), so `pnpm --filter @hatch/web build` does not need the packages' dist first.
export default defineConfig({
  resolve: { conditions: ['@hatch/source', ...defaultClientConditions] },
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rollupOptions: {
      // The UI uses the contracts' types, constants and pure functions; the TypeBox schema
      // builders (`Type.X(...)`) have no side effects, so unused schemas drop out of the bundle.
      treeshake: {
        manualPureFunctions: ['Type', 'Nullable', 'Compile'],
        moduleSideEffects: (id: string) => !/[/](typebox|contracts)[/]/.test(id),
      },
    },
  },
  server: {
    // `pnpm --filter @hatch/web dev`: the API (and SSE) of a gateway running on HATCH_GATEWAY_URL.
    proxy: { '/api': { target: process.env.HATCH_GATEWAY_URL ?? 'http://localhost:5002' } },
  },
});
