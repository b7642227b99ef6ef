import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerEvent } from '../protocol/ws.js';

export interface MetricsSources {
  /** NODE_ID: every metric carries it as the `node` label, so one dashboard tells the nodes of a deployment apart. */
  node: string;
  liveAgents(): number;
  openSockets(): number;
}

/**
 * The service's Prometheus metrics, on a registry of its own (built per app: tests and several apps in one process
 * never share counters). Chat metrics come from a tap on every chat's event stream, so they count exactly what
 * clients were sent.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly queries: Counter<'outcome'>;
  private readonly deltas: Counter;
  private readonly cost: Counter;
  private readonly errors: Counter<'kind'>;
  private readonly queryDuration: Histogram<'outcome'>;
  private readonly firstDelta: Histogram;
  /** Start time of each running query, until its first delta / its end. */
  private readonly started = new Map<string, { at: number; sawDelta: boolean }>();

  constructor(sources: MetricsSources, private readonly now: () => number = () => performance.now()) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: sources.node });
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'agent_live_agents', help: 'Agent CLI processes alive', registers, collect() {
      this.set(sources.liveAgents());
    } });
    new Gauge({ name: 'ws_connections', help: 'Open WebSocket connections', registers, collect() {
      this.set(sources.openSockets());
    } });
    this.queries = new Counter({ name: 'chat_queries_total', help: 'Queries by how they ended', labelNames: ['outcome'], registers });
    this.deltas = new Counter({ name: 'chat_text_deltas_total', help: 'Text deltas streamed to clients', registers });
    this.cost = new Counter({ name: 'chat_cost_usd_total', help: 'Model cost reported by the agent, USD', registers });
    this.errors = new Counter({ name: 'chat_errors_total', help: 'Error events sent, by kind (code)', labelNames: ['kind'], registers });
    this.queryDuration = new Histogram({
      name: 'chat_query_duration_seconds',
      help: 'From the user message to the end of the answer',
      labelNames: ['outcome'],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.firstDelta = new Histogram({
      name: 'chat_first_delta_seconds',
      help: 'From the user message to the first streamed text',
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30],
      registers,
    });
  }

  /** Sees every event of every chat (wired as the event logs' tap). */
  observe = (event: ServerEvent): void => {
    switch (event.type) {
      case 'user_message':
        this.started.set(event.query_id, { at: this.now(), sawDelta: false });
        return;
      case 'text_delta': {
        this.deltas.inc();
        const start = this.started.get(event.query_id);
        if (start && !start.sawDelta) {
          start.sawDelta = true;
          this.firstDelta.observe((this.now() - start.at) / 1000);
        }
        return;
      }
      case 'result':
        this.cost.inc(event.cost);
        return this.ended(event.query_id, event.success ? 'success' : 'failure');
      case 'cancelled':
        return this.ended(event.query_id, 'cancelled');
      case 'error':
        this.errors.inc({ kind: event.code });
        if (event.query_id) this.ended(event.query_id, 'error');
        return;
      default:
        return;
    }
  };

  /** Errors answered to a frame (not part of a chat's stream). */
  frameError(code: string): void {
    this.errors.inc({ kind: code });
  }

  private ended(queryId: string, outcome: string): void {
    this.queries.inc({ outcome });
    const start = this.started.get(queryId);
    this.started.delete(queryId);
    if (start) this.queryDuration.observe({ outcome }, (this.now() - start.at) / 1000);
  }
}
