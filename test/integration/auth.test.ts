// Authentication over real HTTP and WebSockets: local mode, tokens on every route, the three ways a socket
// authenticates, tickets, start-up refusal, and browser safety (CORS, Origin, DNS rebinding).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createToken, revokeToken } from '../../src/auth/accounts.js';
import { redactUrl } from '../../src/auth/redact.js';
import type { Chat } from '../../src/protocol/chat.js';
import { api, openSocket, openStore, rawRequest, request, seedUsers, startAuthServer, type TestUser } from '../helpers/auth.js';
import { freePort, startServiceProcess, type ServiceProcess } from '../helpers/service-process.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';

const root = path.resolve(import.meta.dirname, '../..');
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const WRONG_TOKEN = 'act_' + 'x'.repeat(43);

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});
function track(server: TestServer): TestServer {
  cleanups.push(async () => {
    await server.close();
    fs.rmSync(server.dir, { recursive: true, force: true });
  });
  return server;
}

/** Every REST route of the OpenAPI document (so a new route is covered without editing this test). */
async function apiRoutes(server: TestServer, chatId: string): Promise<{ method: string; route: string; json?: unknown }[]> {
  const doc = (await api<{ paths: Record<string, Record<string, unknown>> }>(server.url, 'GET', '/openapi.json')).body;
  const routes: { method: string; route: string; json?: unknown }[] = [];
  for (const [p, methods] of Object.entries(doc.paths)) {
    if (!p.startsWith('/api')) continue;
    for (const method of Object.keys(methods)) {
      const route = p.replace('{id}', chatId) + (p.endsWith('/search') ? '?q=x' : '');
      const json = ['put', 'patch', 'post'].includes(method) ? { title: 'x' } : undefined;
      routes.push({ method: method.toUpperCase(), route, ...(json ? { json } : {}) });
    }
  }
  return routes;
}

