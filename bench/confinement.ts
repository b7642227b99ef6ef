/**
 * `npm run bench:confinement`: what confining an agent in bubblewrap (AGENT_CONFINEMENT) costs at its start.
 * Two services on the same fake model, one with AGENT_CONFINEMENT=off and one with bwrap, both without prewarm;
 * samples alternate between them so that other load on the machine falls on both alike. One sample: a new chat, a
 * WebSocket, a message, and the time from sending it to the first text delta (the CLI's cold start included).
 * Also: the bare cost of the namespace (`bwrap <the agent's arguments> true` against `true`).
 *
 * Env: BENCH_SAMPLES (default 9).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { startFakeModel } from '../fake-model/server.js';
import { buildApp } from '../src/app.js';
import { resolveConfinement } from '../src/agent/confinement.js';
import { loadConfig } from '../src/config/config.js';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 9);

async function startService(fakeUrl: string, confinement: 'off' | 'bwrap') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-confinement-${confinement}-`));
  const config = loadConfig({
    DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
    WORKSPACE_DIR: path.join(dir, 'workspaces'),
    AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    ANTHROPIC_BASE_URL: fakeUrl,
    ANTHROPIC_API_KEY: 'bench-key',
    PERMISSION_MODE: 'bypassPermissions',
    AGENT_PREWARM: 'false',
    AGENT_CONFINEMENT: confinement,
    LOG_LEVEL: 'silent',
  });
  const app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await app.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** ms from sending the first message of a new chat to its first text delta. */
async function coldFirstDelta(url: string): Promise<number> {
  const res = await fetch(`${url}/api/chats`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const { id } = (await res.json()) as { id: string };
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws/chat`);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      let sent = 0;
      const timer = setTimeout(() => reject(new Error('no delta within 120 s')), 120_000);
      socket.on('message', (data) => {
        const event = JSON.parse(data.toString()) as { type: string };
        if (event.type === 'text_delta' && sent > 0) {
          clearTimeout(timer);
          resolve(performance.now() - sent);
        }
      });
      sent = performance.now();
      socket.send(JSON.stringify({ type: 'chat', chat_id: id, content: 'hello' }));
    });
  } finally {
    socket.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (xs: number[]) =>
  `${Math.round(median(xs))} (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))})`;

async function namespaceCost(): Promise<{ bare: number[]; bwrap: number[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-confinement-ns-'));
  const bare: number[] = [];
  const bwrap: number[] = [];
  try {
    const confinement = await resolveConfinement('bwrap', { agentHomeDir: dir, extraReadOnly: [] });
    if (confinement.kind !== 'bwrap') throw new Error(confinement.reason);
    const wrapped = confinement.sandbox.wrap('/usr/bin/true', [], { workspace: dir, home: { home: dir, configDir: dir, tmpDir: dir } });
    for (let i = 0; i < 20; i++) {
      let t = performance.now();
      execFileSync('/usr/bin/true');
      bare.push(performance.now() - t);
      t = performance.now();
      execFileSync(wrapped.command, wrapped.args);
      bwrap.push(performance.now() - t);
    }
    return { bare, bwrap };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const load = os.loadavg()[0]!.toFixed(1);
  const ns = await namespaceCost();
  const fake = await startFakeModel();
  const off = await startService(fake.url, 'off');
  const confined = await startService(fake.url, 'bwrap');
  const times = { off: [] as number[], bwrap: [] as number[] };
  try {
    // One unmeasured start each: the first CLI start pays for reading its 400 MB binary from disk.
    await coldFirstDelta(off.url);
    await coldFirstDelta(confined.url);
    for (let i = 0; i < SAMPLES; i++) {
      const order = i % 2 === 0 ? (['off', 'bwrap'] as const) : (['bwrap', 'off'] as const);
      for (const which of order) times[which].push(await coldFirstDelta(which === 'off' ? off.url : confined.url));
      process.stderr.write('.');
    }
  } finally {
    await off.close();
    await confined.close();
    await fake.close();
  }
  process.stderr.write('\n');
  const added = median(times.bwrap) - median(times.off);
  console.log(`Machine: ${os.cpus().length} cores, load average ${load} at the start; ${SAMPLES} samples each, alternating.\n`);
  console.log('| | p50 ms (min–max) |');
  console.log('|---|---|');
  console.log(`| \`true\` | ${summary(ns.bare)} |`);
  console.log(`| \`bwrap <agent namespace> true\` | ${summary(ns.bwrap)} |`);
  console.log(`| cold first delta, AGENT_CONFINEMENT=off | ${summary(times.off)} |`);
  console.log(`| cold first delta, AGENT_CONFINEMENT=bwrap | ${summary(times.bwrap)} |`);
  console.log(`| **added by the confinement** (p50) | ${added >= 0 ? '+' : ''}${Math.round(added)} |`);
}

await main();
