import { describe, expect, it } from 'vitest';
import { agentPriority } from '../../src/agent/agent-priority.js';

describe('agentPriority', () => {
  it('starts the command through `nice -n N`, found on the PATH', () => {
    const priority = agentPriority(7, '/nowhere:/usr/bin:/bin');
    expect(priority?.command('/opt/cli', ['--flag', 'x'])).toEqual({ command: '/usr/bin/nice', args: ['-n', '7', '/opt/cli', '--flag', 'x'] });
  });

  it('changes nothing at 0, and cannot without a `nice` on the PATH', () => {
    expect(agentPriority(0, '/usr/bin:/bin')).toBeUndefined();
    expect(agentPriority(5, '/nowhere')).toBeUndefined();
  });

  it('leaves a process that is gone alone', () => {
    expect(() => agentPriority(5, '/usr/bin:/bin')!.session(2 ** 22 + 12345)).not.toThrow();
  });
});
