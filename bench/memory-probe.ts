/**
 * `npm run probe:memory`: the outside security probe's memory load, replayed against a started service, with the
 * service's peak RSS. The service runs as its own process, compiled and started as `npm start` runs it (the
 * results before 2026-12-02 ran its sources through tsx), default settings, two users, on a SQLite file in a temp
 * folder. Phases, one after the other, while /proc/<pid>/status is sampled every 20 ms:
 *
 * 1. frames: 16 sockets of one user, each sending two ~70 MB frames that the frame limit lets through (a 70 MB
 *    chat_id, then a 70 MB message) and waiting for each answer, then one frame over the limit (closed with 1009
 *    unread). Before the fixes an error echoed a chat_id twice and every socket buffered its frame: 5.8 GB.
 * 2. fuzz: a burst of invalid frames from 8 sockets of the other user, sent without waiting (bad JSON, wrong shapes,
 *    unknown types, long strings, deep nesting), and 8 sockets sending invalid UTF-8. Also counts the log lines.
 * 3. subscribes: a chat holding one message with four 5 MiB images (seeded through the service's store: the rows
 *    such a message leaves), subscribed by 8 sockets at once, 3 rounds, as the original client (images inline within
 *    HISTORY_MAX_BYTES); then 8 at once with `image_urls`, each fetching the 4 images over REST. Before: 6.3 GB.
 *
 * Prints a table and writes bench/results/memory-probe.json. Exits 1 if the peak RSS (VmHWM) is over
 * PROBE_RSS_BOUND_MB (default 800), the bound README's security section states.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { addUser } from '../src/auth/accounts.js';
import { migrateToLatest, openDatabase } from '../src/db/database.js';
import { Store } from '../src/store/store.js';
import { compiledService } from './lib/service.js';
import { freePort } from './lib/util.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BOUND_MB = Number(process.env.PROBE_RSS_BOUND_MB ?? 800);
const MB = 1000 * 1000;
const MiB = 1024 * 1024;
const SOCKETS = Number(process.env.PROBE_SOCKETS ?? 16);
const FRAME_BYTES = 70 * MB;
const FUZZ_SOCKETS = 8;
const FUZZ_FRAMES_PER_SOCKET = 500;
const SUBSCRIBERS = 8;
const SUBSCRIBE_ROUNDS = 3;

// ------------------------------------------------------------------ the service and its memory


function status(pid: number): { rssKb: number; hwmKb: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/** Samples the process's RSS; `peak()` is the highest sample since the last `reset()`. */
function rssSampler(pid: number) {
  let peakKb = 0;
  const timer = setInterval(() => {
    try {
      peakKb = Math.max(peakKb, status(pid).rssKb);
    } catch {
      // the process ended
    }
  }, 20);
  return {
    reset: () => (peakKb = status(pid).rssKb),
    peakMb: () => Math.round(Math.max(peakKb, status(pid).rssKb) / 1024),
    stop: () => clearInterval(timer),
  };
}

// ------------------------------------------------------------------ sockets

interface Socket {
  ws: WebSocket;
  events: Array<Record<string, unknown>>;
  closed: Promise<number>;
}

async function connect(wsUrl: string, token: string): Promise<Socket> {
  // A zero mask: the probe's own process then sends 70 MB frames without masking them byte by byte in JavaScript
  // (which, on a loaded machine, kept it from answering the service's pings in time). The service reads them as usual.
  const ws = new WebSocket(wsUrl, {
    headers: { authorization: `Bearer ${token}` },
    maxPayload: 512 * MiB,
    generateMask: (mask: Buffer) => void mask.fill(0),
  });
  const events: Array<Record<string, unknown>> = [];
  ws.on('message', (data) => events.push(JSON.parse(data.toString()) as Record<string, unknown>));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', (code) => reject(new Error(`socket closed at once: ${code}`)));
  });
  await until(() => events.some((e) => e.type === 'connected'), 30_000, 'the connected greeting');
  return { ws, events, closed };
}

async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const isOpen = (s: Socket) => s.ws.readyState === WebSocket.OPEN;

