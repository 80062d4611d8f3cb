import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BottleError } from "../errors.ts";
import { configDir, userAgentsDir, userBottlesDir } from "../paths.ts";
import { displayPath } from "./errors.ts";
import { agentJsonSchema, bottleJsonSchema } from "./json-schema.ts";
import { parsePresetRef, presetNames } from "./presets.ts";
import { NAME_PATTERN } from "./schema.ts";

type Env = Record<string, string | undefined>;

export function schemaDir(env: Env = process.env): string {
  return join(configDir(env), "schema");
}

/** A commented starter bottle with these presets (as written: npm, github@1); valid as written. */
export function starterBottle(name: string, presets: readonly string[] = []): string {
  return `# yaml-language-server: $schema=../schema/bottle.json
#
# Bottle "${name}": where an agent runs and what it may reach.
# Bottles hold credentials, so they live only in your config dir — a
# repository can ship agents, never bottles. \`bottle info\` shows the result.

# Merge other bottles first, left to right (one name or a list):
# extends: base

# Hosts the bottle may reach on top of Claude Code's own (see \`bottle info\`).
egress:
  # Host lists shipped with bottle: ${presetNames().join(", ")}.
  # "npm" is the newest list, "npm@1" pins one; \`bottle info\` shows the hosts.
  presets: [${presets.join(", ")}]
  # Host names only, no URLs: "*.example.com" and "host:8443" work.
  allow: []
  #  - github.com
  #  - "*.npmjs.org"
  # Hosts or networks that resolve to private addresses:
  # allow_private: [10.0.0.0/8, registry.internal]
  # The gate's limits (0 = none); defaults: 1200 requests/min, 2 GiB out,
  # 10 min idle, 6 h per tunnel, 64 MiB per gate log (max_log_bytes).
  # limits: { requests_per_minute: 600, bytes_out: 1073741824 }
  # Tokens the gate adds to requests to one host; the bottle's $GH_TOKEN is
  # only a placeholder (paths and methods narrow where it is added):
  # routes:
  #   - host: api.github.com
  #     paths: [/repos/you/project/]
  #     auth:
  #       token: \${GH_TOKEN}

# Claude Code's login: by default $CLAUDE_CODE_OAUTH_TOKEN (from
# \`claude setup-token\`) or $ANTHROPIC_API_KEY from your env. Only the gate
# holds it; the bottle gets a placeholder.
# auth:
#   token: \${MY_CLAUDE_TOKEN}

# Env vars for the agent. Values never appear in any output.
# env:
#   GITHUB_TOKEN: \${GITHUB_TOKEN}      # copied from your env at launch
#   DB_PASSWORD: "?Database password"  # asked at launch, not echoed
#   LOG_LEVEL: debug                   # a literal

# Git through the git gate: pushes are scanned for secrets, and the key
# stays in the gate.
# git:
#   user: { name: Your Name, email: you@example.com }
#   remotes:
#     origin:
#       upstream: git@github.com:you/project.git
#       identity_file: ~/.ssh/id_ed25519_bottle
#       known_host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl

# SSH through the SSH gate:
# ssh:
#   hosts:
#     - host: build.example.com
#       port: 22
#       user: deploy
#       identity_file: ~/.ssh/id_ed25519_deploy
#       known_host_key: ssh-ed25519 AAAA…

# How the project gets in: mount (default), copy, or none.
workspace: mount

# Extra CA certificates (PEM) to trust, relative to this file:
# ca_certs: [~/certs/corp-root.pem]

# Build the bottle image from your own Dockerfile (relative to this file):
# image:
#   dockerfile: ./dev.Dockerfile

# Ports of the bottle the host can open on 127.0.0.1 (a dev server; it must
# listen on 0.0.0.0): 3000 on the host's 3000 (or a free port), 80 on 8080:
# ports: [3000, "8080:80"]

# Where it runs: docker or smolmachines (--backend / BOTTLE_BACKEND win):
# backend: docker

# What it may use of the machine; defaults: all the engine's CPUs, half its
# memory (no swap), 4096 processes. Sizes like 4g, 512m, 4GiB.
# resources: { cpus: 2, memory: 4g, pids: 4096 }
`;
}

