// A statement compiled once per dialect and run again with new arguments: the same rows as Kysely built anew, on both
// stores, inside a transaction too; and a builder that would bake an argument into the SQL is refused.
import { expect, it, vi } from 'vitest';
import { CompiledStatement } from '../../src/db/compiled-statement.js';
import type { Db } from '../../src/db/database.js';
import { describeEachStore, storeForEachTest } from '../helpers/stores.js';

describeEachStore('CompiledStatement', (kind) => {
  const t = storeForEachTest(kind);

  it('is built once, then binds each call its own arguments (also a fixed value and an argument used twice)', async () => {
    const a = await t.store.chats.create('a');
    const b = await t.store.chats.create('b');
    const build = vi.fn((d: Db, title: string, id: string) =>
      d
        .updateTable('chats')
        .set({ title, title_source: 'user' })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('title', '!=', title), eb('title', 'is', null)]))
        .returning(['id', 'title']),
    );
    const rename = new CompiledStatement(build);

    expect((await rename.execute(t.db, 'first', a.id)).rows).toEqual([{ id: a.id, title: 'first' }]);
    expect((await rename.execute(t.db, 'second', b.id)).rows).toEqual([{ id: b.id, title: 'second' }]);
    // The same title again: the argument used twice is bound twice, so the row no longer matches.
    expect((await rename.execute(t.db, 'second', b.id)).rows).toEqual([]);
    await t.db.transaction().execute(async (trx) => {
      expect((await rename.execute(trx, 'third', a.id)).rows).toEqual([{ id: a.id, title: 'third' }]);
    });
    expect(build).toHaveBeenCalledTimes(1);
    expect((await t.store.chats.get(a.id))?.title).toBe('third');
    expect((await t.store.chats.get(b.id))?.title_source).toBe('user');
  });

  it('refuses a builder whose argument does not reach the SQL as a parameter (unused, or inlined as a name)', async () => {
    const chat = await t.store.chats.create('c');
    const unused = new CompiledStatement((d: Db, _id: string) => d.selectFrom('chats').select('id'));
    await expect(unused.execute(t.db, chat.id)).rejects.toThrow(/argument 0 is not a parameter/);
    const inlined = new CompiledStatement((d: Db, column: string) => d.selectFrom('chats').select(column as 'id'));
    await expect(inlined.execute(t.db, 'id')).rejects.toThrow(/argument 0 is not a parameter/);
  });
});
