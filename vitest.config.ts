import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Encoders hold native sessions and large buffers: a few forks, not many threads.
    pool: "forks",
    maxWorkers: 2,
  },
});
