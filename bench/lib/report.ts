import type { MachineInfo } from './machine.js';
import { QUIET_MACHINE_PCT } from './proc.js';
import type { RestResult, SeedResult } from './rest.js';
import type { ConcurrencyLevel, FirstDeltaResult, LatencyResult, SaturatedRun } from './scenarios.js';
import { median } from './stats.js';
import type { StartupResult } from './startup.js';
import { renderWebClientTable, type WebClientResult } from './web-client.js';

/** Everything one run measured: written as bench/results/<date>.json and printed as the tables below. */
export interface BenchResults {
  date: string;
  startedAt: string;
  /** The whole run, waiting for a quiet machine included (machine.waitedForQuietS). */
  durationS: number;
  quick: boolean;
  /** busyBeforeRunPct: CPU use of the whole machine (% of all cores) just before the run; other work skews figures. */
  machine: MachineInfo & { busyBeforeRunPct: number; waitedForQuietS: number };
  /** Service variables the benchmark set (beyond the fixed fake-model configuration in lib/service.ts). */
  serviceSettings: Record<string, string>;
  clock: {
    /** (wall − monotonic) constants of each process, ms (lib/clock.ts). */
    fakeOffsetMs: number;
    benchOffsetMs: number;
    bareOffsetMs: number;
    /** Corrections added to every service / bare-SDK latency. */
    serviceSkewMs: number;
    bareSkewMs: number;
  };
  startup: StartupResult;
  /** relay: the minimal relay (bench/relay-server.ts); absent in results written before it existed. */
  latency: { service: LatencyResult; bare: LatencyResult; relay?: LatencyResult };
  firstDelta: {
    service: FirstDeltaResult;
    bare: FirstDeltaResult;
    /** The service with its prewarm setting on, if src/ has one; null otherwise. */
    servicePrewarm: (FirstDeltaResult & { variable: string; value: string; thinkMs: number }) | null;
    prewarmNote: string;
  };
  concurrency: { service: ConcurrencyLevel[]; bare: ConcurrencyLevel[]; relay?: ConcurrencyLevel[]; serviceShutdownMs: number };
  /** 3b: the saturated case, each side with the clients at raised and at normal priority. */
  saturated?: SaturatedRun[];
  rest: { seed: SeedResult; history: RestResult; list: RestResult };
  /** The web client in headless Chromium; null when Chromium is missing. */
  webClient: WebClientResult | null;
  cleanup: { ourAgentProcessesLeft: number[]; otherAgentProcesses: number[] };
}

const ms = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const signed = (v: number, digits = 1): string => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
const ratio = (a: number, b: number): string => (b > 0 ? `×${(a / b).toFixed(2)}` : 'n/a');

