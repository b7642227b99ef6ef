import type { Migration, MigrationProvider } from 'kysely';
import * as m001 from './001-initial.js';
import * as m002 from './002-users.js';
import * as m003 from './003-chat-features.js';
import * as m004 from './004-superseded-tool-uses.js';
import * as m005 from './005-permission-rules.js';
import * as m006 from './006-message-search.js';
import * as m007 from './007-chat-import.js';
import * as m008 from './008-query-nodes.js';
import * as m009 from './009-agent-transcripts.js';
import * as m010 from './010-client-message-ids.js';
import * as m011 from './011-chat-title-search.js';

/** Migrations in code (no directory scan), so a bundled or compiled build finds them too. Order is by name. */
export const migrations: Record<string, Migration> = {
  '001-initial': m001,
  '002-users': m002,
  '003-chat-features': m003,
  '004-superseded-tool-uses': m004,
  '005-permission-rules': m005,
  '006-message-search': m006,
  '007-chat-import': m007,
  '008-query-nodes': m008,
  '009-agent-transcripts': m009,
  '010-client-message-ids': m010,
  '011-chat-title-search': m011,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
