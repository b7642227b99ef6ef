import fs from 'node:fs/promises';
import path from 'node:path';
import { isUniqueViolation } from '../db/errors.js';
import type { Store } from '../store/store.js';
import { SETTING_AUTH_ENABLED } from '../store/settings.repository.js';
import type { ApiToken } from '../store/tokens.repository.js';
import type { User } from '../store/users.repository.js';
import { displayPrefix, hashToken, newApiToken } from './tokens.js';
import { chatAgentHome } from '../agent/agent-home.js';

/** A refusal an operator can fix (unknown user, duplicate name...): the CLI prints it and exits non-zero. */
export class AccountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccountError';
  }
}

/** Letters, digits and `. _ @ -`, starting with a letter or digit: safe in logs, shells and URLs. */
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
export const DEFAULT_TOKEN_NAME = 'default';
const MAX_TOKEN_NAME = 100;

/** A token as its owner sees it the one time it exists in clear. */
export interface NewToken {
  id: string;
  user: User;
  name: string;
  prefix: string;
  token: string;
  created_at: string;
}

function checkUserName(name: string): void {
  if (!USER_NAME.test(name)) {
    throw new AccountError(
      `invalid user name "${name}": 1-64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`,
    );
  }
}

function checkTokenName(name: string): void {
  if (name.trim().length === 0 || name.length > MAX_TOKEN_NAME) {
    throw new AccountError(`invalid token name: 1-${MAX_TOKEN_NAME} characters`);
  }
}

async function issueToken(store: Store, user: User, name: string): Promise<NewToken> {
  const token = newApiToken();
  const prefix = displayPrefix(token);
  const row = await store.tokens.add({ userId: user.id, name, hash: hashToken(token), prefix });
  return { id: row.id, user, name, prefix, token, created_at: row.created_at };
}

/**
 * Adds a user with a first token, and switches authentication on (for good: from now on every request needs a
 * token). One transaction: a user never exists without auth being on.
 */
export async function addUser(store: Store, name: string, tokenName = DEFAULT_TOKEN_NAME): Promise<NewToken> {
  checkUserName(name);
  checkTokenName(tokenName);
  const exists = () => new AccountError(`user "${name}" already exists`);
  try {
    return await store.transaction(async (trx) => {
      if (await trx.users.byName(name)) throw exists();
      const user = await trx.users.create(name);
      const token = await issueToken(trx, user, tokenName);
      await trx.settings.set(SETTING_AUTH_ENABLED, '1');
      return token;
    });
  } catch (err) {
    // Two concurrent adds of one name (two operators, two nodes): the unique name lets exactly one commit.
    if (isUniqueViolation(err)) throw exists();
    throw err;
  }
}

export async function createToken(store: Store, userName: string, tokenName = DEFAULT_TOKEN_NAME): Promise<NewToken> {
  checkTokenName(tokenName);
  const user = await store.users.byName(userName);
  if (!user) throw new AccountError(`no user "${userName}"`);
  return issueToken(store, user, tokenName);
}

/**
 * Removes a user with their tokens and chats (messages, images, tool uses: the database cascades), then their
 * chats' workspace folders and their agents' homes (transcripts, images). A running service notices at the user's
 * next request or frame (401 / 4401).
 */
export async function removeUser(
  store: Store,
  name: string,
  workspaceDir: string,
  agentHomeDir?: string,
): Promise<{ user: User; chats: number }> {
  const user = await store.users.byName(name);
  if (!user) throw new AccountError(`no user "${name}"`);
  const chatIds = await store.chats.idsOwnedBy(user.id);
  await store.users.remove(user.id);
  for (const id of chatIds) {
    await fs.rm(path.join(workspaceDir, id), { recursive: true, force: true });
    if (agentHomeDir) await fs.rm(chatAgentHome(agentHomeDir, id).home, { recursive: true, force: true });
  }
  return { user, chats: chatIds.length };
}

export async function listTokens(store: Store, userName?: string): Promise<ApiToken[]> {
  if (userName === undefined) return store.tokens.list();
  const user = await store.users.byName(userName);
  if (!user) throw new AccountError(`no user "${userName}"`);
  return store.tokens.list(user.id);
}

/** Revokes the one token with this id or display prefix; an ambiguous prefix names the candidates instead. */
export async function revokeToken(store: Store, idOrPrefix: string): Promise<ApiToken> {
  const matches = await store.tokens.find(idOrPrefix);
  if (matches.length === 0) throw new AccountError(`no token with id or prefix "${idOrPrefix}"`);
  if (matches.length > 1) {
    const ids = matches.map((t) => `${t.id} (${t.user_name}, ${t.name})`).join(', ');
    throw new AccountError(`prefix "${idOrPrefix}" matches ${matches.length} tokens; revoke by id: ${ids}`);
  }
  const token = matches[0]!;
  await store.tokens.revoke(token.id);
  return (await store.tokens.find(token.id))[0] ?? token;
}
