import type { CrossNodeResult } from './cross-node.js';
import type { ScaleRead, SeededScale } from './data-scale.js';
import type { MachineInfo } from './machine.js';
import { QUIET_MACHINE_PCT } from './proc.js';
import type { RestResult, SeedResult } from './rest.js';
import type { ConcurrencyLevel, FirstDeltaResult, LatencyResult, SaturatedRun, WarmUp } from './scenarios.js';
import { median, type Summary } from './stats.js';
import type { StartupResult } from './startup.js';
import { renderWebClientTable, type WebClientResult } from './web-client.js';

/** Phase 4 on one store. */
export interface RestRun {
  dialect: 'sqlite' | 'postgres';
  seed: SeedResult;
  history: RestResult;
  list: RestResult;
}

/** Phase 8 on one store: each read on the small and on the large database. */
export interface DataScaleRun {
  dialect: 'sqlite' | 'postgres';
  small: SeededScale & { reused: boolean };
  large: SeededScale & { reused: boolean };
  reads: { name: string; small: Omit<ScaleRead, 'name'>; large: Omit<ScaleRead, 'name'> }[];
}

/**
 * Everything one run measured: written as bench/results/<date>.json and printed as the tables below. A phase left
 * out (BENCH_PHASES) or impossible here (no Postgres, no Chromium: see `skipped`) is null.
 */
export interface BenchResults {
  date: string;
  startedAt: string;
  /** The whole run, waiting for a quiet machine included (machine.waitedForQuietS). */
  durationS: number;
  quick: boolean;
  phases: string[];
  skipped: string[];
  /** busyBeforeRunPct: CPU use of the whole machine (% of all cores) just before the run; other work skews figures. */
  machine: MachineInfo & { busyBeforeRunPct: number; waitedForQuietS: number };
  /** Service variables the benchmark set (beyond the fixed fake-model configuration in lib/service.ts). */
  serviceSettings: Record<string, string>;
  clock: {
    /** (wall − monotonic) constants of each process, ms (lib/clock.ts). */
    fakeOffsetMs: number;
    benchOffsetMs: number;
    bareOffsetMs: number | null;
    /** Corrections added to every service / bare-SDK latency. */
    serviceSkewMs: number;
    bareSkewMs: number | null;
  };
  startup: StartupResult | null;
  /** What every side answered before scenarios 1-3b, not counted (absent in runs before it). */
  warmUp?: WarmUp | null;
  /** relay: the minimal relay (bench/relay-server.ts). */
  latency: { service: LatencyResult; bare: LatencyResult; relay?: LatencyResult } | null;
  firstDelta: {
    service: FirstDeltaResult;
    bare: FirstDeltaResult;
    /** The minimal relay (absent in runs before it). */
    relay?: FirstDeltaResult | null;
    /** The service with its prewarm setting on, if src/ has one; null otherwise. */
    servicePrewarm: (FirstDeltaResult & { variable: string; value: string; thinkMs: number }) | null;
    /** The bare SDK's own prewarm (query() started, CLI initialized, message later); absent in runs before it. */
    barePrewarm?: FirstDeltaResult | null;
    prewarmNote: string;
  } | null;
  concurrency: { service: ConcurrencyLevel[]; bare: ConcurrencyLevel[]; relay?: ConcurrencyLevel[] } | null;
  /** 3b: the saturated case, each side with the clients at raised and at normal priority. */
  saturated: SaturatedRun[] | null;
  /** SIGTERM → exit of the streaming phases' service, with the last level's agents still alive. */
  serviceShutdown: { ms: number; agentsAlive: number } | null;
  rest: RestRun[] | null;
  /** The web client in headless Chromium. */
  webClient: WebClientResult | null;
  crossNode: CrossNodeResult | null;
  dataScale: DataScaleRun[] | null;
  cleanup: { ourAgentProcessesLeft: number[]; otherAgentProcesses: number[] };
}

const ms = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const signed = (v: number, digits = 1): string => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
const ratio = (a: number, b: number): string => (b > 0 ? `×${(a / b).toFixed(2)}` : 'n/a');

