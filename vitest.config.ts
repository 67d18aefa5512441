import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs neither root nor the addon's live sockets; `live` drives real
// traffic through real namespaces as root and runs one file at a time, because some scenarios
// change machine-wide limits (nf_conntrack_max) that would disturb a neighbour.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'live',
          include: ['test/live/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
