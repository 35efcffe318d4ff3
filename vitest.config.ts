import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers only queue up behind PGlite's WASM start-up.
    maxWorkers: 2,
    env: { PARLEY_LOG_LEVEL: 'silent' },
  },
});