describe('local mode (no user yet)', () => {
  let server: TestServer;
  afterEach(async () => {
    await server.close();
  });

  it('needs no token on loopback, for REST and the WebSocket', async () => {
    server = track(await startTestServer());
    const created = await api<Chat>(server.url, 'POST', '/api/chats', { json: { title: 'mine' } });
    expect(created.status).toBe(201);
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats')).body.map((c) => c.title)).toEqual(['mine']);
    const ws = await openSocket(server.wsUrl);
    expect(ws.admitted).toBe(true);
    if (ws.admitted) ws.socket.close();
  });

  it('refuses requests addressed to another host name (DNS rebinding) and accepts localhost', async () => {
    server = track(await startTestServer());
    const port = new URL(server.url).port;
    const rebound = await rawRequest(server.url, 'GET', '/api/chats', { host: `evil.example:${port}` });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).detail).toContain('localhost');
    expect((await rawRequest(server.url, 'GET', '/api/chats', { host: `localhost:${port}` })).status).toBe(200);
    expect((await rawRequest(server.url, 'GET', '/healthz', { host: `evil.example:${port}` })).status).toBe(200);

    const ws = await openSocket(server.wsUrl, undefined, { headers: { host: `evil.example:${port}` } });
    expect(ws).toMatchObject({ admitted: false, code: 4403 });
  });

  it('refuses a state-changing request from another site (cross-site simple POST, form or fetch), and nothing changes', async () => {
    server = track(await startTestServer({ CORS_ORIGINS: 'http://localhost:5173' }));
    const port = new URL(server.url).port;
    const existing = (await api<Chat>(server.url, 'POST', '/api/chats', { json: { title: 'mine' } })).body;
    /** What a page of another site can send without a CORS preflight: no custom header, a "simple" content type. */
    const simple = (method: string, route: string, origin: string, contentType: string, body: string) =>
      fetch(server.url + route, { method, headers: { origin, 'content-type': contentType }, body });

    for (const origin of ['http://evil.example', `http://evil.example:${port}`, 'null', `http://127.0.0.1:${Number(port) + 1}`]) {
      for (const [type, body] of [
        ['text/plain', '{"title":"pwned"}'],
        ['application/x-www-form-urlencoded', 'title=pwned'],
        ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="title"\r\n\r\npwned\r\n--x--'],
      ] as const) {
        const res = await simple('POST', '/api/chats', origin, type, body);
        expect(res.status, `${origin} ${type}`).toBe(403);
        expect(((await res.json()) as { detail: string }).detail).toContain('CORS_ORIGINS');
      }
    }
    const forged = { origin: 'http://evil.example' };
    expect((await api(server.url, 'PATCH', `/api/chats/${existing.id}`, { json: { title: 'pwned' }, headers: forged })).status).toBe(403);
    expect((await api(server.url, 'DELETE', `/api/chats/${existing.id}`, { headers: forged })).status).toBe(403);
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats')).body.map((c) => c.title)).toEqual(['mine']);
    // Reads stay open (another site's page cannot read the answer: no CORS headers for it).
    expect((await api(server.url, 'GET', '/api/chats', { headers: forged })).status).toBe(200);

    // The service's own pages (whatever loopback name they were loaded from), CORS_ORIGINS, and non-browser
    // clients (no Origin) keep working.
    expect((await api(server.url, 'POST', '/api/chats', { json: { title: 'same origin' }, headers: { origin: server.url } })).status).toBe(201);
    const viaLocalhost = await fetch(`http://localhost:${port}/api/chats`, {
      method: 'POST',
      headers: { origin: `http://localhost:${port}`, 'content-type': 'application/json' },
      body: '{"title":"localhost page"}',
    });
    expect(viaLocalhost.status).toBe(201);
    expect((await api(server.url, 'POST', '/api/chats', { json: { title: 'dev server' }, headers: { origin: 'http://localhost:5173' } })).status).toBe(201);
    expect((await api(server.url, 'POST', '/api/chats', { json: { title: 'curl' } })).status).toBe(201);
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats')).body.map((c) => c.title).sort()).toEqual(
      ['curl', 'dev server', 'localhost page', 'mine', 'same origin'],
    );
    // The socket follows the same rule (close 4403 from another site).
    expect(await openSocket(server.wsUrl, undefined, { origin: 'http://evil.example' })).toMatchObject({ admitted: false, code: 4403 });
  });

  it('refuses cross-site state changes with AUTH_DISABLED too (no credential stands in the way there either)', async () => {
    server = track(await startTestServer({ AUTH_DISABLED: 'true' }));
    const res = await fetch(`${server.url}/api/chats`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(res.status).toBe(403);
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats')).body).toEqual([]);
  });

  it('turns authentication on within seconds of the first `users add`, and closes sockets opened without a token', async () => {
    server = track(await startTestServer());
    const ws = await openSocket(server.wsUrl);
    if (!ws.admitted) throw new Error('local socket refused');
    const chat = (await api<Chat>(server.url, 'POST', '/api/chats')).body;

    const added = Date.now();
    const { alice } = await seedUsers(server.dir, ['alice']);
    let status = 200;
    while (status !== 401 && Date.now() - added < 5_000) {
      await delay(100);
      status = (await api(server.url, 'GET', '/api/chats')).status;
    }
    expect(status).toBe(401);
    expect(Date.now() - added).toBeLessThan(4_000);

    ws.socket.send(JSON.stringify({ type: 'subscribe', chat_id: chat.id }));
    expect(await ws.closed).toBe(4401);
    // The chat of local mode has no owner: alice does not see it.
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats', { token: alice!.token })).body).toEqual([]);
  });
});

