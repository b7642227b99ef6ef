import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';

const NODE_ID = 'obs-node-1';

/** `name{a="1",b="2"}` as its name and its labels, sorted (prom-client puts default labels first or last). */
const seriesKey = (series: string): string => {
  const [name, labels = ''] = series.replace(/\}$/, '').split('{');
  return `${name}{${labels.split(',').filter((l) => l.length > 0).sort().join(',')}}`;
};

/**
 * The value of one sample line of a Prometheus text exposition (`name{labels} value`); `series` names the labels
 * other than `node`, which every series carries.
 */
const sample = (text: string, series: string): number | undefined => {
  const node = `node="${NODE_ID}"`;
  const wanted = seriesKey(series.endsWith('}') ? `${series.slice(0, -1)},${node}}` : `${series}{${node}}`);
  const line = text.split('\n').find((l) => seriesKey(l.slice(0, l.lastIndexOf(' '))) === wanted);
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};

describe('observability', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({ AGENT_PREWARM: 'false', NODE_ID });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('/readyz answers once the database does', async () => {
    const res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/metrics counts queries, deltas, cost, first-delta and duration, agents, sockets and errors', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await client.waitForEnd(await client.chat(chatId, 'one two three four five'));
    const stopped = await client.chat(chatId, '/slow 50 40');
    await client.waitFor((e) => e.type === 'text_delta' && 'query_id' in e && e.query_id === stopped);
    client.send({ type: 'stop', chat_id: chatId });
    await client.waitForEnd(stopped);
    client.send('not json');
    await client.waitFor((e) => e.type === 'error' && e.code === 'bad_frame');

    const res = await fetch(`${server.url}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(sample(text, 'chat_queries_total{outcome="success"}')).toBe(1);
    expect(sample(text, 'chat_queries_total{outcome="cancelled"}')).toBe(1);
    const deltas = client.events.filter((e) => e.type === 'text_delta').length;
    expect(sample(text, 'chat_text_deltas_total')).toBe(deltas);
    expect(sample(text, 'chat_cost_usd_total')).toBeGreaterThan(0);
    expect(sample(text, 'chat_first_delta_seconds_count')).toBe(2);
    expect(sample(text, 'chat_query_duration_seconds_count{outcome="success"}')).toBe(1);
    expect(sample(text, 'agent_live_agents')).toBe(1);
    expect(sample(text, 'ws_connections')).toBe(1);
    expect(sample(text, 'chat_errors_total{kind="bad_frame"}')).toBe(1);
    expect(text).toContain('process_resident_memory_bytes');
    // Every series names the node it comes from (NODE_ID), so a deployment's nodes can be told apart.
    const series = text.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));
    expect(series.filter((l) => !l.includes(`node="${NODE_ID}"`))).toEqual([]);
    await client.close();
  });
});
