import { defineCommand } from "citty";
import { buildInfo } from "../lib/version.ts";

/** Subcommands load lazily: adding one is a file and a line here. */
export const commands = {
  up: () => import("./up.ts").then((m) => m.default),
  run: () => import("./run.ts").then((m) => m.default),
  ls: () => import("./ls.ts").then((m) => m.default),
  attach: () => import("./attach.ts").then((m) => m.default),
  exec: () => import("./exec.ts").then((m) => m.default),
  fetch: () => import("./fetch.ts").then((m) => m.default),
  branches: () => import("./branches.ts").then((m) => m.default),
  diff: () => import("./diff.ts").then((m) => m.default),
  log: () => import("./log.ts").then((m) => m.default),
  merge: () => import("./merge.ts").then((m) => m.default),
  apply: () => import("./apply.ts").then((m) => m.default),
  logs: () => import("./logs.ts").then((m) => m.default),
  down: () => import("./down.ts").then((m) => m.default),
  allow: () => import("./allow.ts").then((m) => m.default),
  port: () => import("./port.ts").then((m) => m.default),
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

/**
 * The command tree, apart from cmd/bottle.ts (which runs it) so that
 * completion can walk it without starting the CLI.
 */
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