const table = (head: string[], rows: string[][]): string =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const perLevel = (c: NonNullable<BenchResults['concurrency']>, f: (l: ConcurrencyLevel) => string): string =>
  (['service', 'bare'] as const)
    .map((side) => `${side === 'bare' ? 'bare SDK' : 'service'} ${c[side].map((l) => `${l.chats}: ${f(l)}`).join(', ')}`)
    .join('; ') + '.';

/** The tables, as Markdown (readable in a terminal, pasted as is into BENCHMARKS.md). */
export function renderTables(r: BenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; ` +
      `Agent SDK ${m.sdkVersion} (CLI ${m.cliVersion}); commit ${m.gitCommit}; run ${r.startedAt}, ` +
      `${Math.round(r.durationS - m.waitedForQuietS)} s (+${m.waitedForQuietS} s waiting for a quiet machine)` +
      `; machine ${r.machine.busyBeforeRunPct}% busy before the run` +
      (r.machine.busyBeforeRunPct >= QUIET_MACHINE_PCT ? ' (OTHER WORK WAS RUNNING: noisy figures)' : '') +
      (r.warmUp ? `; before scenarios 1-3b every side answered ${r.warmUp.chats} chats × ${r.warmUp.turnsPerChat} questions, not counted` : '') +
      (r.quick ? ' — QUICK SMOKE RUN, figures not comparable' : '') +
      (r.skipped.length ? `. Skipped: ${r.skipped.join('; ')}` : ''),
  );
  out.push(renderGoals(r));

  if (r.latency) {
    const ls = r.latency.service.summary;
    const lb = r.latency.bare.summary;
    const lr = r.latency.relay?.summary;
    out.push(
      `\n### 1. Added latency per text delta (warm chat, ${r.latency.service.runs} × \`${r.latency.service.command}\`)\n`,
      table(
        ['path', 'deltas', 'p50 ms', 'p99 ms'],
        [
          ['bare SDK: fake model → CLI → SDK, received in-process', String(lb.n), ms(lb.p50, 2), ms(lb.p99, 2)],
          ...(lr ? [['minimal relay: fake model → CLI → SDK → relay → WebSocket client', String(lr.n), ms(lr.p50, 2), ms(lr.p99, 2)]] : []),
          ['service: fake model → CLI → SDK → service → WebSocket client', String(ls.n), ms(ls.p50, 2), ms(ls.p99, 2)],
          [
            '**added by the service** (service − bare, service ÷ bare)',
            '',
            `${signed(ls.p50 - lb.p50, 2)} (${ratio(ls.p50, lb.p50)})`,
            `${signed(ls.p99 - lb.p99, 2)} (${ratio(ls.p99, lb.p99)})`,
          ],
          ...(lr ? [['added by the service over the relay (service − relay)', '', signed(ls.p50 - lr.p50, 2), signed(ls.p99 - lr.p99, 2)]] : []),
        ],
      ),
    );
  }

  const fd = r.firstDelta;
  if (fd) {
    const p50 = (xs: { totalMs: number }[]) => median(xs.map((x) => x.totalMs));
    /** p50 with the range of the samples: cold starts vary a lot, the reader should see how much. */
    const cell = (xs: { totalMs: number }[]) => {
      const v = xs.map((x) => x.totalMs);
      return `${ms(median(v), 0)} (${ms(Math.min(...v), 0)}–${ms(Math.max(...v), 0)})`;
    };
    const prewarm = fd.servicePrewarm ? cell(fd.servicePrewarm.cold) : 'n/a';
    out.push(
      `\n### 2. Time to first delta (message sent → first text delta received; p50 (min–max) of ${fd.service.cold.length} samples, ms)\n`,
      table(
        ['', 'warm (2nd message of a chat)', 'cold (1st message of a new chat)', 'cold, agent prewarmed (service: on subscribe)'],
        [
          ['bare SDK', cell(fd.bare.warm), cell(fd.bare.cold), fd.barePrewarm ? cell(fd.barePrewarm.cold) : 'n/a'],
          ...(fd.relay ? [['minimal relay', cell(fd.relay.warm), cell(fd.relay.cold), 'n/a']] : []),
          ['service', cell(fd.service.warm), cell(fd.service.cold), prewarm],
          [
            '**added by the service**',
            signed(p50(fd.service.warm) - p50(fd.bare.warm), 0),
            signed(p50(fd.service.cold) - p50(fd.bare.cold), 0),
            fd.servicePrewarm && fd.barePrewarm ? signed(p50(fd.servicePrewarm.cold) - p50(fd.barePrewarm.cold), 0) : '',
          ],
          ...(fd.relay
            ? [['added by the relay (relay − bare)', signed(p50(fd.relay.warm) - p50(fd.bare.warm), 0), signed(p50(fd.relay.cold) - p50(fd.bare.cold), 0), '']]
            : []),
        ],
      ),
      `\n${fd.prewarmNote}`,
    );
  }

  const c = r.concurrency;
  if (c) {
    const levels = c.service.map((s) => s.chats);
    const rows: string[][] = [];
    for (const n of levels) {
      const s = c.service.find((l) => l.chats === n);
      const b = c.bare.find((l) => l.chats === n);
      const rl = c.relay?.find((l) => l.chats === n);
      for (const [side, l] of [['bare SDK', b], ['relay', rl], ['service', s]] as const) {
        if (!l) continue;
        const u = l.usage;
        const nodeCpu = `${u.rootCpuS.toFixed(2)} (${((u.rootCpuS / u.wallS) * 100).toFixed(0)}%)`;
        const vsBare = side === 'service' && b ? ` ${ratio(u.rootCpuS, b.usage.rootCpuS)}` : '';
        rows.push([
          String(n),
          side,
          ms(l.summary.p50, 2),
          ms(l.summary.p99, 2),
          nodeCpu + vsBare,
          cpuPerDelta(l),
          `${u.childrenCpuS.toFixed(2)} (${((u.childrenCpuS / u.wallS) * 100).toFixed(0)}%)`,
          mb(u.rootPeakRss),
          `${mb(u.childrenPeakRss)} (${u.maxChildren} procs)`,
          u.wallS.toFixed(1),
          String(l.failures.length),
        ]);
      }
    }
    out.push(
      `\n### 3. Concurrency: N chats streaming \`${c.service[0]?.command ?? ''}\` at once (service: one WebSocket per chat; bare: N query() in one Node process)\n`,
      table(
        [
          'chats',
          'side',
          'delta p50 ms',
          'delta p99 ms',
          'Node process CPU s (% of a core)',
          'µs CPU per delta / per turn',
          'agent CLIs CPU s (% of a core)',
          'Node process peak RSS MB',
          'agent CLIs peak RSS MB, sum',
          'window s',
          'failed',
        ],
        rows,
      ),
      `\nMachine CPU in each window (all processes, ${m.cores} cores = ${m.cores * 100}%): ` +
        perLevel(c, (l) => `${((l.usage.machineCpuS / l.usage.wallS) * 100).toFixed(0)}%`) +
        ` Time the Node process's main thread waited for a free core (run queue), s: ` +
        perLevel(c, (l) => l.usage.rootRunQueueWaitS.toFixed(2)) +
        ` Same for the benchmark's WebSocket clients (service side only matters), s: ` +
        perLevel(c, (l) => l.usage.benchRunQueueWaitS.toFixed(2)) +
        ` The clients' thread ran at nice ${c.service[0]?.clientNice ?? 0} during the windows (the service and the bare worker at 0, every side's agents at the service's AGENT_NICE, 5 unless set).` +
        ' µs CPU per delta / per turn: the Node process\'s CPU in the window over the deltas it delivered and over the answers (one per chat).',
    );
  }

  if (r.saturated?.length) {
    const sat = r.saturated;
    const bareOf = (raised: boolean) => sat.find((x) => x.side === 'bare' && x.raisedPriority === raised)?.level;
    out.push(
      `\n### 3b. Saturated: ${sat[0]!.level.chats} chats × \`${sat[0]!.level.command}\` (20 deltas/s each) at once\n`,
      table(
        ['client priority', 'side', 'delta p50 ms', 'delta p99 ms', 'p50 − bare', 'p99 ÷ bare', 'Node process CPU s', 'µs CPU per delta / per turn', 'failed'],
        sat.map(({ side, raisedPriority, level: l }) => {
          const b = bareOf(raisedPriority);
          return [
            raisedPriority ? `nice ${l.clientNice}` : `normal (nice ${l.clientNice})`,
            side === 'bare' ? 'bare SDK' : side,
            ms(l.summary.p50, 2),
            ms(l.summary.p99, 2),
            b && side !== 'bare' ? signed(l.summary.p50 - b.summary.p50, 2) : '',
            b && side !== 'bare' ? ratio(l.summary.p99, b.summary.p99) : '',
            l.usage.rootCpuS.toFixed(2),
            cpuPerDelta(l),
            String(l.failures.length),
          ];
        }),
      ),
      `\nµs CPU per delta: the Node process's CPU in the window over the deltas it delivered (start of the answers and their ends included).`,
    );
  }
  if (r.serviceShutdown) {
    out.push(`\nService SIGTERM → exit with ${r.serviceShutdown.agentsAlive} idle agents alive: ${r.serviceShutdown.ms} ms.`);
  }

  for (const run of r.rest ?? []) {
    const rest = [run.history, run.list];
    out.push(
      `\n### 4. REST on ${run.dialect === 'sqlite' ? 'SQLite' : 'Postgres'} (autocannon, ${run.list.connections} connections, ${run.list.durationS} s each; ${run.seed.chats.toLocaleString('en')} chats, one with ${run.seed.messages.toLocaleString('en')} messages)\n`,
      table(
        ['request', 'response', 'req/s (mean)', 'p50 ms', 'p99 ms', 'errors / non-2xx'],
        rest.map((x) => [
          `GET ${x.path.replace(/[0-9a-f-]{36}/, '{id}')}`,
          `${(x.responseBytes / 1024).toFixed(0)} KiB, ${x.items} items${x.hasMore ? ' (first page)' : ''}`,
          x.requestsPerSec.mean.toFixed(1),
          String(x.latencyMs.p50),
          String(x.latencyMs.p99),
          `${x.errors} / ${x.non2xx}`,
        ]),
      ),
    );
  }

  const st = r.startup;
  if (st) {
    out.push(
      `\n### 5. Start-up of the compiled service, as \`npm start\` runs it (median of ${st.runs} starts on an existing database)\n`,
      table(
        ['spawn → /healthz 200', `RSS at rest (${st.restMs / 1000} s after)`, 'SIGTERM → exit, idle'],
        [[`${ms(st.medianStartupMs, 0)} ms`, `${mb(st.medianRestRssBytes)} MB (runs: ${st.restRssBytes.map(mb).join(', ')})`, `${median(st.shutdownMs).toFixed(0)} ms`]],
      ),
    );
  }
  if (r.webClient) out.push(renderWebClientTable(r.webClient));

  const x = r.crossNode;
  if (x) {
    out.push(
      `\n### 7. Cross-node: ${x.chats} chats × \`${x.command}\` at once, two nodes on Postgres and a loopback Redis\n`,
      table(
        ['socket', 'deltas', 'p50 ms', 'p90 ms', 'p99 ms'],
        [
          ['one node, SQLite, no Redis', x.single],
          ["two nodes: a socket on the agent's node", x.sameNode],
          ['two nodes: a socket on the other node', x.otherNode],
        ].map(([name, s]) => {
          const sum = s as Summary;
          return [name as string, String(sum.n), ms(sum.p50, 2), ms(sum.p90, 2), ms(sum.p99, 2)];
        }),
      ),
      `\nThe other node adds ${signed(x.otherNode.p50 - x.sameNode.p50, 2)} ms at p50 and ${signed(x.otherNode.p99 - x.sameNode.p99, 2)} ms at p99 over the agent's node, in the same answers; ` +
        `multi-node mode itself (agent's node against one node) ${signed(x.sameNode.p50 - x.single.p50, 2)} ms at p50.` +
        (x.failures.length ? ` Failures: ${x.failures.join('; ')}` : ''),
    );
  }

  for (const run of r.dataScale ?? []) {
    const shape = (d: DataScaleRun['small']) => `${d.shape.chats.toLocaleString('en')} chats / ${d.shape.messages.toLocaleString('en')} messages`;
    out.push(
      `\n### 8. Stored data at scale on ${run.dialect === 'sqlite' ? 'SQLite' : 'Postgres'}: ${shape(run.small)} against ${shape(run.large)} (median (p95) of ${run.reads[0]?.small.samplesMs.length ?? 0} sequential requests, ms)\n`,
      table(
        ['read', 'answer', 'small database', 'large database', 'large ÷ small'],
        run.reads.map((rd) => [
          rd.name,
          `${rd.large.items} items, ${(rd.large.bytes / 1024).toFixed(1)} KiB`,
          `${ms(rd.small.medianMs, 2)} (${ms(rd.small.p95Ms, 1)})`,
          `${ms(rd.large.medianMs, 2)} (${ms(rd.large.p95Ms, 1)})`,
          ratio(rd.large.medianMs, rd.small.medianMs),
        ]),
      ),
    );
  }
  return out.join('\n');
}

