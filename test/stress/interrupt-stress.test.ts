// Seeded randomized interrupt stress: the real service, SDK and CLI against the fake model, ~300 interleaved
// operations (chat, stop, chat during an answer, subscribe, disconnect + reconnect with or without last_seq), then
// the protocol's interrupt guarantees checked on everything every socket received. `npm run stress` runs longer.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startAgentServer } from '../helpers/agent-server.js';
import { runStress, STRESS_SERVER_ENV } from './stress-runner.js';
import { serviceTarget } from './stress-target.js';

const SEED = 1;
const OPS = 300;

describe('randomized interrupt stress', () => {
  it(`seed ${SEED}, ${OPS} operations: every invariant holds`, { timeout: 300_000 }, async () => {
    const server = await startAgentServer(STRESS_SERVER_ENV);
    try {
      const figures = await runStress({ seed: SEED, ops: OPS, chats: 4, sockets: 3, target: serviceTarget(server), settleTimeoutMs: 45_000 });
      const { violations, ...rest } = figures;
      console.log(
        `stress: seed=${rest.seed} ops=${rest.operations} queries=${rest.queries} results=${rest.results} ` +
          `cancelled=${rest.cancelled} errors=${rest.errors} reconnects=${rest.reconnects} replays=${rest.replays} ` +
          `historyFallbacks=${rest.historyFallbacks} snapshots=${rest.snapshots} midAnswerSnapshots=${rest.midAnswerSnapshots} agentsBeforeClose=${rest.agentsBeforeClose} ` +
          `violations=${violations.length} durationMs=${rest.durationMs}`,
      );
      expect(violations).toEqual([]);
      expect(figures.queries).toBeGreaterThan(50);
      expect(figures.cancelled).toBeGreaterThan(5);
      expect(figures.results).toBeGreaterThan(10);
    } finally {
      // runStress has closed the server (it checks for leftover agent processes afterwards).
      fs.rmSync(server.dir, { recursive: true, force: true });
    }
  });
});
