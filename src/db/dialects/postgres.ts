import { PostgresDialect } from 'kysely';
import pg from 'pg';

/** Postgres type OIDs whose text form the store converts itself (pg's default leaves them strings). */
const INT8_OID = 20;

/**
 * The shared store: a PostgreSQL database several service processes can use at once. Values come back as the
 * repositories expect them on SQLite too: `count(*)` and other bigints as numbers (pg returns them as strings by
 * default, since they may exceed 2^53; our counts never do), bytea as Buffer, text and integers as they are.
 */
export function postgresDialect(url: string, onError: (err: Error) => void): PostgresDialect {
  const pool = new pg.Pool({
    connectionString: url,
    application_name: 'agent-chat',
    max: 10,
    // No JIT compilation: the service runs short statements, and an estimate that crosses jit_above_cost (a search
    // over a million messages did) spends most of a second compiling a plan that then runs in milliseconds.
    options: '-c jit=off',
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary'
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // A pooled connection that breaks while idle (Postgres restarted, network cut) is dropped by the pool and the
  // next query opens a new one; without a listener the 'error' event would end the process.
  pool.on('error', onError);
  // The pool listens only to idle connections. One checked out between two statements of a transaction when the
  // server cuts it (restart, failover, pg_terminate_backend) would emit an 'error' nobody hears, and that ends the
  // process; the statements after it fail on their own and are answered as storage faults.
  pool.on('connect', (client) => client.on('error', onError));
  return new PostgresDialect({ pool });
}