/** A commented starter agent; also a valid Claude Code sub-agent file. */
export function starterAgent(name: string, bottle: string): string {
  return `---
# yaml-language-server: $schema=../schema/agent.json
#
# Agent "${name}": what runs inside the bottle. The text below the front
# matter is its system prompt. The file works as a Claude Code sub-agent in
# ~/.claude/agents/ too.
description: ${name === "default" ? "The agent bottle runs when none is named" : `The ${name} agent`}
bottle: ${bottle}
# Skills copied in from ~/.claude/skills/<name>/:
# skills: [my-skill]
# model: sonnet
# Git identity for commits (overrides the bottle's, per field):
# git:
#   user: { name: Your Name, email: you@example.com }
---
You are working in a sandbox with broad permissions. Network access is
limited to approved hosts; ask the user if you need another one.
`;
}

export interface InitOptions {
  agent: string;
  bottle: string;
  /** The bottle's egress presets, as written (npm, github@1). */
  presets?: string[];
  force?: boolean;
  env?: Env;
}

export interface InitResult {
  /** Files written (absolute paths). */
  written: string[];
  /** An existing bottle the new agent uses, left as it was. */
  keptBottle?: string;
}

/** `--preset` values, each a preset (a usage error otherwise), each once. */
export function checkPresets(presets: readonly string[]): string[] {
  for (const preset of presets) {
    const parsed = parsePresetRef(preset);
    if ("problem" in parsed) throw new BottleError(`--preset ${preset}: ${parsed.problem}`, { exitCode: 2, fix: `use one of: ${presetNames().join(", ")}` });
  }
  return [...new Set(presets)];
}

function writeAtomic(file: string, content: string, mode = 0o600): void {
  mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, content, { mode });
  renameSync(temp, file);
}

/**
 * Write a starter bottle and agent into the config dir, plus the JSON
 * Schemas they reference. An existing agent file is never overwritten
 * without `force`; an existing bottle is kept (the new agent uses it) unless
 * `force`. Checks everything before writing anything.
 */
export function initConfig(options: InitOptions): InitResult {
  const env = options.env ?? process.env;
  for (const [what, name] of [
    ["agent", options.agent],
    ["bottle", options.bottle],
  ] as const) {
    if (!NAME_PATTERN.test(name)) {
      throw new BottleError(`"${name}" is not a valid ${what} name — use lower-case letters, digits and -, starting with a letter`, { exitCode: 2 });
    }
  }
  const presets = checkPresets(options.presets ?? []);
  const agentFile = join(userAgentsDir(env), `${options.agent}.md`);
  const bottleFile = join(userBottlesDir(env), `${options.bottle}.yaml`);
  if (existsSync(agentFile) && !options.force) {
    throw new BottleError(`${displayPath(agentFile, env)} already exists; not overwriting it`, {
      fix: `choose another name with --agent NAME, or pass --force to replace it`,
    });
  }
  const keepBottle = existsSync(bottleFile) && !options.force;
  // Presets go into a new bottle only; an existing one is the user's to edit.
  if (keepBottle && presets.length) {
    throw new BottleError(`${displayPath(bottleFile, env)} already exists; --preset would not change it`, {
      fix: `add egress.presets: [${presets.join(", ")}] to it yourself, or pass --force to replace it`,
    });
  }
  const written: string[] = [];
  const dir = schemaDir(env);
  const bottleSchemaFile = join(dir, "bottle.json");
  const agentSchemaFile = join(dir, "agent.json");
  writeAtomic(bottleSchemaFile, `${JSON.stringify(bottleJsonSchema(), null, 2)}\n`, 0o644);
  writeAtomic(agentSchemaFile, `${JSON.stringify(agentJsonSchema(), null, 2)}\n`, 0o644);
  written.push(bottleSchemaFile, agentSchemaFile);
  if (!keepBottle) {
    writeAtomic(bottleFile, starterBottle(options.bottle, presets));
    written.push(bottleFile);
  }
  writeAtomic(agentFile, starterAgent(options.agent, options.bottle));
  written.push(agentFile);
  return { written, ...(keepBottle ? { keptBottle: bottleFile } : {}) };
}
