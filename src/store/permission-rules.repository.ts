import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { PermissionRulesTable } from '../db/schema.js';
import { PERMISSION_RULE_KINDS, type PermissionRule, type PermissionRuleKind, type RememberRule } from '../protocol/chat.js';

const isKind = (kind: string): kind is PermissionRuleKind => (PERMISSION_RULE_KINDS as readonly string[]).includes(kind);

const toRule = (row: PermissionRulesTable): PermissionRule | undefined =>
  // A kind this version does not know (written by a newer one) matches nothing here rather than everything.
  isKind(row.kind)
    ? {
        id: row.id,
        chat_id: row.chat_id,
        tool_name: row.tool_name,
        kind: row.kind,
        pattern: row.pattern,
        description: row.description,
        created_at: row.created_at,
      }
    : undefined;

/** The remembered approvals of each chat ("Allow for this chat"); they go with their chat. */
export class PermissionRulesRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  /** The chat's rules, oldest first. */
  async list(chatId: string): Promise<PermissionRule[]> {
    const rows = await this.db
      .selectFrom('permission_rules')
      .selectAll()
      .where('chat_id', '=', chatId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toRule).filter((r): r is PermissionRule => r !== undefined);
  }

  /**
   * Remembers a rule for the chat; the same rule twice is kept once (the stored one is returned). Undefined when the
   * chat does not exist (any more).
   */
  async add(chatId: string, rule: RememberRule): Promise<PermissionRule | undefined> {
    const existing = await this.find(chatId, rule);
    if (existing) return existing;
    const chat = await this.db.selectFrom('chats').select('id').where('id', '=', chatId).executeTakeFirst();
    if (!chat) return undefined;
    try {
      await this.db
        .insertInto('permission_rules')
        .values({ id: randomUUID(), chat_id: chatId, ...rule, created_at: this.now().toISOString() })
        // Two answers remembering the same rule at once: the second finds the first's row.
        .onConflict((oc) => oc.columns(['chat_id', 'tool_name', 'kind', 'pattern']).doNothing())
        .execute();
    } catch (err) {
      // The chat was deleted meanwhile (its foreign key fails): nothing to remember for.
      if (!(await this.db.selectFrom('chats').select('id').where('id', '=', chatId).executeTakeFirst())) return undefined;
      throw err;
    }
    return this.find(chatId, rule);
  }

  /** Forgets one rule of the chat; false when the chat has no rule with that id. */
  async remove(chatId: string, ruleId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('permission_rules')
      .where('chat_id', '=', chatId)
      .where('id', '=', ruleId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  private async find(chatId: string, rule: RememberRule): Promise<PermissionRule | undefined> {
    const row = await this.db
      .selectFrom('permission_rules')
      .selectAll()
      .where('chat_id', '=', chatId)
      .where('tool_name', '=', rule.tool_name)
      .where('kind', '=', rule.kind)
      .where('pattern', '=', rule.pattern)
      .executeTakeFirst();
    return row && toRule(row);
  }
}
