import type { Db } from '../db/database.js';

/** Keys of the settings table, in one place. */
export const SETTING_AUTH_ENABLED = 'auth_enabled';

/** Service-wide settings (key → text value), written by the CLI and read by the service. */
export class SettingsRepository {
  constructor(private readonly db: Db) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }
}
