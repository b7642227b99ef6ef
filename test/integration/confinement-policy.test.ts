import { afterEach, describe, expect, it } from 'vitest';
import { StartupRefusedError } from '../../src/auth/exposure.js';
import { seedUsers } from '../helpers/auth.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * The start-up rule for agents that cannot be confined: a service with several users refuses to start unless the
 * operator accepts the risk; a local single-user one starts with a warning. "No bubblewrap" is made real by
 * starting the service with a PATH on which there is none.
 */
describe('start-up without agent confinement', () => {
  let server: TestServer | undefined;
  const savedPath = process.env.PATH;
  afterEach(async () => {
    process.env.PATH = savedPath;
    await server?.close();
    server = undefined;
  });

  const withUsers = async () => {
    const dir = makeTempDir();
    await seedUsers(dir, ['alice', 'bob']);
    return dir;
  };
  const refusal = async (env: Record<string, string>, dir?: string): Promise<StartupRefusedError> => {
    const err = await startTestServer(env, dir).then(
      (s) => {
        server = s;
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StartupRefusedError);
    return err as StartupRefusedError;
  };

  it('refuses several users with unconfined agents, and says how to fix it', async () => {
    const err = await refusal({ AGENT_CONFINEMENT: 'off', ALLOW_UNCONFINED_AGENTS: 'false' }, await withUsers());
    expect(err.message).toContain('AGENTS ARE NOT CONFINED');
    expect(err.message).toContain('apt-get install bubblewrap');
    expect(err.message).toContain('ALLOW_UNCONFINED_AGENTS=true');
  });

  it('refuses unconfined agents behind an authenticating proxy (AUTH_DISABLED) and on a non-loopback HOST', async () => {
    await refusal({ AGENT_CONFINEMENT: 'off', ALLOW_UNCONFINED_AGENTS: 'false', AUTH_DISABLED: 'true' });
    await refusal({ AGENT_CONFINEMENT: 'off', ALLOW_UNCONFINED_AGENTS: 'false', AUTH_DISABLED: 'true', HOST: '0.0.0.0' });
  });

  it('starts them when the operator accepts the risk, or when the service is local and single-user', async () => {
    server = await startTestServer({ AGENT_CONFINEMENT: 'off', ALLOW_UNCONFINED_AGENTS: 'true' }, await withUsers());
    await server.close();
    server = await startTestServer({ AGENT_CONFINEMENT: 'off', ALLOW_UNCONFINED_AGENTS: 'false' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('without bubblewrap: auto falls back only where that is allowed, bwrap never starts', async () => {
    process.env.PATH = '/nonexistent';
    const users = await refusal({ AGENT_CONFINEMENT: 'auto', ALLOW_UNCONFINED_AGENTS: 'false' }, await withUsers());
    expect(users.message).toContain('bubblewrap (`bwrap`) is not installed');
    const explicit = await refusal({ AGENT_CONFINEMENT: 'bwrap', ALLOW_UNCONFINED_AGENTS: 'true' });
    expect(explicit.message).toContain('AGENT_CONFINEMENT=bwrap');
    server = await startTestServer({ AGENT_CONFINEMENT: 'auto', ALLOW_UNCONFINED_AGENTS: 'false' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});