describe('with authentication on', () => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let revoked: string;
  let aliceChat: Chat;

  beforeAll(async () => {
    const started = await startAuthServer(['alice', 'bob']);
    server = track(started.server);
    alice = started.users.alice!;
    bob = started.users.bob!;
    const { store, close } = await openStore(server.dir);
    const old = await createToken(store, 'alice', 'old laptop');
    await revokeToken(store, old.id);
    await close();
    revoked = old.token;
    aliceChat = (await api<Chat>(server.url, 'POST', '/api/chats', { token: alice.token, json: { title: 'a1' } })).body;
  });

  it.each([
    ['no token', {}],
    ['a wrong token', { authorization: `Bearer ${WRONG_TOKEN}` }],
    ['a revoked token', 'revoked'],
    ['a Basic header', { authorization: 'Basic YWxpY2U6cGFzcw==' }],
    ['an empty Bearer', { authorization: 'Bearer ' }],
  ] as const)('answers 401 with WWW-Authenticate on every /api route for %s', async (_what, credentials) => {
    const headers: Record<string, string> =
      credentials === 'revoked' ? { authorization: `Bearer ${revoked}` } : Object.fromEntries(Object.entries(credentials));
    const routes = await apiRoutes(server, aliceChat.id);
    expect(routes.map((r) => `${r.method} ${r.route.split('?')[0]}`)).toEqual(
      expect.arrayContaining([
        'GET /api/chats',
        'POST /api/chats',
        'GET /api/chats/search',
        `GET /api/chats/${aliceChat.id}`,
        `PUT /api/chats/${aliceChat.id}`,
        `PATCH /api/chats/${aliceChat.id}`,
        `DELETE /api/chats/${aliceChat.id}`,
        `GET /api/chats/${aliceChat.id}/messages`,
        'POST /api/ws-ticket',
      ]),
    );
    for (const { method, route, json } of [...routes, { method: 'GET', route: '/api/no-such-route' }]) {
      const res = await api<{ detail: string }>(server.url, method, route, { headers, ...(json ? { json } : {}) });
      expect({ method, route, status: res.status }).toEqual({ method, route, status: 401 });
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(res.body.detail).toEqual(expect.any(String));
    }
    // Nothing was changed by the refused requests.
    const still = await api<Chat>(server.url, 'GET', `/api/chats/${aliceChat.id}`, { token: alice.token });
    expect(still.body.title).toBe('a1');
  });

  it('keeps the probes and the API description public', async () => {
    expect((await api(server.url, 'GET', '/healthz')).status).toBe(200);
    expect((await api(server.url, 'GET', '/openapi.json')).status).toBe(200);
    expect((await api(server.url, 'GET', '/docs/')).status).toBe(200);
  });

  it('serves every route to a valid token', async () => {
    const t = { token: alice.token };
    const created = await api<Chat>(server.url, 'POST', '/api/chats', { ...t, json: { title: 'plans' } });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect((await api(server.url, 'GET', `/api/chats/${id}`, t)).status).toBe(200);
    expect((await api(server.url, 'PATCH', `/api/chats/${id}`, { ...t, json: { title: 'plans 2' } })).status).toBe(200);
    expect((await api(server.url, 'PUT', `/api/chats/${id}`, { ...t, json: { title: 'plans 3' } })).status).toBe(200);
    expect((await api(server.url, 'GET', `/api/chats/${id}/messages`, t)).body).toEqual([]);
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats/search?q=plans', t)).body.map((c) => c.title)).toEqual(['plans 3']);
    expect((await api(server.url, 'DELETE', `/api/chats/${id}`, t)).body).toEqual({ success: true });
    expect((await api(server.url, 'GET', `/api/chats/${UNKNOWN_ID}`, t)).status).toBe(404);
  });

  it('records when a token was last used, writing at most once a minute', async () => {
    const { store, close } = await openStore(server.dir);
    try {
      await api(server.url, 'GET', '/api/chats', { token: bob.token });
      const first = (await store.tokens.list(bob.id))[0]!.last_used_at;
      expect(first).not.toBeNull();
      await delay(20);
      await api(server.url, 'GET', '/api/chats', { token: bob.token });
      expect((await store.tokens.list(bob.id))[0]!.last_used_at).toBe(first);
    } finally {
      await close();
    }
  });

  describe('the WebSocket', () => {
    it.each([
      ['no credentials', undefined, {}],
      ['a wrong token in the subprotocol', ['agent-chat', `bearer.${WRONG_TOKEN}`], {}],
      ['a revoked token in the subprotocol', 'revoked', {}],
      ['a wrong Authorization header', undefined, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } }],
      ['an unknown ticket', 'ticket', {}],
    ] as const)('is closed with 4401 for %s', async (_what, protocols, options) => {
      let url = server.wsUrl;
      let offered: string[] | undefined;
      if (protocols === 'revoked') offered = ['agent-chat', `bearer.${revoked}`];
      else if (protocols === 'ticket') url += '?ticket=not-a-ticket';
      else offered = protocols ? [...protocols] : undefined;
      const outcome = await openSocket(url, offered, { ...options });
      expect(outcome).toMatchObject({ admitted: false, code: 4401 });
    });

    it('accepts a bearer.<token> subprotocol, selecting agent-chat and never echoing the token', async () => {
      const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${alice.token}`]);
      if (!outcome.admitted) throw new Error(`refused: ${outcome.code}`);
      // The Sec-WebSocket-Protocol the server answered (ws checks it is one the client offered).
      expect(outcome.protocol).toBe('agent-chat');
      const history = await request(outcome.socket, outcome.events, { type: 'subscribe', chat_id: aliceChat.id }, (e) =>
        ['history', 'error'].includes(e.type),
      );
      expect(history.type).toBe('history');
      outcome.socket.close();
    });

    it('accepts an Authorization: Bearer header on the upgrade', async () => {
      const outcome = await openSocket(server.wsUrl, undefined, { headers: { authorization: `Bearer ${alice.token}` } });
      expect(outcome.admitted).toBe(true);
      if (outcome.admitted) outcome.socket.close();
    });

    it('accepts a ticket from POST /api/ws-ticket once, for the user who asked for it', async () => {
      const res = await api<{ ticket: string; expires_in: number }>(server.url, 'POST', '/api/ws-ticket', { token: bob.token });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ticket: expect.any(String), expires_in: 30 });
      const url = `${server.wsUrl}?ticket=${encodeURIComponent(res.body.ticket)}`;

      const first = await openSocket(url);
      if (!first.admitted) throw new Error(`refused: ${first.code}`);
      // The ticket stands for bob: alice's chat does not exist for this socket.
      const answer = await request(first.socket, first.events, { type: 'subscribe', chat_id: aliceChat.id }, (e) =>
        ['history', 'error'].includes(e.type),
      );
      expect(answer).toMatchObject({ type: 'error', code: 'not_found' });
      first.socket.close();

      expect(await openSocket(url)).toMatchObject({ admitted: false, code: 4401 });
    });

    it('refuses a ticket after its 30 seconds', async () => {
      const res = await api<{ ticket: string }>(server.url, 'POST', '/api/ws-ticket', { token: alice.token });
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 31_000 });
      try {
        expect(await openSocket(`${server.wsUrl}?ticket=${res.body.ticket}`)).toMatchObject({ admitted: false, code: 4401 });
      } finally {
        vi.useRealTimers();
      }
    });

    it('closes an open socket with 4401 once its token is revoked', async () => {
      const { store, close } = await openStore(server.dir);
      const extra = await createToken(store, 'bob', 'short-lived');
      const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${extra.token}`]);
      if (!outcome.admitted) throw new Error('refused');
      await revokeToken(store, extra.id);
      await close();
      outcome.socket.send(JSON.stringify({ type: 'subscribe', chat_id: UNKNOWN_ID }));
      expect(await outcome.closed).toBe(4401);
    });
  });
});

