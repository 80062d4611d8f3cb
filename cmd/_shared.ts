import type { ArgsDef, CommandDef } from "citty";
import { BACKEND_NAMES } from "../lib/backends/names.ts";

/** Flags several commands share; spread into each command's `args`. */

export const jsonArgs = {
  json: { type: "boolean", description: "Print machine-readable JSON on stdout" },
} as const satisfies ArgsDef;

export const yesArgs = {
  yes: { type: "boolean", alias: "y", description: "Do not ask for confirmation" },
} as const satisfies ArgsDef;

export const contextArgs = {
  context: { type: "string", valueHint: "NAME", description: "The docker context to run on (default: $DOCKER_HOST, $DOCKER_CONTEXT, or the current context)" },
} as const satisfies ArgsDef;

export const backendArgs = {
  backend: { type: "string", description: `Where bottles run: ${BACKEND_NAMES.join(" | ")} (default: $BOTTLE_BACKEND, the bottle's backend:, or docker)` },
} as const satisfies ArgsDef;

/**
 * What cmd/bottle.ts knows before any command runs: the arguments after
 * `--` (split off before citty parses the rest) and the root of the command
 * tree (for `bottle completion`, which cannot import the tree it is part of).
 */
export const cli: { passthrough: string[]; root?: CommandDef } = { passthrough: [] };

/** Write data for scripts to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
