import { CompiledQuery, type Compilable, type QueryResult } from 'kysely';
import { dialectOf, type Db, type DialectName } from './database.js';

/** Stands for argument `i` while a statement is built; never a value a caller could pass. */
const placeholder = (i: number): string => `\u0000statement-argument-${i}\u0000`;

/** Where each parameter of the compiled SQL comes from: an argument (its index), or a value fixed by the builder. */
type ParameterSource = { argument: number } | { fixed: unknown };

interface Compiled {
  sql: string;
  parameters: ParameterSource[];
}

/**
 * A statement that Kysely builds and compiles once per dialect, then runs with new arguments: the SQL text stays, only
 * the parameters are bound again. For the few statements every answer runs (about ten per turn): building a query
 * (immutable operation nodes, parsing each expression) and compiling it to SQL cost more CPU than SQLite takes to run
 * it, and every chat's deltas wait while the event loop does it (measured with `npm run bench:profile`).
 *
 * `build` must use its arguments as values only (a `where`, a `values`, a `set`), never to choose the statement's
 * shape: it runs once, with stand-ins for the arguments. A value that decides the shape (`is null` against `= ?`, an
 * optional column) needs a statement per shape. Building checks what it can: every stand-in must reach the SQL as a
 * parameter, none inlined into its text.
 */
export class CompiledStatement<Args extends unknown[], Row> {
  private readonly byDialect = new Map<DialectName, Compiled>();

  constructor(private readonly build: (db: Db, ...args: Args) => Compilable<Row>) {}

  /** Runs the statement with `args` on `db` (a transaction or not). */
  async execute(db: Db, ...args: Args): Promise<QueryResult<Row>> {
    const compiled = this.compiled(db, args.length);
    const parameters = compiled.parameters.map((p) => ('argument' in p ? args[p.argument] : p.fixed));
    return db.executeQuery(CompiledQuery.raw(compiled.sql, parameters) as CompiledQuery<Row>);
  }

  private compiled(db: Db, argCount: number): Compiled {
    const dialect = dialectOf(db);
    let compiled = this.byDialect.get(dialect);
    if (compiled) return compiled;
    const standIns = Array.from({ length: argCount }, (_, i) => placeholder(i));
    const { sql, parameters } = this.build(db, ...(standIns as Args)).compile();
    const argumentOf = new Map(standIns.map((s, i) => [s, i]));
    compiled = {
      sql,
      parameters: parameters.map((value) => {
        const argument = typeof value === 'string' ? argumentOf.get(value) : undefined;
        return argument === undefined ? { fixed: value } : { argument };
      }),
    };
    const bound = new Set(compiled.parameters.flatMap((p) => ('argument' in p ? [p.argument] : [])));
    for (const [i, standIn] of standIns.entries()) {
      if (sql.includes(standIn) || !bound.has(i)) {
        throw new Error(`CompiledStatement: argument ${i} is not a parameter of the SQL (it must only be used as a value): ${sql}`);
      }
    }
    this.byDialect.set(dialect, compiled);
    return compiled;
  }
}
