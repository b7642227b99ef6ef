// Soak: hours of traffic in minutes' worth of turns, watching the service for leaks.
//   npm run soak -- [--minutes 30] [--chats 200] [--concurrency 4] [--max-live-agents 6] [--sample-s 10] [--hot 0.7]
// The real service (its own process, SQLite, real agent CLIs) against the fake model. Clients send messages to
// hundreds of chats (a few hot, most cold, so agents are evicted and resumed all the time), stop answers, run Bash,
// reconnect, and delete and create chats. Every sample records the service's RSS, V8 heap, open file descriptors,
// active timers and handles (/metrics), its sockets, live agents and child processes. At the end the load stops,
// the agents go idle, and each series is judged: after the warm-up, anything that keeps growing is a leak and the
// run exits 1. Figures go to bench/results/soak-<date>.json; BENCHMARKS.md quotes them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../test/helpers/prng.js';
import { REPO_ROOT, killAllNow } from './lib/children.js';
import { startFake } from './lib/fake.js';
import { descendants } from './lib/proc.js';
import { api, ServiceProcess } from './lib/service.js';
import { sleep } from './lib/util.js';
import { BenchSocket } from './lib/ws-client.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    chats: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '4' },
    'max-live-agents': { type: 'string', default: '6' },
    'sample-s': { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    /** The share of turns that go to the 4 hot chats (live agents); the rest pick any chat (evictions, resumes). */
    hot: { type: 'string', default: '0.7' },
  },
});
const MINUTES = Number(values.minutes);
const CHATS = Number(values.chats);
const CONCURRENCY = Number(values.concurrency);
const MAX_LIVE_AGENTS = Number(values['max-live-agents']);
const SAMPLE_MS = Number(values['sample-s']) * 1000;
const HOT_SHARE = Number(values.hot);

/** Deterministic choices, so a run can be repeated. */
const random = mulberry32(Number(values.seed));

interface Sample {
  atS: number;
  turns: number;
  rssMb: number;
  heapUsedMb: number;
  fds: number;
  timers: number;
  handles: number;
  sockets: number;
  liveAgents: number;
  /** Every process under the service (agent CLIs, their confinement wrappers, their tools), not counting tsx's esbuild. */
  childProcesses: number;
}

/** A sample's value; the `node` label every series carries is left out of the comparison. */
const metric = (text: string, name: string, labels = ''): number => {
  const withoutNode = (l: string) => l.replace(/,node="[^"]*"\}/, '}').replace(/\{node="[^"]*"\}/, '');
  const line = text.split('\n').map(withoutNode).find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
};