/** A JSON text frame of about `bytes` bytes, `field` being the long value (built once, sent from every socket). */
function bigFrame(template: Record<string, unknown>, field: string, bytes: number): Buffer {
  const head = JSON.stringify({ ...template, [field]: '' });
  const filler = bytes - head.length;
  const at = head.indexOf(`"${field}":""`) + field.length + 4;
  return Buffer.concat([Buffer.from(head.slice(0, at)), Buffer.alloc(filler, 'x'), Buffer.from(head.slice(at))]);
}

// ------------------------------------------------------------------ the phases

async function framesPhase(wsUrl: string, token: string) {
  const chatId = '0b8f1c2e-4d7a-4c51-9f0e-2a6b3c4d5e6f';
  const frames = [
    bigFrame({ type: 'chat', content: 'hi' }, 'chat_id', FRAME_BYTES),
    bigFrame({ type: 'chat', chat_id: chatId }, 'content', FRAME_BYTES),
  ];
  const overLimit = bigFrame({ type: 'chat', chat_id: chatId }, 'content', 72 * MB);
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => connect(wsUrl, token)));
  let answers = 0;
  let largestAnswer = 0;
  await Promise.all(
    sockets.map(async (s) => {
      for (const frame of frames) {
        const before = s.events.length;
        s.ws.send(frame, { binary: false });
        await until(() => s.events.length > before || !isOpen(s), 600_000, 'an answer to a 70 MB frame');
        for (const e of s.events.slice(before)) largestAnswer = Math.max(largestAnswer, JSON.stringify(e).length);
        answers += s.events.length > before ? 1 : 0;
      }
      s.ws.send(overLimit, { binary: false });
    }),
  );
  const codes = await Promise.all(sockets.map((s) => Promise.race([s.closed, new Promise<number>((r) => setTimeout(() => r(-1), 120_000))])));
  for (const s of sockets) s.ws.terminate();
  const errorCodes = new Map<string, number>();
  for (const s of sockets) for (const e of s.events) if (e.type === 'error') errorCodes.set(String(e.code), (errorCodes.get(String(e.code)) ?? 0) + 1);
  return {
    frames_sent: SOCKETS * (frames.length + 1),
    answered: answers,
    answers_by_code: Object.fromEntries(errorCodes),
    largest_answer_bytes: largestAnswer,
    close_codes: [...new Set(codes)],
    closed_1009: codes.filter((c) => c === 1009).length,
  };
}

function fuzzFrames(): Array<string> {
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  const manyKeys = JSON.stringify(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])));
  return [
    '{',
    'not json at all',
    'null',
    '[]',
    '12345',
    '{"type":"hello"}',
    '{"type":"chat"}',
    '{"type":"chat","chat_id":42,"content":{}}',
    '{"type":"subscribe","chat_id":"' + 'y'.repeat(100_000) + '"}',
    '{"type":"permission_response","chat_id":"a","request_id":"","allow":"yes"}',
    '{"type":"chat","chat_id":"0b8f1c2e-4d7a-4c51-9f0e-2a6b3c4d5e6f","content":"x","images":[{"base64":"!!!","media_type":"image/bmp"}]}',
    deep,
    manyKeys,
    JSON.stringify({ type: 'subscribe', chat_id: 'z'.repeat(10_000), capabilities: Array.from({ length: 500 }, () => 'c'.repeat(100)) }),
  ];
}

