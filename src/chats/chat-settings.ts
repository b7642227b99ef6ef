import type { ChatSettings, ChatSettingsPatch, PermissionMode } from '../protocol/chat.js';

/**
 * The permission modes from the narrowest to the widest: what a mode lets the agent do without a user's yes.
 * - `plan`: plans only, runs no tool that changes anything;
 * - `dontAsk`: runs only pre-approved tools (ALLOWED_TOOLS), refuses the rest without asking;
 * - `default`: runs pre-approved tools, asks the user about the rest;
 * - `acceptEdits`: like default, and file edits run without asking;
 * - `bypassPermissions`: runs everything without asking.
 * A chat may pick its own mode only at or left of the service's PERMISSION_MODE.
 */
export const PERMISSION_MODE_ORDER: readonly PermissionMode[] = ['plan', 'dontAsk', 'default', 'acceptEdits', 'bypassPermissions'];

/** What the operator allows chats to choose (from Config, once). */
export interface ChatSettingsPolicy {
  /** ALLOWED_TOOLS: a chat's allowed_tools must be a subset. */
  allowedTools: readonly string[];
  /** PERMISSION_MODE: a chat's permission_mode must be no wider. */
  permissionMode: PermissionMode;
  /** ALLOWED_MODELS: the models a chat may pick; undefined: any model name. */
  allowedModels?: readonly string[];
}

/** A chat asked for more than the operator allows (403: the request is well-formed, the policy refuses it). */
export class ChatSettingsError extends Error {
  readonly statusCode = 403;
}

/** A PATCH's settings applied to the chat's current ones: a value replaces, `null` removes (the service's again). */
export function mergeSettings(current: ChatSettings, patch: ChatSettingsPatch): ChatSettings {
  const next: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return next as ChatSettings;
}

/** Throws ChatSettingsError naming the first setting that would widen what the operator allows. */
export function checkSettings(settings: ChatSettings, policy: ChatSettingsPolicy): void {
  const { model, permission_mode: mode, allowed_tools: tools } = settings;
  if (model !== undefined && policy.allowedModels && !policy.allowedModels.includes(model)) {
    throw new ChatSettingsError(
      `model ${model} is not allowed; the service allows ${policy.allowedModels.join(', ') || 'no model choice'} (ALLOWED_MODELS)`,
    );
  }
  if (mode !== undefined && PERMISSION_MODE_ORDER.indexOf(mode) > PERMISSION_MODE_ORDER.indexOf(policy.permissionMode)) {
    const allowed = PERMISSION_MODE_ORDER.slice(0, PERMISSION_MODE_ORDER.indexOf(policy.permissionMode) + 1);
    throw new ChatSettingsError(
      `permission_mode ${mode} is wider than the service's ${policy.permissionMode} (PERMISSION_MODE); a chat may pick ${allowed.join(', ')}`,
    );
  }
  const extra = (tools ?? []).filter((tool) => !policy.allowedTools.includes(tool));
  if (extra.length > 0) {
    throw new ChatSettingsError(
      `allowed_tools may only narrow the service's ALLOWED_TOOLS (${policy.allowedTools.join(', ') || 'none'}); not allowed: ${extra.join(', ')}`,
    );
  }
}
