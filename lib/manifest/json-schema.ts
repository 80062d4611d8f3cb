import { toJsonSchema } from "@valibot/to-json-schema";
import { agentSchema, bottleSchema, SUBAGENT_ONLY_KEYS } from "./schema.ts";

/**
 * JSON Schema (draft-07) generated from the valibot schemas, for editors
 * (`# yaml-language-server: $schema=…`) and `bottle schema`. It describes
 * what may be written (input side); checks that JSON Schema cannot express
 * (host names, env values) stay in the loader.
 */
function convert(schema: Parameters<typeof toJsonSchema>[0]): Record<string, unknown> {
  return toJsonSchema(schema, { typeMode: "input", errorMode: "ignore" }) as Record<string, unknown>;
}

export function bottleJsonSchema(): Record<string, unknown> {
  return convert(bottleSchema);
}

export function agentJsonSchema(): Record<string, unknown> {
  const schema = convert(agentSchema);
  // Sub-agent-only keys are errors (a custom check, which JSON Schema cannot carry): say so to editors too.
  const properties = schema.properties as Record<string, unknown>;
  for (const key of SUBAGENT_ONLY_KEYS) properties[key] = { not: {}, description: "Only a Claude Code sub-agent has this; a bottle's agent is the main session" };
  // mcpServers entries are chosen by their shape (v.lazy), which the converter sees only one of.
  const servers = properties.mcpServers as Record<string, unknown>;
  servers.items = { anyOf: [{ type: "string" }, { type: "object", minProperties: 1, maxProperties: 1 }] };
  delete schema.$defs;
  return schema;
}