async function fuzzPhase(wsUrl: string, token: string, logLines: () => number) {
  const kinds = fuzzFrames();
  const linesBefore = logLines();
  const sockets = await Promise.all(Array.from({ length: FUZZ_SOCKETS }, () => connect(wsUrl, token)));
  const started = Date.now();
  for (const s of sockets) {
    for (let i = 0; i < FUZZ_FRAMES_PER_SOCKET; i++) s.ws.send(kinds[i % kinds.length]!);
  }
  await Promise.all(
    sockets.map((s) => until(() => s.events.filter((e) => e.type === 'error').length >= FUZZ_FRAMES_PER_SOCKET || !isOpen(s), 300_000, 'fuzz answers')),
  );
  const errors = sockets.reduce((n, s) => n + s.events.filter((e) => e.type === 'error').length, 0);
  const stillOpen = sockets.filter(isOpen).length;
  for (const s of sockets) s.ws.terminate();

  // Invalid UTF-8 in a text frame: a protocol error that closes the connection (1007), logged once, without a stack.
  const utf8 = await Promise.all(Array.from({ length: FUZZ_SOCKETS }, () => connect(wsUrl, token)));
  for (const s of utf8) s.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]), { binary: false });
  const utf8Codes = await Promise.all(utf8.map((s) => s.closed));
  await new Promise((r) => setTimeout(r, 500)); // let the last log lines arrive
  return {
    invalid_frames_sent: FUZZ_SOCKETS * FUZZ_FRAMES_PER_SOCKET,
    error_answers: errors,
    sockets_still_open: stillOpen,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    invalid_utf8_closed_1007: utf8Codes.filter((c) => c === 1007).length,
    log_lines: logLines() - linesBefore,
  };
}

