import { createConsola, type ConsolaInstance } from "consola";

/**
 * The one logger. Everything goes to stderr so that stdout carries only data
 * (`--json`, names printed for scripts).
 */
export const log: ConsolaInstance = createConsola({
  stdout: process.stderr,
  stderr: process.stderr,
  level: 3,
});

export type Verbosity = "quiet" | "normal" | "verbose";

export function setVerbosity(verbosity: Verbosity): void {
  log.level = verbosity === "quiet" ? 1 : verbosity === "verbose" ? 4 : 3;
}

export function isVerbose(): boolean {
  return log.level >= 4;
}
