import { toJsonSchema } from "@valibot/to-json-schema";
import { agentSchema, bottleSchema } from "./schema.ts";

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
  return convert(agentSchema);
}
