import fs from 'node:fs';
import { z } from 'zod';

/** One MCP server entry as Claude Code's `.mcp.json` writes it (stdio, sse or http). */
const McpServerSchema = z.union([
  z.object({
    type: z.literal('stdio').optional(),
    command: z.string().min(1),
    args: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
  }),
  z.object({ type: z.enum(['sse', 'http']), url: z.url(), headers: z.record(z.string(), z.string()).optional() }),
]);

/** Either `{"mcpServers": {...}}` (the .mcp.json / Claude Desktop layout) or the map of servers itself. */
const McpFileSchema = z.union([
  z.object({ mcpServers: z.record(z.string(), McpServerSchema) }),
  z.record(z.string(), McpServerSchema),
]);

export type McpServers = Record<string, z.infer<typeof McpServerSchema>>;

/** Reads MCP_SERVERS_FILE at start-up; a missing or malformed file stops the service with a clear message. */
export function loadMcpServers(file: string): McpServers {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`MCP_SERVERS_FILE ${file}: ${(err as Error).message}`);
  }
  const parsed = McpFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`MCP_SERVERS_FILE ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const value = parsed.data;
  return ('mcpServers' in value && typeof value.mcpServers === 'object' ? value.mcpServers : value) as McpServers;
}
