import type { NodeRun } from '../cluster/node-identity.js';
import type { Db } from '../db/database.js';
import { AgentTranscriptsRepository } from './agent-transcripts.repository.js';
import { monotonicClock } from './clock.js';
import { ChatsRepository } from './chats.repository.js';
import { ChatTransferRepository } from './chat-transfer.repository.js';
import { ForksRepository } from './forks.repository.js';
import { MessagesRepository } from './messages.repository.js';
import { PermissionRulesRepository } from './permission-rules.repository.js';
import { QueriesRepository } from './queries.repository.js';
import { SettingsRepository } from './settings.repository.js';
import { TokensRepository } from './tokens.repository.js';
import { ToolUsesRepository } from './tool-uses.repository.js';
import { UsersRepository } from './users.repository.js';
import { UsageRepository } from './usage.repository.js';

/** The repositories over one database handle; built once in buildApp and passed down. */
export class Store {
  readonly chats: ChatsRepository;
  readonly messages: MessagesRepository;
  readonly toolUses: ToolUsesRepository;
  readonly queries: QueriesRepository;
  readonly users: UsersRepository;
  readonly tokens: TokensRepository;
  readonly settings: SettingsRepository;
  readonly usage: UsageRepository;
  readonly permissionRules: PermissionRulesRepository;
  readonly transfer: ChatTransferRepository;
  readonly forks: ForksRepository;
  readonly agentTranscripts: AgentTranscriptsRepository;

  constructor(
    readonly db: Db,
    readonly now: () => Date = monotonicClock(),
    /** The node run of the service using this store: recorded on the queries it starts (see NodeRun). */
    readonly node?: NodeRun,
  ) {
    this.chats = new ChatsRepository(db, now);
    this.messages = new MessagesRepository(db, now);
    this.toolUses = new ToolUsesRepository(db, now);
    this.queries = new QueriesRepository(db, now, node);
    this.users = new UsersRepository(db, now);
    this.tokens = new TokensRepository(db, now);
    this.settings = new SettingsRepository(db);
    this.usage = new UsageRepository(db, now);
    this.permissionRules = new PermissionRulesRepository(db, now);
    this.transfer = new ChatTransferRepository(db, now);
    this.forks = new ForksRepository(db);
    this.agentTranscripts = new AgentTranscriptsRepository(db, now);
  }

  /** Runs `work` in one transaction, with repositories bound to it. */
  transaction<T>(work: (store: Store) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => work(new Store(trx, this.now, this.node)));
  }
}