const cpuPerDelta = (l: ConcurrencyLevel): string =>
  l.summary.n > 0 ? `${((l.usage.rootCpuS * 1e6) / l.summary.n).toFixed(0)} / ${((l.usage.rootCpuS * 1e6) / l.chats).toFixed(0)}` : 'n/a';

/** The performance goals (BENCHMARKS.md) against this run's figures: one line each, met or not. */
function renderGoals(r: BenchResults): string {
  const rows: string[][] = [];
  const goal = (what: string, target: string, value: string | null, met: boolean | null) =>
    rows.push([what, target, value ?? 'not run', met === null ? '' : met ? 'met' : '**not met**']);
  const lat = r.latency;
  if (lat) {
    const dp50 = lat.service.summary.p50 - lat.bare.summary.p50;
    const dp99 = lat.service.summary.p99 - lat.bare.summary.p99;
    goal('per delta, 1 chat: added p50 / p99', '≤ 0.2 / ≤ 2 ms', `${signed(dp50, 2)} / ${signed(dp99, 2)} ms`, dp50 <= 0.2 && dp99 <= 2);
  } else goal('per delta, 1 chat', '', null, null);
  const ten = (side: 'service' | 'bare') => r.concurrency?.[side].find((l) => l.chats === 10);
  const s10 = ten('service');
  const b10 = ten('bare');
  if (s10 && b10) {
    const dp50 = s10.summary.p50 - b10.summary.p50;
    const dp99 = s10.summary.p99 - b10.summary.p99;
    goal('per delta, 10 chats: added p50 / p99', '≤ 0.2 / ≤ 2 ms', `${signed(dp50, 2)} / ${signed(dp99, 2)} ms`, dp50 <= 0.2 && dp99 <= 2);
    const cpu = s10.usage.rootCpuS / b10.usage.rootCpuS;
    goal('CPU of the Node process, 10 chats, service ÷ bare', '≤ 1.2×', `×${cpu.toFixed(2)} (${cpuPerDelta(s10)} µs per delta / per turn against ${cpuPerDelta(b10)})`, cpu <= 1.2);
  } else goal('per delta and CPU, 10 chats', '', null, null);
  for (const raised of [true, false]) {
    const sat = (side: string) => r.saturated?.find((x) => x.side === side && x.raisedPriority === raised)?.level;
    const s = sat('service');
    const b = sat('bare');
    const label = `50 chats × 20 deltas/s, clients ${raised ? 'raised' : 'at normal priority'}: added p50 / p99 ÷ bare`;
    if (s && b) {
      const dp50 = s.summary.p50 - b.summary.p50;
      const q99 = s.summary.p99 / b.summary.p99;
      goal(label, '≤ 2 ms / ≤ 1.5×', `${signed(dp50, 2)} ms / ×${q99.toFixed(2)}`, dp50 <= 2 && q99 <= 1.5);
      if (!raised) {
        const cpu = s.usage.rootCpuS / b.usage.rootCpuS;
        goal('CPU of the Node process, 50 chats, service ÷ bare', '≤ 1.2×', `×${cpu.toFixed(2)} (${cpuPerDelta(s)} µs against ${cpuPerDelta(b)})`, cpu <= 1.2);
      }
    } else goal(label, '', null, null);
  }
  const fd = r.firstDelta;
  if (fd) {
    const p50 = (xs: { totalMs: number }[]) => median(xs.map((x) => x.totalMs));
    const warm = p50(fd.service.warm) / p50(fd.bare.warm);
    // The relay's own ratio says how much of it is the WebSocket hop, which every deployment has.
    const relayWarm = fd.relay ? `; relay ÷ bare ×${(p50(fd.relay.warm) / p50(fd.bare.warm)).toFixed(2)}` : '';
    goal('first delta, warm: service ÷ bare', '≤ 1.05×', `×${warm.toFixed(2)} (${ms(p50(fd.service.warm), 0)} vs ${ms(p50(fd.bare.warm), 0)} ms${relayWarm})`, warm <= 1.05);
    if (fd.servicePrewarm) {
      const pre = p50(fd.servicePrewarm.cold) / p50(fd.service.warm);
      // The bare SDK's own ratio says how much of it is the CLI's first turn, which no service can take away.
      const bare = fd.barePrewarm ? `; bare SDK prewarmed ÷ bare warm ×${(p50(fd.barePrewarm.cold) / p50(fd.bare.warm)).toFixed(2)}` : '';
      goal('first delta, new chat prewarmed on subscribe ÷ warm', '≤ 1.3×', `×${pre.toFixed(2)} (${ms(p50(fd.servicePrewarm.cold), 0)} vs ${ms(p50(fd.service.warm), 0)} ms${bare})`, pre <= 1.3);
    }
    const cold = p50(fd.service.cold) - p50(fd.bare.cold);
    goal('first delta, first message without subscribe: service − bare cold query()', '≤ 0 ms', `${signed(cold, 0)} ms (${ms(p50(fd.service.cold), 0)} vs ${ms(p50(fd.bare.cold), 0)} ms)`, cold <= 0);
  } else goal('first delta', '', null, null);
  if (r.startup) {
    const rss = r.startup.medianRestRssBytes / 2 ** 20;
    goal('RSS at rest, compiled service as npm start runs it', '≤ 90 MB', `${rss.toFixed(0)} MB`, rss <= 90);
  } else goal('RSS at rest', '', null, null);
  for (const run of r.dataScale ?? []) {
    const worst = run.reads.reduce((w, rd) => (rd.large.medianMs / rd.small.medianMs > w.q ? { q: rd.large.medianMs / rd.small.medianMs, name: rd.name } : w), { q: 0, name: '' });
    goal(`10,000 chats / 1,000,000 messages ÷ 1,000 messages, slowest read (${run.dialect})`, '≤ 2×', `×${worst.q.toFixed(2)} (${worst.name})`, worst.q <= 2);
  }
  if (!r.dataScale) goal('stored data at scale', '', null, null);
  if (r.crossNode) {
    const d = r.crossNode.otherNode.p50 - r.crossNode.sameNode.p50;
    goal('cross-node, 10 chats: socket on another node − on the agent node, p50', '≤ 1 ms', `${signed(d, 2)} ms`, d <= 1);
  } else goal('cross-node', '', null, null);
  return `\n### Goals\n\n${table(['goal', 'target', 'this run', ''], rows)}`;
}
