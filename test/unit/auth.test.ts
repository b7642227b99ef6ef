// The pieces of authentication that need no server: token format, loopback and Origin rules, tickets, the
// auth-mode cache and its clock, and the migration's cascade from users to their chats.

import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccountError, addUser, createToken, listTokens, removeUser, revokeToken } from '../../src/auth/accounts.js';
import { AuthService } from '../../src/auth/auth.service.js';
import { isLoopbackHost, isLoopbackHostHeader } from '../../src/auth/loopback.js';
import { LOCAL_PRINCIPAL } from '../../src/auth/principal.js';
import { originAllowed, offeredSubprotocols, selectSubprotocol } from '../../src/auth/socket-admission.js';
import { TicketStore } from '../../src/auth/tickets.js';
import { bearerToken, hashToken, newApiToken } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { Store } from '../../src/store/store.js';
import { makeTempDir } from '../helpers/test-server.js';

describe('API tokens', () => {
  it('are act_ + 32 random bytes in base64url, hashed with SHA-256', () => {
    const token = newApiToken();
    expect(token).toMatch(/^act_[A-Za-z0-9_-]{43}$/);
    expect(newApiToken()).not.toBe(token);
    expect(hashToken(token)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('are read from an Authorization: Bearer header only', () => {
    expect(bearerToken('Bearer act_abc')).toBe('act_abc');
    expect(bearerToken('bearer   act_abc ')).toBe('act_abc');
    expect(bearerToken('Basic act_abc')).toBeUndefined();
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('loopback', () => {
  it.each(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'])('%s is a loopback HOST', (h) =>
    expect(isLoopbackHost(h)).toBe(true));
  it.each(['0.0.0.0', '::', '192.168.1.2', '10.0.0.1', 'example.com', '::ffff:10.0.0.1', '128.0.0.1'])('%s is not', (h) =>
    expect(isLoopbackHost(h)).toBe(false));

  it('accepts Host headers naming this machine, with any port, and nothing else', () => {
    for (const h of ['127.0.0.1:8000', 'localhost:8000', 'localhost', '[::1]:8000', 'app.localhost:5173']) {
      expect(isLoopbackHostHeader(h)).toBe(true);
    }
    for (const h of [undefined, '', 'evil.example:8000', '127.0.0.1.evil.example', 'localhost.evil.example', '0.0.0.0:8000']) {
      expect(isLoopbackHostHeader(h)).toBe(false);
    }
  });
});

describe('WebSocket Origin and subprotocols', () => {
  const allowed = ['https://app.example.com'];
  it('allows no Origin, an allowed origin, and the service own host; refuses the rest', () => {
    expect(originAllowed(undefined, 'chat.example.com', allowed)).toBe(true);
    expect(originAllowed('https://app.example.com', 'chat.example.com', allowed)).toBe(true);
    expect(originAllowed('https://chat.example.com', 'chat.example.com', allowed)).toBe(true);
    expect(originAllowed('http://127.0.0.1:8000', '127.0.0.1:8000', [])).toBe(true);
    expect(originAllowed('http://127.0.0.1:9999', '127.0.0.1:8000', [])).toBe(false);
    expect(originAllowed('https://evil.example', 'chat.example.com', allowed)).toBe(false);
    expect(originAllowed('null', 'chat.example.com', allowed)).toBe(false);
    expect(originAllowed('https://app.example.com.evil.example', 'chat.example.com', allowed)).toBe(false);
  });

  it('selects agent-chat, never a bearer entry', () => {
    expect(selectSubprotocol(new Set(['agent-chat', 'bearer.act_x']))).toBe('agent-chat');
    expect(selectSubprotocol(new Set(['bearer.act_x']))).toBe(false);
    expect(offeredSubprotocols(' agent-chat , bearer.act_x')).toEqual(['agent-chat', 'bearer.act_x']);
  });
});

describe('TicketStore', () => {
  it('redeems a ticket once, within its lifetime, and forgets expired ones', () => {
    let now = 1_000;
    const tickets = new TicketStore(() => now, 30_000);
    const once = tickets.issue(LOCAL_PRINCIPAL);
    expect(tickets.redeem(once)).toBe(LOCAL_PRINCIPAL);
    expect(tickets.redeem(once)).toBeUndefined();

    const late = tickets.issue(LOCAL_PRINCIPAL);
    now += 30_000;
    expect(tickets.redeem(late)).toBeUndefined();

    tickets.issue(LOCAL_PRINCIPAL);
    now += 30_001;
    tickets.issue(LOCAL_PRINCIPAL);
    expect(tickets.size).toBe(1);
  });
});

describe('AuthService and the users tables', () => {
  let dir: string;
  let db: Db;
  let store: Store;
  beforeEach(async () => {
    dir = makeTempDir('agent-chat-auth-');
    db = await openDatabase(loadConfig({ DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}` }).DATABASE_URL);
    store = new Store(db);
  });
  afterEach(async () => {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('re-reads the auth mode at most every 2 s, and keeps it on once on', async () => {
    let now = 0;
    const auth = new AuthService({ store, disabled: false, now: () => now });
    expect(await auth.mode()).toBe('local');
    await addUser(store, 'alice');
    now = 1_999;
    expect(await auth.mode()).toBe('local');
    now = 2_000;
    expect(await auth.mode()).toBe('enabled');
    await store.settings.set('auth_enabled', '0');
    now = 60_000;
    expect(await auth.mode()).toBe('enabled');
  });

  it('is disabled whatever the database says with AUTH_DISABLED', async () => {
    await addUser(store, 'alice');
    const auth = new AuthService({ store, disabled: true });
    expect(await auth.mode()).toBe('disabled');
    expect(await auth.anonymous()).toEqual({ kind: 'local', authDisabled: true });
  });

  it('verifies a token into its user, and nothing else', async () => {
    const { token, user, id } = await addUser(store, 'alice');
    const auth = new AuthService({ store, disabled: false });
    expect(await auth.verifyToken(token)).toEqual({ kind: 'user', userId: user.id, name: 'alice', tokenId: id });
    expect(await auth.verifyToken(token + 'x')).toBeUndefined();
    expect(await auth.verifyToken(token.slice(0, 8))).toBeUndefined();
  });

  it('removes a user with their tokens and chats (ON DELETE CASCADE), leaving chats without owner', async () => {
    const { user } = await addUser(store, 'alice');
    const chat = await store.chats.create('hers', { userId: user.id });
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'hi' });
    const nobody = await store.chats.create('local');
    expect(await store.chats.count({ userId: user.id })).toBe(1);
    await store.users.remove(user.id);
    expect(await store.chats.get(chat.id)).toBeUndefined();
    expect(await store.messages.list(chat.id)).toEqual([]);
    expect(await store.tokens.list()).toEqual([]);
    expect(await store.chats.get(nobody.id, { userId: null })).toBeDefined();
  });

  it('refuses what an operator can fix, with a message naming it', async () => {
    await addUser(store, 'alice');
    const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (err: unknown) => (err instanceof AccountError ? err.message : err));
    expect(await refusal(addUser(store, 'alice'))).toBe('user "alice" already exists');
    for (const name of ['', '-x', 'with space', 'a/b', 'x'.repeat(65)]) {
      expect(await refusal(addUser(store, name))).toMatch(/^invalid user name/);
    }
    expect(await refusal(createToken(store, 'nobody'))).toBe('no user "nobody"');
    expect(await refusal(createToken(store, 'alice', ' '))).toMatch(/^invalid token name/);
    expect(await refusal(listTokens(store, 'nobody'))).toBe('no user "nobody"');
    expect(await refusal(removeUser(store, 'nobody', dir))).toBe('no user "nobody"');
    expect(await refusal(revokeToken(store, 'act_none'))).toBe('no token with id or prefix "act_none"');
  });

  it('revokes by prefix only when it names one token', async () => {
    const first = await addUser(store, 'alice');
    const second = await createToken(store, 'alice', 'second');
    // Force two tokens to share a display prefix (1 in 16 million otherwise).
    await db.updateTable('api_tokens').set({ prefix: 'act_same' }).execute();
    await expect(revokeToken(store, 'act_same')).rejects.toThrow(/matches 2 tokens; revoke by id/);
    const revoked = await revokeToken(store, second.id);
    expect(revoked.revoked_at).not.toBeNull();
    const auth = new AuthService({ store, disabled: false });
    expect(await auth.verifyToken(second.token)).toBeUndefined();
    expect(await auth.verifyToken(first.token)).toBeDefined();
  });
});