async function sample(service: ServiceProcess, startedAt: number, turns: number): Promise<Sample> {
  const status = fs.readFileSync(`/proc/${service.pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const metrics = await (await fetch(`${service.url}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
  return {
    atS: Math.round((Date.now() - startedAt) / 1000),
    turns,
    rssMb: Math.round(rssKb / 102.4) / 10,
    heapUsedMb: Math.round(metric(metrics, 'nodejs_heap_size_used_bytes') / 104857.6) / 10,
    fds: fs.readdirSync(`/proc/${service.pid}/fd`).length,
    // Timers that keep the process alive (Node counts no unref'd ones: the per-socket heartbeats are not here).
    timers: metric(metrics, 'nodejs_active_resources', '{type="Timeout"}'),
    handles: metric(metrics, 'nodejs_active_handles_total'),
    sockets: metric(metrics, 'ws_connections'),
    liveAgents: metric(metrics, 'agent_live_agents'),
    childProcesses: descendants(service.pid).filter((p) => p.comm !== 'esbuild').length,
  };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * A series leaks if, after the warm-up (the first quarter of the load), its second half peaks above its first
 * half by more than the tolerance AND its trend over that time still rises by more than the tolerance. Memory
 * gets a relative tolerance (GC and allocator noise), counts an absolute one.
 */
function judge(samples: Sample[], key: keyof Sample, tolerance: { relative?: number; absolute?: number }) {
  const steady = samples.slice(Math.floor(samples.length / 4));
  const half = Math.floor(steady.length / 2);
  const first = steady.slice(0, half).map((s) => s[key]);
  const second = steady.slice(half).map((s) => s[key]);
  const firstMax = Math.max(...first);
  const secondMax = Math.max(...second);
  const perHour = slope(steady.map((s) => s.atS), steady.map((s) => s[key])) * 3600;
  const spanH = (steady.at(-1)!.atS - steady[0]!.atS) / 3600;
  const allowed = (tolerance.relative ?? 0) * firstMax + (tolerance.absolute ?? 0);
  const leak = secondMax - firstMax > allowed && perHour * spanH > allowed;
  return { key, start: steady[0]![key], end: steady.at(-1)![key], firstHalfMax: firstMax, secondHalfMax: secondMax, perHour: Math.round(perHour * 10) / 10, leak };
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-soak-'));
  const fake = await startFake();
  const service = await ServiceProcess.start({
    dataDir,
    fakeUrl: fake.url,
    env: {
      MAX_LIVE_AGENTS: String(MAX_LIVE_AGENTS),
      AGENT_IDLE_TIMEOUT_MS: '30000',
      AGENT_PREWARM: 'false',
      // Agents confined by bubblewrap where it works (the default), and run without it elsewhere.
      ALLOW_UNCONFINED_AGENTS: 'true',
      MESSAGES_PER_MINUTE: '0',
    },
  });
  console.log(`soak: ${MINUTES} min, ${CHATS} chats (${HOT_SHARE} of turns to 4 hot ones), ${CONCURRENCY} clients, MAX_LIVE_AGENTS=${MAX_LIVE_AGENTS}; service pid ${service.pid}, data ${dataDir}`);
  const startedAt = Date.now();
  const deadline = startedAt + MINUTES * 60_000;
  const chats: string[] = [];
  for (let i = 0; i < CHATS; i++) chats.push((await api<{ id: string }>(service.url, 'POST', '/api/chats', { title: `soak ${i}` })).id);
  const busy = new Set<string>();
  const outcomes: Record<string, number> = {};
  let turns = 0;
  let churned = 0;
  const count = (what: string) => (outcomes[what] = (outcomes[what] ?? 0) + 1);

  /** A few hot chats take most turns (their agents stay live); the long tail forces evictions and resumes. */
  const pickChat = (): string | undefined => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const index = random() < HOT_SHARE ? Math.floor(random() * Math.min(4, chats.length)) : Math.floor(random() * chats.length);
      const chat = chats[index]!;
      if (!busy.has(chat)) return chat;
    }
    return undefined;
  };

  const client = async (n: number): Promise<void> => {
    let socket = await BenchSocket.connect(service.wsUrl);
    while (Date.now() < deadline) {
      const chat = pickChat();
      if (!chat) {
        await sleep(20);
        continue;
      }
      busy.add(chat);
      const roll = random();
      try {
        if (roll < 0.05) {
          // Reconnect: the old socket goes away (its subscriptions with it).
          socket.close();
          socket = await BenchSocket.connect(service.wsUrl);
          count('reconnect');
        } else if (roll < 0.07 && churned * 50 < turns) {
          // Chat churn: one chat deleted (its agent with it), a new one in its place.
          await api(service.url, 'DELETE', `/api/chats/${chat}`);
          const fresh = (await api<{ id: string }>(service.url, 'POST', '/api/chats', { title: `soak new ${churned}` })).id;
          chats[chats.indexOf(chat)] = fresh;
          churned++;
          count('churn');
        } else if (roll < 0.15) {
          const turn = socket.turn(chat, '/slow 40 25', 120_000);
          // Refused meanwhile (agent_busy): the rejection is awaited below, not left unhandled during the pause.
          turn.catch(() => undefined);
          await sleep(150 + Math.floor(random() * 300));
          socket.stop(chat);
          count(`stop:${(await turn).end}`);
          turns++;
        } else if (roll < 0.25) {
          count(`bash:${(await socket.turn(chat, `/bash echo soak-${n}-${turns}`, 120_000)).end}`);
          turns++;
        } else if (roll < 0.35) {
          count(`slow:${(await socket.turn(chat, '/slow 10 10', 120_000)).end}`);
          turns++;
        } else {
          count(`text:${(await socket.turn(chat, `hello ${turns}`, 120_000)).end}`);
          turns++;
        }
      } catch (err) {
        count(`failed: ${(err as Error).message.replace(/[0-9a-f-]{36}/g, '<id>').slice(0, 80)}`);
        if ((err as Error).message.includes('closed')) socket = await BenchSocket.connect(service.wsUrl);
      } finally {
        busy.delete(chat);
      }
    }
    socket.close();
  };

  const samples: Sample[] = [];
  let slowSamples = 0;
  const sampler = (async () => {
    while (Date.now() < deadline) {
      let s: Sample;
      try {
        s = await sample(service, startedAt, turns);
      } catch (err) {
        // A service too starved to answer /metrics in time (a loaded machine) is reported, not fatal.
        slowSamples++;
        console.log(`t=${Math.round((Date.now() - startedAt) / 1000)}s sample failed: ${(err as Error).message}`);
        await sleep(SAMPLE_MS);
        continue;
      }
      samples.push(s);
      console.log(
        `t=${s.atS}s turns=${s.turns} rss=${s.rssMb}MB heap=${s.heapUsedMb}MB fds=${s.fds} timers=${s.timers} handles=${s.handles} sockets=${s.sockets} agents=${s.liveAgents} children=${s.childProcesses}`,
      );
      await sleep(SAMPLE_MS);
    }
  })();
  await Promise.all([...Array.from({ length: CONCURRENCY }, (_, n) => client(n)), sampler]);

  // Quiet: idle agents close after AGENT_IDLE_TIMEOUT_MS; then nothing the load started may be left over.
  await sleep(40_000);
  const rest = await sample(service, startedAt, turns);
  const verdicts = [
    judge(samples, 'rssMb', { relative: 0.15 }),
    judge(samples, 'heapUsedMb', { relative: 0.25 }),
    judge(samples, 'fds', { absolute: 16 }),
    judge(samples, 'timers', { absolute: 20 }),
    judge(samples, 'handles', { absolute: 16 }),
    judge(samples, 'childProcesses', { absolute: MAX_LIVE_AGENTS }),
  ];
  const leftovers = { agents: rest.liveAgents, childProcesses: rest.childProcesses, sockets: rest.sockets };
  const stopped = await service.stop();
  await fake.stop();
  const result = {
    date: new Date().toISOString(),
    settings: { minutes: MINUTES, chats: CHATS, concurrency: CONCURRENCY, maxLiveAgents: MAX_LIVE_AGENTS, hot: HOT_SHARE, seed: Number(values.seed) },
    machine: { cores: os.cpus().length, loadAverage: os.loadavg() },
    turns,
    slowSamples,
    turnsPerMinute: Math.round((turns / MINUTES) * 10) / 10,
    outcomes,
    verdicts,
    atRest: rest,
    leftovers,
    shutdown: stopped,
    samples,
  };
  const out = path.join(REPO_ROOT, 'bench/results', `soak-${result.date.slice(0, 10)}.json`);
  fs.writeFileSync(out, JSON.stringify(result, null, 2));
  fs.rmSync(dataDir, { recursive: true, force: true });

  console.log(`\n${turns} turns in ${MINUTES} min (${result.turnsPerMinute}/min); outcomes ${JSON.stringify(outcomes)}`);
  console.table(verdicts);
  console.log(`at rest after the load: ${JSON.stringify(rest)}; shutdown ${JSON.stringify(stopped)}; figures in ${out}`);
  const leaks: string[] = verdicts.filter((v) => v.leak).map((v) => v.key);
  // At rest every agent has been closed by the idle timeout: a process left is an orphan.
  if (rest.childProcesses > 0) leaks.push('childProcesses at rest');
  if (stopped.forced) leaks.push('shutdown needed SIGKILL');
  if (leaks.length > 0) {
    console.error(`LEAK: ${leaks.join(', ')}`);
    process.exit(1);
  }
  console.log('no leak found');
}

process.on('SIGINT', () => {
  killAllNow();
  process.exit(130);
});
main().catch((err: unknown) => {
  console.error(err);
  killAllNow();
  process.exit(1);
});