describe('browser safety', () => {
  const APP = 'https://app.example.com';
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    const started = await startAuthServer(['carol'], { CORS_ORIGINS: `${APP}, http://localhost:5173` });
    server = track(started.server);
    token = started.users.carol!.token;
  });

  it('answers a CORS preflight from an allowed origin, allowing the Authorization header', async () => {
    const res = await api(server.url, 'OPTIONS', '/api/chats', {
      headers: {
        origin: APP,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(res.headers.get('access-control-allow-methods')).toContain('DELETE');
  });

  it('adds CORS headers for an allowed origin, also to a 401, and none for another origin', async () => {
    const ok = await api(server.url, 'GET', '/api/chats', { token, headers: { origin: APP } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    const refused = await api(server.url, 'GET', '/api/chats', { headers: { origin: APP } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(APP);
    const other = await api(server.url, 'GET', '/api/chats', { token, headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
    const plain = track(await startTestServer());
    const res = await api(plain.url, 'GET', '/api/chats', { headers: { origin: APP } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    await plain.close();
  });

  it('closes a WebSocket from a foreign Origin with 4403, even with a valid token', async () => {
    const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${token}`], { origin: 'https://evil.example' });
    expect(outcome).toMatchObject({ admitted: false, code: 4403 });
  });

  it.each([
    ['an origin of CORS_ORIGINS', APP],
    ['another origin of CORS_ORIGINS', 'http://localhost:5173'],
    ['the service own origin', 'same'],
    ['no Origin header (not a browser)', undefined],
  ])('admits a WebSocket from %s', async (_what, origin) => {
    const value = origin === 'same' ? server.url : origin;
    const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${token}`], value ? { origin: value } : {});
    expect(outcome.admitted).toBe(true);
    if (outcome.admitted) outcome.socket.close();
  });

  it('checks the Origin in local mode too (a page cannot drive the local agent)', async () => {
    const local = track(await startTestServer());
    expect(await openSocket(local.wsUrl, undefined, { origin: 'https://evil.example' })).toMatchObject({
      admitted: false,
      code: 4403,
    });
    const same = await openSocket(local.wsUrl, undefined, { origin: local.url });
    expect(same.admitted).toBe(true);
    if (same.admitted) same.socket.close();
    await local.close();
  });
});

describe('start-up', () => {
  const services: ServiceProcess[] = [];
  afterEach(async () => {
    for (const s of services.splice(0)) {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });

  const envFor = (dir: string) => ({
    DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
    WORKSPACE_DIR: path.join(dir, 'workspaces'),
    AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    LOG_LEVEL: 'info',
  });

  it('refuses to listen on 0.0.0.0 while no user exists: exit code 2 and a message saying what to do', async () => {
    const dir = makeTempDir();
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', PORT: String(port), HOST: '0.0.0.0', ...envFor(dir) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(output).toContain('Refusing to start');
    expect(output).toContain('HOST=0.0.0.0');
    expect(output).toContain('users add');
    expect(output).toContain('AUTH_DISABLED=true');
    // Nothing was left listening.
    expect(await fetch(`http://127.0.0.1:${port}/healthz`).then(() => 'up', () => 'down')).toBe('down');
  });

  it('listens on 0.0.0.0 once a user exists, and requires tokens there', async () => {
    const dir = makeTempDir();
    const { dave } = await seedUsers(dir, ['dave']);
    const service = await startServiceProcess({ ...envFor(dir), HOST: '0.0.0.0' });
    services.push(service);
    expect((await api(service.url, 'GET', '/api/chats')).status).toBe(401);
    expect((await api(service.url, 'GET', '/api/chats', { token: dave!.token })).status).toBe(200);
  });

  it('starts on 0.0.0.0 with AUTH_DISABLED=true, warning loudly, and asks for no token', async () => {
    const dir = makeTempDir();
    await seedUsers(dir, ['erin']);
    const service = await startServiceProcess({ ...envFor(dir), HOST: '0.0.0.0', AUTH_DISABLED: 'true' });
    services.push(service);
    expect(service.output()).toContain('AUTHENTICATION IS DISABLED');
    expect((await api(service.url, 'GET', '/api/chats')).status).toBe(200);
    const ws = await openSocket(service.wsUrl);
    expect(ws.admitted).toBe(true);
    if (ws.admitted) ws.socket.close();
  });

  it('never logs a WebSocket ticket', async () => {
    const dir = makeTempDir();
    const { frank } = await seedUsers(dir, ['frank']);
    const service = await startServiceProcess({ ...envFor(dir), LOG_LEVEL: 'debug' });
    services.push(service);
    const { ticket } = (await api<{ ticket: string }>(service.url, 'POST', '/api/ws-ticket', { token: frank!.token })).body;
    const ws = await openSocket(`${service.wsUrl}?ticket=${ticket}&x=1`, ['agent-chat', `bearer.${frank!.token}`]);
    expect(ws.admitted).toBe(true);
    if (ws.admitted) ws.socket.close();
    await delay(200);
    expect(service.output()).toContain('ticket=[REDACTED]');
    expect(service.output()).not.toContain(ticket);
    expect(service.output()).not.toContain(frank!.token);
  });
});

describe('redactUrl', () => {
  it('replaces ticket values wherever they are in the query', () => {
    expect(redactUrl('/ws/chat?ticket=abc')).toBe('/ws/chat?ticket=[REDACTED]');
    expect(redactUrl('/ws/chat?x=1&ticket=abc&y=2')).toBe('/ws/chat?x=1&ticket=[REDACTED]&y=2');
    expect(redactUrl('/api/chats?q=ticket')).toBe('/api/chats?q=ticket');
  });
});
