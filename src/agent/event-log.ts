import type { ServerEvent } from '../protocol/ws.js';
import type { SeqOrigin } from './seq-origin.js';

/** How an event is delivered: `snapshot` marks the state sent on subscribe, which the slow-client rule never cuts. */
export interface Delivery {
  snapshot?: boolean;
}

export interface ChatSubscriber {
  /** `json` is the event already serialized once for all subscribers. */
  send(event: ServerEvent, json?: string, delivery?: Delivery): void;
  /** Whether this subscriber shows permission questions and answers them (the `permission_prompts` capability). */
  readonly answersPermissions?: boolean;
}

/**
 * Where a chat's events go besides its local subscribers: with several nodes, the owner publishes each numbered event
 * to the chat's shared stream (src/cluster/), from which every node's subscribers get it.
 */
export interface EventSink {
  /** Number from just above this seq: the last one the chat's shared stream holds (or the clock's, when it is new). */
  firstSeq?: number;
  publish(seq: number, event: ServerEvent, json: string): void;
}

export interface EventLogLimits {
  /** Most events kept for replay. */
  maxEvents: number;
  /** Most bytes (of serialized events) kept for replay. */
  maxBytes: number;
}

/**
 * A chat's event stream: numbers every event (`seq`), delivers it to the chat's subscribers, and keeps the recent
 * ones so a client that reconnects with the last `seq` it saw gets exactly what it missed.
 *
 * Numbering starts where the service's SeqOrigin says (above the wall clock in µs, above anything issued before,
 * by this run or the previous one), so a `seq` of an earlier stream of the chat is never reused: its replay request
 * falls back to a full history instead of being answered with another stream's events.
 */
export class ChatEventLog {
  private readonly subscribers = new Set<ChatSubscriber>();
  private readonly recent: { seq: number; event: ServerEvent; json: string }[] = [];
  private recentBytes = 0;
  private seq: number;

  constructor(
    private readonly limits: EventLogLimits,
    private readonly origin: SeqOrigin,
    /** Sees every event (metrics). */
    private readonly tap?: (event: ServerEvent) => void,
    private readonly sink?: EventSink,
  ) {
    // With several nodes, the chat's shared stream says where its numbering is (the chat may have moved from another
    // node): it goes on from there, one by one.
    this.seq = sink?.firstSeq ?? origin.start();
    origin.issued(this.seq);
  }

  get lastSeq(): number {
    return this.seq;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  has(subscriber: ChatSubscriber): boolean {
    return this.subscribers.has(subscriber);
  }

  /** Whether any subscriber satisfies `predicate`. */
  some(predicate: (subscriber: ChatSubscriber) => boolean): boolean {
    for (const subscriber of this.subscribers) if (predicate(subscriber)) return true;
    return false;
  }

  add(subscriber: ChatSubscriber): void {
    this.subscribers.add(subscriber);
  }

  remove(subscriber: ChatSubscriber): void {
    this.subscribers.delete(subscriber);
  }

  /** Numbers the event, keeps it for replay and sends it to every subscriber. */
  emit(make: (seq: number) => ServerEvent, onSendError: (err: unknown) => void): ServerEvent {
    const seq = ++this.seq;
    this.origin.issued(seq);
    const event = make(seq);
    const json = JSON.stringify(event);
    this.recent.push({ seq, event, json });
    this.recentBytes += json.length;
    while (this.recent.length > this.limits.maxEvents || (this.recentBytes > this.limits.maxBytes && this.recent.length > 1)) {
      this.recentBytes -= this.recent.shift()!.json.length;
    }
    this.tap?.(event);
    this.sink?.publish(seq, event, json);
    for (const subscriber of this.subscribers) {
      try {
        subscriber.send(event, json);
      } catch (err) {
        onSendError(err);
      }
    }
    return event;
  }

  /**
   * The events after `afterSeq`, or undefined when some of them are no longer kept (or `afterSeq` is not a seq of
   * this run): the caller then sends the full state instead.
   */
  since(afterSeq: number): { event: ServerEvent; json: string }[] | undefined {
    if (afterSeq > this.seq) return undefined;
    if (afterSeq === this.seq) return [];
    const oldest = this.recent[0]?.seq;
    if (oldest === undefined || oldest > afterSeq + 1) return undefined;
    return this.recent.filter((r) => r.seq > afterSeq);
  }
}
