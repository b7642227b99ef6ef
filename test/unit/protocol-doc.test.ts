import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/protocol/errors.js';
import { CLIENT_FRAME_TYPES, ClientFrameSchema, ServerEventSchema } from '../../src/protocol/ws.js';

const doc = fs.readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const examples = (side: 'client' | 'server') =>
  [...doc.matchAll(new RegExp('```json ' + side + '\\n([\\s\\S]*?)```', 'g'))].map((m) => JSON.parse(m[1]!) as { type: string });

describe('docs/protocol.md', () => {
  it('shows only client frames that the protocol schema accepts', () => {
    const frames = examples('client');
    expect(frames.length).toBeGreaterThan(0);
    for (const frame of frames) expect(ClientFrameSchema.safeParse(frame).error).toBeUndefined();
  });

  it('shows only server events that the protocol schema accepts', () => {
    for (const event of examples('server')) expect(ServerEventSchema.safeParse(event).error).toBeUndefined();
  });

  it('shows every client frame type and every server event type', () => {
    expect(new Set(examples('client').map((f) => f.type))).toEqual(new Set(CLIENT_FRAME_TYPES));
    const serverTypes = ServerEventSchema.options.map((o) => o.shape.type.value);
    expect(new Set(examples('server').map((e) => e.type))).toEqual(new Set(serverTypes));
  });

  it("lists exactly the error codes of protocol/errors.ts in the `error` event's code table", () => {
    const table = doc.match(/\n\| `code` \| meaning \|\n\|---\|---\|\n((?:\|.*\n)+)/);
    expect(table, 'the code table').not.toBeNull();
    const documented = [...table![1]!.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.length).toBe(table![1]!.trim().split('\n').length);
    expect(new Set(documented)).toEqual(new Set(ERROR_CODES));
    expect(documented.length, 'each code once').toBe(ERROR_CODES.length);
  });
});
