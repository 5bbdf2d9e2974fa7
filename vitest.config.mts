import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Tests run real models on a 2-core machine: files in parallel would only fight for the cores.
    fileParallelism: false,
  },
});
