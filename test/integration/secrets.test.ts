// Credentials and throttling: failed WebSocket authentications count against the same per-address limit as REST,
// tokens never reach the log wherever a client puts them (captured from a real service process), and /metrics
// needs its own credential (METRICS_TOKEN), not a user's token.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api, openSocket, seedUsers, startAuthServer, type SocketOutcome, type TestUser } from '../helpers/auth.js';
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';

const WRONG_TOKEN = `act_${'w'.repeat(43)}`;
const METRICS_TOKEN = 'metrics-secret-0123456789abcdef';

/** The HTTP status of a refused upgrade, or the close code of an upgraded socket. */
function upgradeOutcome(url: string, protocols?: string[]): Promise<{ status?: number; code?: number }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, protocols);
    socket.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      socket.terminate();
    });
    socket.on('close', (code) => resolve({ code }));
    socket.on('error', () => undefined);
  });
}

describe('failed WebSocket authentications are throttled with REST', () => {
  const servers: TestServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  it('counts each refused socket against the per-address limit; past it the upgrade is a 429', async () => {
    const { server, users } = await startAuthServer(['alice'], { RATE_LIMIT_PER_MINUTE: '4' });
    servers.push(server);
    for (let i = 0; i < 3; i++) {
      expect(await upgradeOutcome(server.wsUrl, ['agent-chat', `bearer.${WRONG_TOKEN}`])).toEqual({ code: 4401 });
    }
    // One failed REST attempt from the same address uses up the shared allowance.
    expect((await api(server.url, 'GET', '/api/chats', { headers: { authorization: `Bearer ${WRONG_TOKEN}` } })).status).toBe(401);
    expect(await upgradeOutcome(server.wsUrl, ['agent-chat', `bearer.${WRONG_TOKEN}`])).toEqual({ status: 429 });
    expect(await upgradeOutcome(`${server.wsUrl}?ticket=guess`)).toEqual({ status: 429 });
    expect((await api(server.url, 'GET', '/api/chats')).status).toBe(429);
    // A valid token is a user's own allowance, and sockets that authenticate are not counted.
    const ok: SocketOutcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${users.alice!.token}`]);
    expect(ok.admitted).toBe(true);
    if (ok.admitted) ok.socket.close();
  });

  it('does not count sockets in local mode', async () => {
    const server = await startTestServer({ RATE_LIMIT_PER_MINUTE: '2' });
    servers.push(server);
    for (let i = 0; i < 5; i++) {
      const outcome = await openSocket(server.wsUrl);
      expect(outcome.admitted).toBe(true);
      if (outcome.admitted) outcome.socket.close();
    }
  });
});

describe('/metrics', () => {
  const servers: TestServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  it('with METRICS_TOKEN: only that token opens it, a user token does not', async () => {
    const { server, users } = await startAuthServer(['alice'], { METRICS_TOKEN });
    servers.push(server);
    const asUser = await api<{ detail: string }>(server.url, 'GET', '/metrics', { token: users.alice!.token });
    expect(asUser.status).toBe(401);
    expect(asUser.body.detail).toMatch(/METRICS_TOKEN/);
    expect((await api(server.url, 'GET', '/metrics')).status).toBe(401);
    const asOperator = await api<string>(server.url, 'GET', '/metrics', { token: METRICS_TOKEN });
    expect(asOperator.status).toBe(200);
    expect(asOperator.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(asOperator.body).toMatch(/^# HELP /m);
    expect(asOperator.body).toContain('chat_queries_total');
    // Per-user figures are not there at all: no metric is labelled with a user, a token or a chat.
    expect(asOperator.body).not.toMatch(/\{[^}]*(user|token|chat_id)[^}]*\}/);
    expect(asOperator.body).not.toContain(users.alice!.id);
  });

  it('without METRICS_TOKEN: refused once users exist, open in local mode', async () => {
    const { server, users } = await startAuthServer(['alice']);
    servers.push(server);
    const refused = await api<{ detail: string }>(server.url, 'GET', '/metrics', { token: users.alice!.token });
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toMatch(/METRICS_TOKEN/);
    const local = await startTestServer();
    servers.push(local);
    expect((await api(local.url, 'GET', '/metrics')).status).toBe(200);
  });
});

describe('tokens never reach the log (a real service process, its stdout captured)', () => {
  let service: ServiceProcess;
  let alice: TestUser;
  const dir = makeTempDir();
  beforeAll(async () => {
    alice = (await seedUsers(dir, ['alice'])).alice!;
    service = await startServiceProcess({
      DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
      WORKSPACE_DIR: path.join(dir, 'workspaces'),
      AGENT_HOME_DIR: path.join(dir, 'agent-home'),
      LOG_LEVEL: 'trace',
      METRICS_TOKEN,
      AGENT_PREWARM: 'false',
    });
  }, 180_000);
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('in the query string, the Authorization header, the subprotocol, a ticket, and the metrics credential', async () => {
    const token = alice.token;
    await fetch(`${service.url}/api/chats?token=${token}&access_token=${token}&x=${token}`);
    await fetch(`${service.url}/api/chats`, { headers: { authorization: `Bearer ${token}` } });
    await fetch(`${service.url}/api/chats`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } });
    await fetch(`${service.url}/api/chats/not-a-chat/messages?before=${token}`, { headers: { authorization: `Bearer ${token}` } });
    await fetch(`${service.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    await fetch(`${service.url}/metrics?token=${METRICS_TOKEN}`);
    const ticket = ((await (await fetch(`${service.url}/api/ws-ticket`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json()) as {
      ticket: string;
    }).ticket;
    for (const attempt of [
      openSocket(`${service.wsUrl}?ticket=${ticket}`),
      openSocket(`${service.wsUrl}?token=${token}`),
      openSocket(service.wsUrl, ['agent-chat', `bearer.${token}`]),
      openSocket(service.wsUrl, ['agent-chat', `bearer.${WRONG_TOKEN}`]),
      openSocket(service.wsUrl, undefined, { headers: { authorization: `Bearer ${token}` } }),
    ]) {
      const outcome = await attempt;
      if (outcome.admitted) {
        // A frame quoting the token does not get it logged either.
        outcome.socket.send(JSON.stringify({ type: 'subscribe', chat_id: token }));
        await new Promise((r) => setTimeout(r, 100));
        outcome.socket.close();
      }
    }
    await new Promise((r) => setTimeout(r, 500));
    const log = service.output();
    expect(log).toContain('incoming request');
    expect(log).toContain('[REDACTED]');
    for (const secret of [token, token.slice(4), WRONG_TOKEN, METRICS_TOKEN, ticket]) expect(log).not.toContain(secret);
  }, 60_000);
});
