import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import { ChatError, type ErrorCode } from '../../protocol/errors.js';
import type { ChatChannel, ChatSubscriber, Delivery } from '../../chat-channel/chat-channel.js';
import { storageFault } from '../../db/errors.js';
import type { LoopTurns } from '../../lib/loop-turns.js';
import { Serial } from '../../lib/serial.js';
import { reportIfSlow } from '../../lib/timeout.js';
import type { AuthService } from '../../auth/auth.service.js';
import { ownerScope, type Principal } from '../../auth/principal.js';
import { CLOSE_UNAUTHORIZED } from '../../auth/socket-admission.js';
import { decodeImages, type ImageLimits } from '../../chats/images.js';
import { CLIENT_FRAME_TYPES, ClientFrameSchema, MAX_CHAT_ID_CHARS, type ClientFrame, type ServerEvent } from '../../protocol/ws.js';
import type { MessageLimiter } from '../../limits/message-limiter.js';
import type { ChatListListener, ChatListUpdate, ChatUpdates } from '../../chats/chat-updates.js';
import type { LargeFrameGate } from './large-frame-gate.js';

/**
 * What of the WebSocket library's internals the socket uses: the TCP socket (read by the large-frame gate, corked per
 * tick by send) and the frame in progress.
 */
interface WebSocketInternals {
  _socket?: { on(event: 'data', listener: () => void): void; cork(): void; uncork(): void };
  _receiver?: { _bufferedBytes?: number };
}

/** Whether the principal may use the chat: false for a chat that does not exist and for another user's chat alike. */
export type ChatAccess = (principal: Principal, chatId: string) => Promise<boolean>;

export interface ChatSocketDeps {
  /** The chat runtime: every chat operation of a frame goes through it. */
  channel: ChatChannel;
  chatAccess: ChatAccess;
  images: ImageLimits;
  maxMessageChars: number;
  /** Start a chat's agent when it is subscribed. */
  prewarm: boolean;
  /** Unsent bytes after which a client that does not read is disconnected. */
  maxBufferedBytes: number;
  heartbeatMs: number;
  /** Counts errors answered to frames (metrics). */
  onFrameError?: (code: string) => void;
  /** The open sockets (their number is a metric). */
  openSockets?: Set<unknown>;
  /** Re-checks a socket's principal (token revoked, user removed, auth switched on since it connected). */
  auth: AuthService;
  /** Chat list changes of the socket's owner (`chat_updated`), whatever chat the socket follows. */
  chatUpdates?: ChatUpdates;
  /** `chat` frames per minute per user, shared by all sockets (none: unlimited). */
  messageLimiter?: MessageLimiter;
  /** Bounds the large frames being received at once, over all sockets (none: unbounded). */
  largeFrames?: LargeFrameGate;
  /** Every frame waits for a turn of the event loop of its own, shared by all sockets (none: handled at once). */
  loopTurns?: LoopTurns;
}

/** Who holds a socket, fixed when it was admitted. */
export interface SocketIdentity {
  principal: Principal;
  /** What the message limit counts against (see limitKey); undefined: not limited. */
  limitKey: string | undefined;
}

