/**
 * Bounds the memory of frames being received, over all sockets of the process. The WebSocket library keeps a frame's
 * bytes until the frame is complete, and a valid `chat` frame may be ~70 MB (ten 5 MiB images): sixteen sockets
 * uploading at once would hold 16 × 70 MB, and each complete one costs about three times its size again while it is
 * decoded. So a socket whose frame in progress passes `smallFrameBytes` needs one of `slots`; without a free slot the
 * socket is not read (its bytes wait in the client's TCP buffers, not here) until one frees, first come first served.
 * Frames below `smallFrameBytes` (every frame without images, most with one) never wait.
 *
 * A slot is held at most until its frame completes or its socket closes; a client that trickles a frame cannot
 * answer pings meanwhile, so the heartbeat ends it within two intervals (WS_HEARTBEAT_MS).
 */
export class LargeFrameGate {
  private readonly holders = new Set<object>();
  private readonly waiting = new Map<object, () => void>();

  constructor(
    readonly slots: number,
    readonly smallFrameBytes: number,
  ) {}

  /**
   * Called after each chunk a socket read, with the bytes of its frame in progress. Returns false when the socket
   * must stop reading: `resume` is called once a slot is its.
   */
  update(socket: object, partialBytes: number, resume: () => void): boolean {
    if (partialBytes <= this.smallFrameBytes) {
      this.release(socket);
      return true;
    }
    if (this.holders.has(socket)) return true;
    if (this.holders.size < this.slots && this.waiting.size === 0) {
      this.holders.add(socket);
      return true;
    }
    this.waiting.set(socket, resume);
    return false;
  }

  /** The socket's frame completed, or the socket closed: its slot (or its place in the queue) goes to the next. */
  release(socket: object): void {
    this.waiting.delete(socket);
    if (!this.holders.delete(socket)) return;
    for (const [next, resume] of this.waiting) {
      if (this.holders.size >= this.slots) break;
      this.waiting.delete(next);
      this.holders.add(next);
      resume();
    }
  }

  /** Whether the socket waits for a slot (it is not read meanwhile, so it cannot answer pings). */
  isWaiting(socket: object): boolean {
    return this.waiting.has(socket);
  }
}