const table = (head: string[], rows: string[][]): string =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const perLevel = (r: BenchResults, f: (l: ConcurrencyLevel) => string): string =>
  (['service', 'bare'] as const)
    .map((side) => `${side === 'bare' ? 'bare SDK' : 'service'} ${r.concurrency[side].map((l) => `${l.chats}: ${f(l)}`).join(', ')}`)
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
      (r.quick ? ' — QUICK SMOKE RUN, figures not comparable' : ''),
  );

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
        ...(lr
          ? [['added by the service over the relay (service − relay)', '', signed(ls.p50 - lr.p50, 2), signed(ls.p99 - lr.p99, 2)]]
          : []),
      ],
    ),
  );

  const fd = r.firstDelta;
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
      ['', 'warm (2nd message of a chat)', 'cold (1st message of a new chat)', 'cold, agent prewarmed on subscribe'],
      [
        ['bare SDK', cell(fd.bare.warm), cell(fd.bare.cold), 'n/a'],
        ['service', cell(fd.service.warm), cell(fd.service.cold), prewarm],
        [
          '**added by the service**',
          signed(p50(fd.service.warm) - p50(fd.bare.warm), 0),
          signed(p50(fd.service.cold) - p50(fd.bare.cold), 0),
          '',
        ],
      ],
    ),
    `\n${fd.prewarmNote}`,
  );

  const levels = r.concurrency.service.map((s) => s.chats);
  const rows: string[][] = [];
  for (const n of levels) {
    const s = r.concurrency.service.find((l) => l.chats === n);
    const b = r.concurrency.bare.find((l) => l.chats === n);
    const rl = r.concurrency.relay?.find((l) => l.chats === n);
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
        `${u.childrenCpuS.toFixed(2)} (${((u.childrenCpuS / u.wallS) * 100).toFixed(0)}%)`,
        mb(u.rootPeakRss),
        `${mb(u.childrenPeakRss)} (${u.maxChildren} procs)`,
        (u.wallS).toFixed(1),
        String(l.failures.length),
      ]);
    }
  }
  out.push(
    `\n### 3. Concurrency: N chats streaming \`${r.concurrency.service[0]?.command ?? ''}\` at once (service: one WebSocket per chat; bare: N query() in one Node process)\n`,
    table(
      [
        'chats',
        'side',
        'delta p50 ms',
        'delta p99 ms',
        'Node process CPU s (% of a core)',
        'agent CLIs CPU s (% of a core)',
        'Node process peak RSS MB',
        'agent CLIs peak RSS MB, sum',
        'window s',
        'failed',
      ],
      rows,
    ),
    `\nService SIGTERM → exit with ${levels.at(-1) ?? 0} idle agents alive: ${r.concurrency.serviceShutdownMs} ms. ` +
      `Machine CPU in each window (all processes, ${m.cores} cores = ${m.cores * 100}%): ` +
      perLevel(r, (l) => `${((l.usage.machineCpuS / l.usage.wallS) * 100).toFixed(0)}%`) +
      ` Time the Node process's main thread waited for a free core (run queue), s: ` +
      perLevel(r, (l) => l.usage.rootRunQueueWaitS.toFixed(2)) +
      ` Same for the benchmark's WebSocket clients (service side only matters), s: ` +
      perLevel(r, (l) => l.usage.benchRunQueueWaitS.toFixed(2)) +
      ` The clients' thread ran at nice ${r.concurrency.service[0]?.clientNice ?? 0} during the windows (the service, the bare worker and the agents at 0).`,
  );

  if (r.saturated?.length) {
    const sat = r.saturated;
    const bareOf = (raised: boolean) => sat.find((x) => x.side === 'bare' && x.raisedPriority === raised)?.level;
    out.push(
      `\n### 3b. Saturated: ${sat[0]!.level.chats} chats × \`${sat[0]!.level.command}\` (20 deltas/s each) at once\n`,
      table(
        ['client priority', 'side', 'delta p50 ms', 'delta p99 ms', 'p50 − bare', 'p99 ÷ bare', 'Node process CPU s', 'µs CPU per delta', 'failed'],
        sat.map(({ side, raisedPriority, level: l }) => {
          const b = bareOf(raisedPriority);
          const deltas = l.summary.n;
          return [
            raisedPriority ? `nice ${l.clientNice}` : `normal (nice ${l.clientNice})`,
            side === 'bare' ? 'bare SDK' : side,
            ms(l.summary.p50, 2),
            ms(l.summary.p99, 2),
            b && side !== 'bare' ? signed(l.summary.p50 - b.summary.p50, 2) : '',
            b && side !== 'bare' ? ratio(l.summary.p99, b.summary.p99) : '',
            l.usage.rootCpuS.toFixed(2),
            deltas > 0 ? ((l.usage.rootCpuS * 1e6) / deltas).toFixed(0) : 'n/a',
            String(l.failures.length),
          ];
        }),
      ),
      `\nµs CPU per delta: the Node process's CPU in the window over the deltas it delivered (start of the answers and their ends included).`,
    );
  }

  const rest = [r.rest.history, r.rest.list];
  out.push(
    `\n### 4. REST (autocannon, ${r.rest.list.connections} connections, ${r.rest.list.durationS} s each; ${r.rest.seed.chats.toLocaleString('en')} chats, one with ${r.rest.seed.messages.toLocaleString('en')} messages)\n`,
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

  const st = r.startup;
  out.push(
    `\n### 5. Start-up (median of ${st.runs} starts on an existing database)\n`,
    table(
      ['spawn → /healthz 200', 'RSS at rest (2 s after)', 'SIGTERM → exit, idle'],
      [[`${ms(st.medianStartupMs, 0)} ms`, `${mb(st.medianRestRssBytes)} MB`, `${median(st.shutdownMs).toFixed(0)} ms`]],
    ),
  );
  if (r.webClient) out.push(renderWebClientTable(r.webClient));
  return out.join('\n');
}
