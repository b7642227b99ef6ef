import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_ALLOWED_TOOLS, loadConfig, sessionStoreKind } from '../../src/config/config.js';

/** The ConfigError loadConfig throws for `env`, or a failure when it does not throw one. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig defaults', () => {
  const config = loadConfig({});

  it('listens on 127.0.0.1:8000', () => {
    expect(config.PORT).toBe(8000);
    expect(config.HOST).toBe('127.0.0.1');
  });

  it('stores chats in ./data/chat.db, resolved to an absolute path', () => {
    expect(config.DATABASE_URL).toEqual({ kind: 'sqlite', file: path.resolve('data/chat.db') });
    expect(config.DATABASE_URL.kind === 'sqlite' && path.isAbsolute(config.DATABASE_URL.file)).toBe(true);
  });

  it('pre-allows only the seed\'s read-only tools (Bash, Write, Edit ask first), 100 turns, the default permission mode', () => {
    expect(config.ALLOWED_TOOLS).toEqual(['Read', 'Glob', 'Grep', 'WebSearch', 'WebFetch']);
    expect(config.ALLOWED_TOOLS).toEqual([...DEFAULT_ALLOWED_TOOLS]);
    expect(config.MAX_TURNS).toBe(100);
    expect(config.PERMISSION_MODE).toBe('default');
  });

  it('logs at info and resolves the workspace directory', () => {
    expect(config.LOG_LEVEL).toBe('info');
    expect(config.WORKSPACE_DIR).toBe(path.resolve('data/workspaces'));
  });

  it('returns a frozen object', () => {
    expect(Object.isFrozen(config)).toBe(true);
  });
});

describe('loadConfig reads the environment', () => {
  it('parses numbers, paths and enums', () => {
    const config = loadConfig({
      PORT: '9000',
      HOST: '0.0.0.0',
      DATABASE_URL: 'sqlite:///var/lib/chat/chat.db',
      LOG_LEVEL: 'debug',
      PERMISSION_MODE: 'acceptEdits',
      MAX_TURNS: '5',
    });
    expect(config).toMatchObject({
      PORT: 9000,
      HOST: '0.0.0.0',
      DATABASE_URL: { kind: 'sqlite', file: '/var/lib/chat/chat.db' },
      LOG_LEVEL: 'debug',
      PERMISSION_MODE: 'acceptEdits',
      MAX_TURNS: 5,
    });
  });

  it('resolves a relative sqlite path and keeps :memory:', () => {
    expect(loadConfig({ DATABASE_URL: 'sqlite:./x/y.db' }).DATABASE_URL).toEqual({ kind: 'sqlite', file: path.resolve('x/y.db') });
    expect(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).DATABASE_URL).toEqual({ kind: 'sqlite', file: ':memory:' });
  });

  it('takes a postgres:// (or postgresql://) URL as it is, and refuses one without a host or database', () => {
    for (const url of ['postgres://chat@db.internal:5432/chat', 'postgresql://chat:secret@127.0.0.1/chat?sslmode=require']) {
      expect(loadConfig({ DATABASE_URL: url }).DATABASE_URL).toEqual({ kind: 'postgres', url });
    }
    expect(() => loadConfig({ DATABASE_URL: 'postgres://127.0.0.1:5432' })).toThrow(/DATABASE_URL: postgres URL needs a host and a database/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u:secret@h/db' })).toThrow(/unsupported scheme in "mysql:\/\/u:\*\*\*@h\/db"/);
  });

  it('treats blank values as unset, so the default applies', () => {
    const config = loadConfig({ PORT: '', HOST: '  ', ALLOWED_TOOLS: '', MAX_TURNS: ' ', PERMISSION_MODE: '', LOG_LEVEL: '' });
    expect(config.PORT).toBe(8000);
    expect(config.HOST).toBe('127.0.0.1');
    expect(config.ALLOWED_TOOLS).toEqual([...DEFAULT_ALLOWED_TOOLS]);
    expect(config.MAX_TURNS).toBe(100);
    expect(config.PERMISSION_MODE).toBe('default');
    expect(config.LOG_LEVEL).toBe('info');
  });

  it('takes ALLOWED_TOOLS=none as no pre-allowed tool at all', () => {
    expect(loadConfig({ ALLOWED_TOOLS: 'none' }).ALLOWED_TOOLS).toEqual([]);
  });

  it('accepts tool rules with arguments and MCP tools in ALLOWED_TOOLS, trimming the entries', () => {
    const config = loadConfig({ ALLOWED_TOOLS: 'Read, Bash(git:*) ,mcp__srv__tool,Bash(npm run test:*)' });
    expect(config.ALLOWED_TOOLS).toEqual(['Read', 'Bash(git:*)', 'mcp__srv__tool', 'Bash(npm run test:*)']);
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ SOMETHING_ELSE: 'x', npm_config_cache: '/tmp/npm' }).PORT).toBe(8000);
  });
});

describe('loadConfig rejects invalid values, naming the variable', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['DATABASE_URL', 'postgres://x'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'chat.db'],
    ['DATABASE_URL', 'sqlite:'],
    ['LOG_LEVEL', 'loud'],
    ['PERMISSION_MODE', 'yolo'],
    ['ALLOWED_TOOLS', 'bash'],
    ['ALLOWED_TOOLS', 'Read,Bsh'],
    ['MAX_TURNS', '0'],
    ['MAX_TURNS', 'many'],
    ['ANTHROPIC_BASE_URL', 'not a url'],
    ['TRUST_PROXY', 'maybe'],
  ])('%s=%s', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.name).toBe('ConfigError');
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(new RegExp(`^${name}: `));
    expect(err.message).toContain(name);
  });

  it('says which schemes DATABASE_URL supports', () => {
    expect(configError({ DATABASE_URL: 'redis://x' }).message).toMatch(/sqlite:<path> or postgres:\/\//);
  });

  it('lists the known tools when ALLOWED_TOOLS has a typo', () => {
    expect(configError({ ALLOWED_TOOLS: 'bash' }).message).toContain('Bash');
  });

  it('reports every invalid variable at once', () => {
    const err = configError({ PORT: 'abc', LOG_LEVEL: 'loud', MAX_TURNS: '0' });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual(['LOG_LEVEL', 'MAX_TURNS', 'PORT']);
  });
});

describe('security settings', () => {
  it('default to local-friendly limits and no CORS', () => {
    expect(loadConfig({})).toMatchObject({
      AUTH_DISABLED: false,
      CORS_ORIGINS: [],
      RATE_LIMIT_PER_MINUTE: 300,
      MESSAGES_PER_MINUTE: 30,
      MAX_CHATS_PER_USER: 1000,
    });
  });

  it('reads CORS_ORIGINS as exact origins, normalised as browsers send them', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://Chat.Example.com, http://localhost:5173/' }).CORS_ORIGINS).toEqual([
      'https://chat.example.com',
      'http://localhost:5173',
    ]);
  });

  it.each(['*', 'chat.example.com', 'https://chat.example.com/app', 'ftp://x.example'])('refuses %s in CORS_ORIGINS', (value) => {
    expect(configError({ CORS_ORIGINS: value }).problems[0]).toMatch(/^CORS_ORIGINS: .*not an origin/);
  });
});

describe('multi-node settings', () => {
  it('is one node with no Redis by default, named after the host', () => {
    const config = loadConfig({});
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.NODE_ID).toBe(os.hostname());
    expect(config.REDIS_KEY_PREFIX).toBe('agent-chat:');
  });

  it('accepts redis:// and rediss:// URLs with credentials and a database number', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/2' }).REDIS_URL).toBe('redis://127.0.0.1:6379/2');
    expect(loadConfig({ REDIS_URL: 'rediss://user:pw@cache.internal' }).REDIS_URL).toBe('rediss://user:pw@cache.internal');
  });

  it('refuses another scheme or a database that is not a number, without printing the password', () => {
    expect(configError({ REDIS_URL: 'http://cache:6379' }).problems).toEqual([
      'REDIS_URL: "http://cache:6379" is not a Redis URL like redis://host:6379/0',
    ]);
    const problems = configError({ REDIS_URL: 'redis://admin:hunter2secret@cache/main' }).problems.join('\n');
    expect(problems).toContain('REDIS_URL: the database of "redis://admin:***@cache/main" must be a number');
    expect(problems).not.toContain('hunter2secret');
  });

  it('takes a NODE_ID of letters, digits, ".", "_", "-" up to 64 characters, and refuses others', () => {
    expect(loadConfig({ NODE_ID: 'node-1.eu_west' }).NODE_ID).toBe('node-1.eu_west');
    expect(loadConfig({ NODE_ID: 'n'.repeat(64) }).NODE_ID).toHaveLength(64);
    for (const bad of ['n'.repeat(65), 'node 1', 'node/1', '-node', 'nöde', 'a:b']) {
      expect(configError({ NODE_ID: bad }).problems[0]).toMatch(/^NODE_ID: /);
    }
  });

  it("keeps agent transcripts in files on one node and in the database with REDIS_URL, unless SESSION_STORE says", () => {
    expect(sessionStoreKind(loadConfig({}))).toBe('files');
    expect(sessionStoreKind(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/2' }))).toBe('database');
    expect(sessionStoreKind(loadConfig({ SESSION_STORE: 'database' }))).toBe('database');
    expect(sessionStoreKind(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/2', SESSION_STORE: 'files' }))).toBe('files');
    expect(configError({ SESSION_STORE: 'redis' }).problems[0]).toMatch(/^SESSION_STORE: /);
  });

  it('refuses a key prefix with characters that would need escaping in key patterns', () => {
    expect(configError({ REDIS_KEY_PREFIX: 'chat*' }).problems[0]).toMatch(/^REDIS_KEY_PREFIX: /);
    expect(loadConfig({ REDIS_KEY_PREFIX: 'prod:chat:' }).REDIS_KEY_PREFIX).toBe('prod:chat:');
  });
});