/** Longest error text answered to a frame: errors describe the frame, they never carry it back. */
const MAX_ERROR_CHARS = 1000;
const clip = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}…` : s);

/** Frames (and bytes) read ahead of the one being handled before reading pauses; the first frame always fits. */
const MAX_FRAMES_IN_HAND = 16;
const MAX_BYTES_IN_HAND = 1024 * 1024;
const frameBytes = (data: Buffer | ArrayBuffer | Buffer[]): number =>
  Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;

/** Close codes this handler uses (4000-4999 is the application range). */
export const CLOSE_SLOW_CONSUMER = 4008;

/**
 * One WebSocket connection: parses every frame with the protocol's schemas, follows any number of chats, and
 * relays their events. Frames are handled one at a time in arrival order; each frame's chat operation is queued on
 * its chat (so a `stop` after a `chat` applies to that chat's new query) and the next frame is read without
 * waiting for it, so one chat's slow operation (an agent replacement) never holds up another chat. A bad frame
 * gets an `error` event and the socket stays open.
 */
/**
 * A frame not handled after this long is logged (its type, chat and stage): operations wait for agents and other
 * nodes, but not this long when all is well.
 */
const SLOW_FRAME_MS = 20_000;

export class ChatSocket implements ChatSubscriber, ChatListListener {
  private readonly frames = new Serial();
  private readonly followed = new Set<string>();
  private alive = true;
  private detached = false;
  /**
   * The service closed this socket (revoked credentials, a client too slow, an internal error): frames it still
   * holds are dropped. When the client closes, those it had sent and the service had read are still handled.
   */
  private closedByService = false;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Capabilities the client declared (the latest `capabilities` it sent); none for the seed's clients. */
  private capabilities: ReadonlySet<string> = new Set();
  private loggedInvalidFrame = false;
  /** Bytes of snapshots handed to the socket and not yet written out: exempt from the slow-client rule. */
  private snapshotBytesInFlight = 0;
  /** Frames read from the client and not handled yet, and their size (see start). */
  private framesInHand = 0;
  private bytesInHand = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly deps: ChatSocketDeps,
    private readonly log: FastifyBaseLogger,
    private readonly identity: SocketIdentity,
  ) {}

  start(): void {
    this.deps.openSockets?.add(this);
    this.deps.chatUpdates?.add(this);
    this.socket.on('message', (data, isBinary) => {
      // Frames are read as they arrive, so that a connection reset right after the client sent something (a tab
      // closed, an app killed) cannot discard frames that had already reached this machine but were not read yet.
      // Past a few frames or bytes not handled yet, reading stops until they are: a client that sends faster than
      // its frames are handled leaves them in its own TCP buffers, not in this process's memory.
      const bytes = frameBytes(data);
      this.framesInHand++;
      this.bytesInHand += bytes;
      if (this.framesInHand >= MAX_FRAMES_IN_HAND || this.bytesInHand >= MAX_BYTES_IN_HAND) this.holdReading('frame');
      void this.frames
        .run(() => this.handle(isBinary ? undefined : data.toString()))
        .finally(() => {
          this.framesInHand--;
          this.bytesInHand -= bytes;
          if (this.framesInHand < MAX_FRAMES_IN_HAND && this.bytesInHand < MAX_BYTES_IN_HAND) this.releaseReading('frame');
        });
    });
    this.watchLargeFrames();
    this.socket.on('close', () => this.detach());
    // Protocol errors are logged once, at warn, by the route (ws.routes.ts); no stack for a client's mistake.
    this.socket.on('error', (err) => this.log.debug({ reason: err.message, code: (err as { code?: unknown }).code }, 'websocket error'));
    // A peer that vanished without closing (laptop lid, dead NAT) answers no ping: drop it after one interval.
    this.socket.on('pong', () => {
      this.alive = true;
    });
    let bufferedBefore = 0;
    this.heartbeat = setInterval(() => {
      // A ping waits behind what is already queued: a client still reading a big snapshot cannot answer it in
      // time, so while a snapshot is being written, progress in writing it counts as being alive.
      const buffered = this.socket.bufferedAmount;
      const draining = this.snapshotBytesInFlight > 0 && buffered < bufferedBefore;
      bufferedBefore = buffered;
      // Not read while it waits for a large-frame slot: its pong waits behind its frame, by the service's choice.
      // Once it has a slot, the usual rule applies: the frame must be through within two intervals.
      if (this.deps.largeFrames?.isWaiting(this)) return;
      if (!this.alive && !draining) return void this.socket.terminate();
      this.alive = false;
      this.socket.ping();
      // A socket that only listens also loses its events once its token is revoked.
      void this.frames.run(() => this.stillAuthorized());
    }, this.deps.heartbeatMs);
    this.heartbeat.unref();
    this.send({ type: 'connected' });
  }

  get ownerId(): string | null {
    return ownerScope(this.identity.principal).userId;
  }

  get answersPermissions(): boolean {
    return this.capabilities.has('permission_prompts');
  }

  sendChatUpdates(updates: readonly ChatListUpdate[]): void {
    for (const { event, json } of updates) this.send(event, json);
  }

  /** Corked until the end of this tick (see send); false once the tick's frames went out. */
  private corked = false;

  /** The TCP socket under the WebSocket (the library's internal). */
  private get tcp(): WebSocketInternals['_socket'] {
    return (this.socket as unknown as WebSocketInternals)._socket;
  }

  /**
   * Frames sent to this socket in one tick leave in one write: the client still reads one frame per event, but the
   * service makes one system call (and wakes the client once) instead of one per frame. A tick sends more than one
   * frame to a socket when events pile up: a burst of list updates, or several deltas of a chat read from its agent
   * at once because the service fell behind, which is exactly when a system call per frame costs most.
   */
  private corkUntilTickEnd(): void {
    if (this.corked) return;
    const tcp = this.tcp;
    if (!tcp) return;
    tcp.cork();
    this.corked = true;
    process.nextTick(() => {
      this.corked = false;
      tcp.uncork();
    });
  }

  send(event: ServerEvent, json?: string, delivery?: Delivery): void {
    // A chat's own errors (numbered, with seq) are counted from its event stream; these answer a frame.
    if (event.type === 'error' && event.seq === undefined) this.deps.onFrameError?.(event.code);
    if (this.socket.readyState !== this.socket.OPEN) return;
    const data = json ?? JSON.stringify(event);
    if (delivery?.snapshot) {
      // The state sent on subscribe is delivered whole, however slowly the client reads it (it is bounded by
      // HISTORY_MAX_BYTES): otherwise a big chat could never be opened, the client closed and reconnecting forever.
      const bytes = Buffer.byteLength(data);
      this.snapshotBytesInFlight += bytes;
      this.corkUntilTickEnd();
      this.socket.send(data, () => {
        this.snapshotBytesInFlight -= bytes;
      });
      return;
    }
    // A client that stops reading would make the server buffer its events without bound; past the cap (not
    // counting a snapshot still being written) it is disconnected with a code saying why, and can reconnect and
    // resubscribe with its last seq.
    let buffered = this.socket.bufferedAmount - this.snapshotBytesInFlight;
    if (buffered > this.deps.maxBufferedBytes && this.corked) {
      // Part of it may only be this tick's frames, held by the cork and not sent yet: what the client has not read
      // is what the kernel does not take once they are.
      this.tcp!.uncork();
      this.tcp!.cork();
      buffered = this.socket.bufferedAmount - this.snapshotBytesInFlight;
    }
    if (buffered > this.deps.maxBufferedBytes) {
      this.log.warn({ buffered }, 'closing a websocket that does not read its events');
      this.closedByService = true;
      this.socket.close(CLOSE_SLOW_CONSUMER, 'client too slow: too many unread events');
      this.detach();
      return;
    }
    this.corkUntilTickEnd();
    this.socket.send(data);
  }

  /** Why reading from the client is paused; it resumes once there is no reason left. */
  private readonly readingHeld = new Set<'frame' | 'large_frame'>();

  private holdReading(reason: 'frame' | 'large_frame'): void {
    this.readingHeld.add(reason);
    this.socket.pause();
  }

  private releaseReading(reason: 'frame' | 'large_frame'): void {
    this.readingHeld.delete(reason);
    if (this.readingHeld.size === 0 && !this.detached) this.socket.resume();
  }

  /**
   * After each chunk read (the library has already taken it into the frame in progress), the large-frame gate
   * learns how big the frame in progress is; without a slot for it, reading stops until one frees.
   */
  private watchLargeFrames(): void {
    const gate = this.deps.largeFrames;
    const { _socket: tcp, _receiver: receiver } = this.socket as unknown as WebSocketInternals;
    if (!gate || !tcp || !receiver) return;
    tcp.on('data', () => {
      if (this.detached) return;
      const partial = receiver._bufferedBytes ?? 0;
      const resume = () => {
        // Its pong may be stuck behind the frame it waited with: a fresh heartbeat interval from here.
        this.alive = true;
        this.releaseReading('large_frame');
      };
      if (!gate.update(this, partial, resume)) this.holdReading('large_frame');
    });
  }

  private detach(): void {
    this.detached = true;
    this.deps.largeFrames?.release(this);
    this.deps.openSockets?.delete(this);
    this.deps.chatUpdates?.remove(this);
    clearInterval(this.heartbeat);
    for (const chatId of this.followed) this.deps.channel.unsubscribe(chatId, this);
    this.followed.clear();
    // Reading may be paused for a frame in hand. A socket the service closes (4401, 4008, 1011) must still read the
    // client's close frame, or the closing handshake waits out the close timeout (30 s) before the client learns
    // it may reconnect. Frames that arrive meanwhile are dropped (handle).
    this.socket.resume();
  }

  private async handle(text: string | undefined): Promise<void> {
    // One frame per turn of the event loop, over all sockets: the agents' output is read between two frames, so a
    // burst of frames (each storing a message) never holds up the deltas of answers already streaming.
    await this.deps.loopTurns?.take();
    // A frame read before the client closed the connection is handled all the same (docs/protocol.md): a message
    // is stored and answered, its user_message reaching the chat's other subscribers and its history.
    if (this.closedByService || !(await this.stillAuthorized())) return;
    const frame = this.parse(text);
    if (!frame) return;
    const slow = (stage: string) => (ms: number) =>
      this.log.warn({ frame_type: frame.type, chat_id: frame.chat_id, stage, after_ms: ms }, 'a frame is still being handled');
    try {
      const queued = await reportIfSlow(this.dispatch(frame), SLOW_FRAME_MS, slow('read'));
      // Queued on the chat in frame order; its outcome arrives while the socket already reads the next frame.
      queued && reportIfSlow(queued.operation, SLOW_FRAME_MS, slow('operation')).catch((err: unknown) => this.frameFailed(frame, err));
    } catch (err) {
      this.frameFailed(frame, err);
    }
  }

  private frameFailed(frame: ClientFrame, err: unknown): void {
    const fault = storageFault(err);
    if (fault) {
      // The environment's fault (disk full, database locked or unreachable), not the client's: say so, and that
      // trying again later is the remedy. Nothing of the frame was stored.
      this.log.warn({ fault: fault.kind, reason: (err as Error).message, frame_type: frame.type, chat_id: frame.chat_id }, 'storage fault');
      this.send({ type: 'error', code: 'storage_unavailable', error: `storage unavailable: ${fault.message}; nothing was stored, try again shortly`, chat_id: frame.chat_id });
    } else if (err instanceof ChatError) {
      this.send({ type: 'error', code: err.code, error: err.message, chat_id: frame.chat_id });
    } else {
      this.log.error({ err, frame_type: frame.type, chat_id: frame.chat_id }, 'failed to handle a frame');
      this.send({ type: 'error', code: 'internal', error: 'internal error', chat_id: frame.chat_id });
    }
  }

  private parse(text: string | undefined): ClientFrame | undefined {
    const fail = (error: string, code: ErrorCode = 'bad_frame', chatId?: unknown) => {
      this.invalidFrame(code, error);
      // Never echo unbounded input: a chat_id is echoed only when it can be one.
      const echo = typeof chatId === 'string' && chatId.length <= MAX_CHAT_ID_CHARS ? { chat_id: chatId } : {};
      this.send({ type: 'error', code, error: clip(error, MAX_ERROR_CHARS), ...echo });
      return undefined;
    };
    if (text === undefined) return fail('binary frames are not supported: send JSON text');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fail('frame is not valid JSON');
    }
    const type = (json as { type?: unknown } | null)?.type;
    const chatId = (json as { chat_id?: unknown } | null)?.chat_id;
    if (typeof type !== 'string') return fail('frame needs a string "type"');
    if (!(CLIENT_FRAME_TYPES as string[]).includes(type)) {
      return fail(`unknown message type "${clip(type, 64)}" (expected one of ${CLIENT_FRAME_TYPES.join(', ')})`, 'unknown_type', chatId);
    }
    const parsed = ClientFrameSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues;
      const why = issues.slice(0, 5).map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
      if (issues.length > 5) why.push(`and ${issues.length - 5} more`);
      return fail(`invalid ${type} frame: ${why.join('; ')}`, 'bad_frame', chatId);
    }
    return parsed.data;
  }

  /**
   * A client that sends invalid frames is logged once per socket, at warn, with the kind and no stack or input: a
   * flood of bad frames cannot flood the log. Later ones are counted (metrics) and answered, not logged.
   */
  private invalidFrame(code: ErrorCode, error: string): void {
    if (this.loggedInvalidFrame) return;
    this.loggedInvalidFrame = true;
    this.log.warn({ code, reason: clip(error, 200) }, 'invalid websocket frame (further ones on this socket are not logged)');
  }

  /** Carries out a frame; a chat operation it queued is returned wrapped (not awaited), so the socket reads on. */
  private async dispatch(frame: ClientFrame): Promise<{ operation: Promise<unknown> } | undefined> {
    const { channel } = this.deps;
    const chatId = frame.chat_id;
    // Following a chat is for the connection: nothing to do once it is gone.
    if (this.detached && (frame.type === 'subscribe' || frame.type === 'unsubscribe')) return;
    if (frame.type === 'unsubscribe') {
      channel.unsubscribe(chatId, this);
      this.followed.delete(chatId);
      return;
    }
    await this.requireChat(chatId);
    if ((frame.type === 'subscribe' || frame.type === 'chat' || frame.type === 'retry') && frame.capabilities) {
      this.capabilities = new Set(frame.capabilities);
    }
    switch (frame.type) {
      case 'subscribe':
        await this.follow(chatId, frame.last_seq);
        if (this.deps.prewarm) this.prewarm(chatId);
        return;
      case 'chat': {
        const content = frame.content;
        const images = decodeImages(frame.images, this.deps.images);
        if (content.trim().length === 0 && images.length === 0) {
          throw new ChatError('invalid_message', 'content must not be empty');
        }
        if (content.length > this.deps.maxMessageChars) {
          throw new ChatError('invalid_message', `content is longer than ${this.deps.maxMessageChars} characters`);
        }
        if (await this.rateLimited(chatId)) return;
        // `chat` on a chat the socket does not follow yet subscribes it first (the seed client relies on it).
        if (!channel.isSubscribed(chatId, this)) await this.follow(chatId);
        return { operation: channel.send(chatId, content, images, frame.client_id) };
      }
      case 'stop':
        return { operation: channel.stop(chatId) };
      case 'permission_response':
        if (!(await channel.answerPermission(chatId, frame.request_id, frame.allow, frame.remember))) {
          throw new ChatError('not_found', `no open permission request ${frame.request_id} (answered, expired or cancelled)`);
        }
        return;
      case 'clear_history':
        if (!channel.isSubscribed(chatId, this)) await this.follow(chatId);
        return { operation: channel.clear(chatId) };
      case 'retry':
        // A new answer costs like a message: the same rate limit.
        if (await this.rateLimited(chatId)) return;
        if (!channel.isSubscribed(chatId, this)) await this.follow(chatId);
        return { operation: channel.retry(chatId) };
    }
  }

  /** Subscribes this socket to the chat; undone if the socket closed while the snapshot was being read. */
  private async follow(chatId: string, lastSeq?: number): Promise<void> {
    const { channel } = this.deps;
    this.followed.add(chatId);
    await channel.subscribe(chatId, this, { ...(lastSeq !== undefined ? { lastSeq } : {}), imageRefs: this.capabilities.has('image_urls') });
    if (this.detached) channel.unsubscribe(chatId, this);
  }

  /** Starting the agent is best effort: a failure shows up, with its reason, on the first message instead. */
  private prewarm(chatId: string): void {
    this.deps.channel.prewarm(chatId).catch((err: unknown) => this.log.debug({ err, chat_id: chatId }, 'prewarm failed'));
  }

  /** Another user's chat is `not_found`, exactly like a chat that does not exist. */
  private async requireChat(chatId: string): Promise<void> {
    if (!(await this.deps.chatAccess(this.identity.principal, chatId))) throw new ChatError('not_found', `chat ${chatId} not found`);
  }

  /**
   * Past MESSAGES_PER_MINUTE, a `chat` (or `retry`) frame is answered `rate_limited` and nothing is stored or sent.
   * A limiter that cannot answer (Redis unreachable) lets the frame through: the node reports itself unready
   * meanwhile, and a message is worth more than a count.
   */
  private async rateLimited(chatId: string): Promise<boolean> {
    const { messageLimiter } = this.deps;
    if (!messageLimiter || this.identity.limitKey === undefined) return false;
    let waitMs: number;
    try {
      waitMs = await messageLimiter.take(this.identity.limitKey);
    } catch (err) {
      this.log.warn({ err }, 'message rate limit unavailable: frame let through');
      return false;
    }
    if (waitMs === 0) return false;
    this.send({
      type: 'error',
      code: 'rate_limited',
      error: `too many messages: at most ${messageLimiter.perMinute} a minute; try again in ${Math.ceil(waitMs / 1000)} s`,
      chat_id: chatId,
    });
    return true;
  }

  /**
   * A socket keeps the principal it was admitted with; before each frame it checks that it still may act (its
   * token not revoked, its user not removed, or for a socket of local mode, that no user was added since), and
   * is closed with 4401 otherwise.
   */
  private async stillAuthorized(): Promise<boolean> {
    let valid: boolean;
    try {
      valid = await this.deps.auth.stillValid(this.identity.principal);
    } catch (err) {
      // The store failed (or is closing at shutdown): refuse rather than act unchecked.
      this.log.error({ err }, 'could not re-check a websocket principal');
      this.closedByService = true;
      if (this.socket.readyState === this.socket.OPEN) this.socket.close(1011, 'internal error');
      this.detach();
      return false;
    }
    if (valid) return true;
    this.closedByService = true;
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(CLOSE_UNAUTHORIZED, 'credentials no longer valid');
    this.detach();
    return false;
  }
}
