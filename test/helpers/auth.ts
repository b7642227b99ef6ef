import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { addUser } from '../../src/auth/accounts.js';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase } from '../../src/db/database.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { Store } from '../../src/store/store.js';
import { makeTempDir, startTestServer, type TestServer } from './test-server.js';

/** A user made for a test, with the token `users add` printed for them. */
export interface TestUser {
  id: string;
  name: string;
  token: string;
  tokenId: string;
}

/** A handle on the SQLite file of a test folder (the same file the server uses); close it when done. */
export async function openStore(dir: string): Promise<{ store: Store; close: () => Promise<void> }> {
  const config = loadConfig({ DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}` });
  const db = await openDatabase(config.DATABASE_URL);
  return { store: new Store(db), close: () => db.destroy() };
}

/** Adds users to the database of `dir` (the first one switches authentication on), as `users add` does. */
export async function seedUsers(dir: string, names: string[]): Promise<Record<string, TestUser>> {
  const { store, close } = await openStore(dir);
  try {
    const users: Record<string, TestUser> = {};
    for (const name of names) {
      const t = await addUser(store, name);
      users[name] = { id: t.user.id, name, token: t.token, tokenId: t.id };
    }
    return users;
  } finally {
    await close();
  }
}

/** A test server whose database already has these users: authentication is on from its start. */
export async function startAuthServer(
  names: string[],
  env: Record<string, string> = {},
): Promise<{ server: TestServer; users: Record<string, TestUser> }> {
  const dir = makeTempDir();
  const users = await seedUsers(dir, names);
  return { server: await startTestServer(env, dir), users };
}

export interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** One REST call over real HTTP; `token` becomes `Authorization: Bearer <token>`. */
export async function api<T = unknown>(
  baseUrl: string,
  method: string,
  route: string,
  options: { token?: string; json?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const res = await fetch(baseUrl + route, { method, headers, body });
  const text = await res.text();
  const isJson = (res.headers.get('content-type') ?? '').includes('json');
  return { status: res.status, headers: res.headers, body: (isJson && text ? JSON.parse(text) : text) as T };
}

/** A request with a Host header of our choosing (fetch does not let a caller set it). */
export function rawRequest(
  baseUrl: string,
  method: string,
  route: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const url = new URL(route, baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** How a WebSocket attempt ended up: admitted (the `connected` greeting came) or closed with a code. */
export type SocketOutcome =
  | { admitted: true; socket: WebSocket; protocol: string; events: ServerEvent[]; closed: Promise<number> }
  | { admitted: false; code: number; reason: string };

/**
 * Opens a socket and waits for the server's verdict: the `connected` greeting, or a close. A refusal still
 * upgrades (so `open` fires) and is then closed with 4401/4403.
 */
export function openSocket(
  url: string,
  protocols?: string[],
  options: WebSocket.ClientOptions = {},
): Promise<SocketOutcome> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocols, options);
    const events: ServerEvent[] = [];
    let admitted = false;
    const closed = new Promise<number>((done) => socket.once('close', (code) => done(code)));
    socket.on('message', (data) => {
      const event = JSON.parse(data.toString()) as ServerEvent;
      events.push(event);
      if (event.type === 'connected' && !admitted) {
        admitted = true;
        resolve({ admitted: true, socket, protocol: socket.protocol, events, closed });
      }
    });
    socket.on('close', (code, reason) => {
      if (!admitted) resolve({ admitted: false, code, reason: reason.toString() });
    });
    socket.on('error', (err) => {
      if (!admitted) reject(err);
    });
  });
}

/** Sends a frame and resolves with the first event after it that matches. */
export function request(
  socket: WebSocket,
  events: ServerEvent[],
  frame: unknown,
  match: (e: ServerEvent) => boolean,
  timeoutMs = 10_000,
): Promise<ServerEvent> {
  const from = events.length;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(poll);
      reject(new Error(`no matching event; got ${events.slice(from).map((e) => JSON.stringify(e)).join(', ')}`));
    }, timeoutMs);
    const poll = setInterval(() => {
      const found = events.slice(from).find(match);
      if (found) {
        clearTimeout(timer);
        clearInterval(poll);
        resolve(found);
      }
    }, 5);
    socket.send(JSON.stringify(frame));
  });
}
