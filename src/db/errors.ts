/** A write refused by a UNIQUE constraint, on either dialect (SQLite's code, or Postgres's SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

/** Why the store cannot serve right now, in words a user can read; the fault is expected to clear by itself. */
export interface StorageFault {
  kind: 'full' | 'busy' | 'unavailable';
  message: string;
}

/** Refused without trying: the store is known to be in a fault that has not cleared yet. */
export class StorageFaultError extends Error {
  constructor(readonly fault: StorageFault) {
    super(`storage unavailable: ${fault.message}`);
    this.name = 'StorageFaultError';
  }
}

// SQLite result codes (better-sqlite3 puts the extended code in `code`) and Postgres SQLSTATEs.
const SQLITE_FULL = /^SQLITE_FULL/;
const SQLITE_BUSY = /^SQLITE_(BUSY|LOCKED)/;
const SQLITE_UNAVAILABLE = /^SQLITE_(IOERR|CANTOPEN|READONLY|PROTOCOL|NOLFS)/;
const PG_FULL = new Set(['53100']); // disk_full
const PG_BUSY = new Set(['53300', '55P03', '40001', '40P01']); // too many connections, lock not available, serialization, deadlock
const PG_UNAVAILABLE = /^(08|57P0[1-3])/; // connection exceptions; admin or crash shutdown, cannot connect now
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EIO']);
const CONNECTION_LOST = /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection/i;

/**
 * A store failure that is the environment's, not the request's: the disk is full, the database is locked beyond
 * the busy timeout, or the database server is unreachable or restarting. Callers answer it with a clear,
 * retryable error (503 / `storage_unavailable`), and background writes retry it until it clears.
 */
export function storageFault(err: unknown): StorageFault | undefined {
  if (err instanceof StorageFaultError) return err.fault;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (SQLITE_FULL.test(code) || PG_FULL.has(code) || code === 'ENOSPC') return { kind: 'full', message: 'the database disk is full' };
    if (SQLITE_BUSY.test(code) || PG_BUSY.has(code)) return { kind: 'busy', message: 'the database is locked by another writer' };
    if (SQLITE_UNAVAILABLE.test(code) || PG_UNAVAILABLE.test(code) || NETWORK.has(code)) {
      return { kind: 'unavailable', message: 'the database is unreachable' };
    }
  }
  if (err instanceof Error && CONNECTION_LOST.test(err.message)) return { kind: 'unavailable', message: 'the database connection was lost' };
  return undefined;
}
