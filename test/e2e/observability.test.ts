import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';

/** The value of one sample line of a Prometheus text exposition (`name{labels} value`). */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('observability', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({ AGENT_PREWARM: 'false' });
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
    await client.close();
  });
});
