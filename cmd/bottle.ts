#!/usr/bin/env bun
import { defineCommand, runCommand, showUsage, type CommandDef } from "citty";
import { checkCommandLine, splitArgs } from "../lib/cli.ts";
import { errorMessage, isBottleError } from "../lib/errors.ts";
import { isVerbose, log, setVerbosity } from "../lib/log.ts";
import { buildInfo, versionLine } from "../lib/version.ts";
import { cli } from "./_shared.ts";

/** Subcommands load lazily: adding one is a file and a line here. */
const commands = {
  up: () => import("./up.ts").then((m) => m.default),
  ls: () => import("./ls.ts").then((m) => m.default),
  attach: () => import("./attach.ts").then((m) => m.default),
  exec: () => import("./exec.ts").then((m) => m.default),
  logs: () => import("./logs.ts").then((m) => m.default),
  down: () => import("./down.ts").then((m) => m.default),
  allow: () => import("./allow.ts").then((m) => m.default),
  cleanup: () => import("./cleanup.ts").then((m) => m.default),
  agents: () => import("./agents.ts").then((m) => m.default),
  info: () => import("./info.ts").then((m) => m.default),
  init: () => import("./init.ts").then((m) => m.default),
  schema: () => import("./schema.ts").then((m) => m.default),
  doctor: () => import("./doctor.ts").then((m) => m.default),
  assets: () => import("./assets.ts").then((m) => m.default),
  completion: () => import("./completion.ts").then((m) => m.default),
  update: () => import("./update.ts").then((m) => m.default),
};

// No `run` on the root: citty would run it after every subcommand too.
export const main = defineCommand({
  meta: {
    name: "bottle",
    version: buildInfo.version,
    description: "Run Claude Code agents with full permissions inside isolated bottles",
  },
  args: {
    verbose: { type: "boolean", description: "Show commands and details" },
    quiet: { type: "boolean", alias: "q", description: "Only show errors" },
  },
  subCommands: commands,
});

async function run(argv: string[]): Promise<number> {
  const { own, passthrough, verbosity } = splitArgs(argv);
  setVerbosity(verbosity);
  cli.passthrough = passthrough;
  if (own.length === 1 && (own[0] === "--version" || own[0] === "-v")) {
    process.stdout.write(`${versionLine}\n`);
    return 0;
  }
  const resolved = await checkCommandLine(main as CommandDef, own);
  if (own.length === 0 || own.includes("--help") || own.includes("-h")) {
    const parent = resolved.path.length > 0 ? (main as CommandDef) : undefined;
    await showUsage(resolved.command, parent);
    return 0;
  }
  await runCommand(main as CommandDef, { rawArgs: own });
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}

try {
  process.exitCode = await run(process.argv.slice(2));
} catch (error) {
  if (isBottleError(error)) {
    process.stderr.write(`bottle: ${error.message}\n`);
    if (error.fix) process.stderr.write(`  fix: ${error.fix}\n`);
    if (error.details && isVerbose()) process.stderr.write(`${error.details}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`bottle: ${errorMessage(error)}\n`);
    if (isVerbose() && error instanceof Error && error.stack) log.debug(error.stack);
    else process.stderr.write("  (run with --verbose for details)\n");
    process.exitCode = 1;
  }
}
