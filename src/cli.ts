import 'dotenv/config';
import {
  AccountError,
  addUser,
  createToken,
  listTokens,
  removeUser,
  revokeToken,
  type NewToken,
} from './auth/accounts.js';
import { loadConfigOrReport, type Config } from './config/config.js';
import { openDatabase } from './db/database.js';
import { Store } from './store/store.js';

/**
 * Operator commands on the service's database: users and API tokens. Reads DATABASE_URL (and WORKSPACE_DIR, AGENT_HOME_DIR) like
 * server.ts, brings the schema up to date, and never touches the network. A running service sees a change within
 * seconds (it re-reads whether authentication is on every 2 s and checks tokens on every request).
 */

const USAGE = `Usage: npm run cli -- <command>

Users (adding the first user turns authentication on, for good: from then on every
request and WebSocket needs a token):
  users add NAME                  add a user and print their first API token (shown once)
  users list                      list users with their active tokens and chats
  users remove NAME               remove a user with their tokens and ALL their chats

API tokens:
  tokens create USER [--name N]   print a new token for USER (shown once)
  tokens list [USER]              prefix, user, name, created, last used, revoked
  tokens revoke PREFIX_OR_ID      revoke a token (by the prefix "tokens list" shows, or its id)

Chats made in local mode (before the first user existed) have no owner, and no user sees them:
  chats assign USER CHAT_ID...      give those ownerless chats to USER
  chats assign USER --all-ownerless give USER every ownerless chat

The database is DATABASE_URL (default sqlite:./data/chat.db), from the environment or .env.
Exit status: 0 done, 1 refused (e.g. unknown user), 2 bad usage or configuration.`;

class UsageError extends Error {}

interface Parsed {
  words: string[];
  options: Map<string, string>;
}

/** Positional words and `--name value` / `--name=value` options; `-h`/`--help` anywhere asks for the usage. */
function parseArgs(argv: string[], known: readonly string[]): Parsed {
  const words: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      words.push(arg);
      continue;
    }
    const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (!known.includes(flag)) throw new UsageError(`unknown option --${flag}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${flag} needs a value`);
    options.set(flag, value);
  }
  return { words, options };
}

function expectWords(words: string[], count: number, what: string): void {
  if (words.length !== count) throw new UsageError(`expected: ${what}`);
}

const show = (value: string | null) => value ?? '-';

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function printNewToken(token: NewToken): void {
  console.log(`Token "${token.name}" for ${token.user.name} (prefix ${token.prefix}, id ${token.id}).`);
  console.log('It is shown only this once; store it now:');
  console.log('');
  console.log(`  ${token.token}`);
  console.log('');
  console.log(`Use it as the header "Authorization: Bearer ${token.prefix}...".`);
}

async function run(store: Store, config: Config, argv: string[]): Promise<void> {
  // A flag without a value; the other options take one.
  const allOwnerless = argv.includes('--all-ownerless');
  const { words, options } = parseArgs(argv.filter((a) => a !== '--all-ownerless'), ['name']);
  const [group, command, ...rest] = words;
  const key = `${group ?? ''} ${command ?? ''}`.trim();
  if (options.has('name') && key !== 'tokens create') throw new UsageError('--name only goes with "tokens create"');

  switch (key) {
    case 'users add': {
      expectWords(rest, 1, 'users add NAME');
      const token = await addUser(store, rest[0]!);
      console.log(`Added user ${token.user.name} (id ${token.user.id}).`);
      console.log('Authentication is on: every /api request and WebSocket now needs a token.');
      printNewToken(token);
      return;
    }
    case 'users list': {
      expectWords(rest, 0, 'users list');
      const users = await store.users.list();
      if (users.length === 0) return void console.log('No users (local mode: no token needed, loopback only).');
      console.log(
        table(
          ['NAME', 'ID', 'CREATED', 'TOKENS', 'CHATS'],
          users.map((u) => [u.name, u.id, u.created_at, String(u.active_tokens), String(u.chats)]),
        ),
      );
      return;
    }
    case 'users remove': {
      expectWords(rest, 1, 'users remove NAME');
      const { user, chats } = await removeUser(store, rest[0]!, config.WORKSPACE_DIR, config.AGENT_HOME_DIR);
      console.log(`Removed user ${user.name}, their tokens and ${chats} chat${chats === 1 ? '' : 's'}.`);
      return;
    }
    case 'tokens create': {
      expectWords(rest, 1, 'tokens create USER [--name N]');
      printNewToken(await createToken(store, rest[0]!, options.get('name')));
      return;
    }
    case 'tokens list': {
      if (rest.length > 1) throw new UsageError('expected: tokens list [USER]');
      const tokens = await listTokens(store, rest[0]);
      if (tokens.length === 0) return void console.log('No tokens.');
      console.log(
        table(
          ['PREFIX', 'USER', 'NAME', 'CREATED', 'LAST USED', 'REVOKED', 'ID'],
          tokens.map((t) => [t.prefix, t.user_name, t.name, t.created_at, show(t.last_used_at), show(t.revoked_at), t.id]),
        ),
      );
      return;
    }
    case 'tokens revoke': {
      expectWords(rest, 1, 'tokens revoke PREFIX_OR_ID');
      const token = await revokeToken(store, rest[0]!);
      console.log(`Revoked token ${token.prefix} ("${token.name}" of ${token.user_name}, id ${token.id}).`);
      return;
    }
    case 'chats assign': {
      const [name, ...ids] = rest;
      if (name === undefined || allOwnerless === ids.length > 0) {
        throw new UsageError('expected: chats assign USER CHAT_ID... or chats assign USER --all-ownerless');
      }
      const user = await store.users.byName(name);
      if (!user) throw new AccountError(`no user named "${name}"`);
      const assigned = await store.chats.assign(user.id, allOwnerless ? 'all-ownerless' : ids);
      console.log(`Assigned ${assigned.length} chat${assigned.length === 1 ? '' : 's'} to ${user.name}.`);
      for (const id of assigned) console.log(`  ${id}`);
      const missed = ids.filter((id) => !assigned.includes(id));
      // A chat another user owns is never taken from them: only ownerless chats can be assigned.
      if (missed.length > 0) throw new AccountError(`not assigned (no such chat, or it already has an owner): ${missed.join(', ')}`);
      return;
    }
    default:
      throw new UsageError(group === undefined ? 'no command given' : `unknown command "${key}"`);
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') {
    console.log(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  const config = loadConfigOrReport(process.env);
  if (!config) return 2;
  const db = await openDatabase(config.DATABASE_URL);
  try {
    await run(new Store(db), config, argv);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof AccountError) {
      console.error(`error: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await db.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
