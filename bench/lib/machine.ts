import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './children.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  sdkVersion: string;
  cliVersion: string;
  gitCommit: string;
  loadAverageAtStart: number[];
}

const run = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: REPO_ROOT, timeout: 10_000 }).trim();
  } catch {
    return 'unknown';
  }
};

const packageVersion = (name: string): string => {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string;
    };
    return pkg.version;
  } catch {
    return 'unknown';
  }
};

/** What the figures depend on; written with them so a later run can be compared like for like. */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  const cli = path.join(REPO_ROOT, 'node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude');
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no']) !== '';
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    sdkVersion: packageVersion('@anthropic-ai/claude-agent-sdk'),
    cliVersion: fs.existsSync(cli) ? run(cli, ['--version']) : 'unknown',
    gitCommit: `${run('git', ['rev-parse', '--short', 'HEAD'])}${dirty ? ' (with uncommitted changes)' : ''}`,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
