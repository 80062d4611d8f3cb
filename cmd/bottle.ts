#!/usr/bin/env bun
import { runCommand, type CommandDef } from "citty";
import { checkCommandLine, splitArgs } from "../lib/cli/args.ts";
import { usageText } from "../lib/cli/usage.ts";
import { errorMessage, isBottleError } from "../lib/errors.ts";
import { isVerbose, log, setVerbosity } from "../lib/log.ts";
import { versionLine } from "../lib/version.ts";
import { cli } from "./_shared.ts";
import { main } from "./commands.ts";

async function run(argv: string[]): Promise<number> {
  const { own, passthrough, verbosity } = splitArgs(argv);
  setVerbosity(verbosity);
  cli.passthrough = passthrough;
  cli.root = main as CommandDef;
  if (own.length === 1 && (own[0] === "--version" || own[0] === "-v")) {
    process.stdout.write(`${versionLine}\n`);
    return 0;
  }
  const resolved = await checkCommandLine(main as CommandDef, own);
  if (own.length === 0 || own.includes("--help") || own.includes("-h")) {
    const parent = resolved.path.length > 0 ? (main as CommandDef) : undefined;
    process.stdout.write(await usageText(resolved.command, parent));
    return 0;
  }
  await runCommand(main as CommandDef, { rawArgs: own });
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}

// A reader that stops early (`bottle ls --json | head -1`) closes the pipe: stop quietly, not with a stack trace.
// A terminal that closed (a detached session's launcher lives on): what is still said on stderr goes nowhere, quietly.
process.stderr.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE" && error.code !== "EIO") throw error;
});

process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
});

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