async function subscribePhase(url: string, wsUrl: string, token: string, chatId: string) {
  const rounds: Array<{ history_kb: number; messages: number; has_more: boolean; seconds: number }> = [];
  for (let round = 0; round < SUBSCRIBE_ROUNDS; round++) {
    const started = Date.now();
    const sockets = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => connect(wsUrl, token)));
    for (const s of sockets) s.ws.send(JSON.stringify({ type: 'subscribe', chat_id: chatId }));
    await Promise.all(sockets.map((s) => until(() => s.events.some((e) => e.type === 'processing_state') || !isOpen(s), 300_000, 'a snapshot')));
    const open = sockets.filter(isOpen).length;
    if (open !== SUBSCRIBERS) throw new Error(`${SUBSCRIBERS - open} subscriber(s) were closed before their snapshot`);
    const history = sockets[0]!.events.find((e) => e.type === 'history')!;
    rounds.push({
      history_kb: Math.round(JSON.stringify(history).length / 1000),
      messages: (history.messages as unknown[]).length,
      has_more: history.has_more === true,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    });
    for (const s of sockets) s.ws.terminate();
  }

  const started = Date.now();
  const sockets = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => connect(wsUrl, token)));
  for (const s of sockets) s.ws.send(JSON.stringify({ type: 'subscribe', chat_id: chatId, capabilities: ['image_urls'] }));
  await Promise.all(sockets.map((s) => until(() => s.events.some((e) => e.type === 'processing_state'), 300_000, 'a snapshot')));
  const urls = (sockets[0]!.events.find((e) => e.type === 'history')!.messages as Array<{ images: Array<{ url: string }> | null }>)
    .flatMap((m) => m.images ?? [])
    .map((i) => i.url);
  let fetched = 0;
  const statuses: number[] = [];
  await Promise.all(
    sockets.flatMap(() =>
      urls.map(async (u) => {
        const res = await fetch(url + u, { headers: { authorization: `Bearer ${token}` } });
        statuses.push(res.status);
        const bytes = (await res.arrayBuffer()).byteLength;
        fetched += bytes;
      }),
    ),
  );
  for (const s of sockets) s.ws.terminate();
  return {
    inline_rounds: rounds,
    by_reference: { subscribers: SUBSCRIBERS, image_urls: urls.length, statuses: [...new Set(statuses)], images_fetched_mb: Math.round(fetched / MB), seconds: Math.round((Date.now() - started) / 100) / 10 },
  };
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-probe-'));
  const dbFile = path.join(dir, 'chat.db');

  // Two users, and alice's chat with four 5 MiB images, written through the service's own store.
  const db = await openDatabase({ kind: 'sqlite', file: dbFile });
  await migrateToLatest(db);
  const store = new Store(db);
  const alice = await addUser(store, 'alice');
  const bob = await addUser(store, 'bob');
  const chat = await store.chats.create('four images', { userId: alice.user.id });
  const png = (fill: number) => {
    const data = Buffer.alloc(5 * MiB, fill);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(data);
    return { mediaType: 'image/png' as const, data };
  };
  await store.messages.add({ chatId: chat.id, role: 'user', content: 'what is in these?', images: [png(1), png(2), png(3), png(4)] });
  await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'Four images.' });
  await db.destroy();

  const port = await freePort();
  const compiled = compiledService();
  const child = spawn(process.execPath, compiled.args, {
    cwd: ROOT,
    env: {
      ...compiled.env,
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${dbFile}`,
      WORKSPACE_DIR: path.join(dir, 'workspaces'),
      AGENT_HOME_DIR: path.join(dir, 'agent-home'),
      ANTHROPIC_API_KEY: 'probe-key',
      // No agent runs in this probe (nothing is answered); prewarming on subscribe would start CLIs for nothing.
      AGENT_PREWARM: 'false',
      ALLOW_UNCONFINED_AGENTS: 'true',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logLines = 0;
  // PROBE_LOG=<file>: the service's log, for a look at what it said.
  const logFile = process.env.PROBE_LOG;
  const countLines = (d: Buffer) => {
    logLines += d.toString().split('\n').length - 1;
    if (logFile) fs.appendFileSync(logFile, d);
  };
  child.stdout.on('data', countLines);
  child.stderr.on('data', countLines);
  const url = `http://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${port}/ws/chat`;
  try {
    const deadline = Date.now() + 120_000;
    while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error('the service did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    const pid = child.pid!;
    await new Promise((r) => setTimeout(r, 1000));
    const idleMb = Math.round(status(pid).rssKb / 1024);
    const sampler = rssSampler(pid);
    const phases: Record<string, unknown> = {};
    const peaks: Record<string, number> = {};

    const only = process.env.PROBE_PHASES?.split(',');
    const run = (phase: string) => !only || only.includes(phase);
    if (run('frames')) {
      console.log(`service pid ${pid}, idle RSS ${idleMb} MB; phase 1: ${SOCKETS} sockets × 70 MB frames`);
      sampler.reset();
      const t0 = Date.now();
      phases.frames = { ...(await framesPhase(wsUrl, alice.token)), seconds: Math.round((Date.now() - t0) / 100) / 10 };
      peaks.frames = sampler.peakMb();
    }

    if (run('fuzz')) {
      console.log(`phase 2: fuzzing burst (${FUZZ_SOCKETS} × ${FUZZ_FRAMES_PER_SOCKET} invalid frames, invalid UTF-8)`);
      sampler.reset();
      phases.fuzz = await fuzzPhase(wsUrl, bob.token, () => logLines);
      peaks.fuzz = sampler.peakMb();
    }
    if (run('subscribes')) {
      console.log(`phase 3: ${SUBSCRIBERS} concurrent subscribes to a chat with four 5 MiB images`);
      sampler.reset();
      phases.subscribes = await subscribePhase(url, wsUrl, alice.token, chat.id);
      peaks.subscribes = sampler.peakMb();
    }
    sampler.stop();

    const { hwmKb, rssKb } = status(pid);
    const report = {
      measured_at: new Date().toISOString(),
      machine: { cpus: os.cpus().length, load_average_1m: Math.round(os.loadavg()[0]! * 10) / 10, node: process.version },
      rss_mb: { idle: idleMb, peak_per_phase: peaks, peak_overall_vmhwm: Math.round(hwmKb / 1024), after: Math.round(rssKb / 1024) },
      bound_mb: BOUND_MB,
      phases,
    };
    console.log(JSON.stringify(report, null, 2));
    fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench/results/memory-probe.json'), JSON.stringify(report, null, 2) + '\n');
    const peak = report.rss_mb.peak_overall_vmhwm;
    console.log(peak <= BOUND_MB ? `peak RSS ${peak} MB: within the ${BOUND_MB} MB bound` : `peak RSS ${peak} MB: OVER the ${BOUND_MB} MB bound`);
    process.exitCode = peak <= BOUND_MB ? 0 : 1;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
