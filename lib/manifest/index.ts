/**
 * Manifests: bottles (user config only) and agents (project or user), their
 * schemas, resolution of `extends`, and the embedded defaults.
 */
import { listAgentsSync, resolveAgent, warnProjectBottles, type AgentListing } from "./agents.ts";
import { resolveBottle } from "./bottles.ts";
import type { GitUser, Resolved } from "./types.ts";

export type { AgentManifest, BottleManifest, BottleFileManifest } from "./schema.ts";
export type { EnvSource } from "./env-value.ts";
export type { GitUser, Resolved, ResolvedAgent, ResolvedBottle, ResolvedEnvEntry } from "./types.ts";
export type { AgentListing } from "./agents.ts";
export type { ManifestIssue } from "./errors.ts";
export type { InfoView } from "./info.ts";
export type { InitOptions, InitResult } from "./init.ts";

export { ManifestError, displayPath, formatIssue } from "./errors.ts";
export { CLAUDE_CODE_HOSTS, BUILTIN, builtinAgent, builtinBottle } from "./defaults.ts";
export { resolveAgent } from "./agents.ts";
export { resolveBottle, listBottleNames, bottleFile } from "./bottles.ts";
export { resolveEnvValues } from "./env.ts";
export { bottleJsonSchema, agentJsonSchema } from "./json-schema.ts";
export { infoView, formatInfo, formatAgentList } from "./info.ts";
export { initConfig, starterAgent, starterBottle, schemaDir } from "./init.ts";
export { loadAgentText, loadBottleText } from "./load.ts";
export { agentSchema, bottleSchema, NAME_PATTERN } from "./schema.ts";

type Env = Record<string, string | undefined>;

export interface ResolveOptions {
  /** Agent name; default `default`. */
  agent?: string;
  /** Bottle name; overrides the agent's `bottle:`. */
  bottle?: string;
  projectDir: string;
  env?: Env;
}

function mergeGitUser(bottleUser: GitUser | undefined, agentUser: GitUser | undefined): GitUser | undefined {
  const name = agentUser?.name ?? bottleUser?.name;
  const email = agentUser?.email ?? bottleUser?.email;
  if (name === undefined && email === undefined) return undefined;
  return { ...(name === undefined ? {} : { name }), ...(email === undefined ? {} : { email }) };
}

/**
 * The agent (project first, then user config, then built-in) and its bottle
 * (with `extends` merged). Reads only the files it needs.
 */
export async function resolveAgentAndBottle(options: ResolveOptions): Promise<Resolved> {
  const env = options.env ?? process.env;
  warnProjectBottles(options.projectDir, env);
  const agent = resolveAgent(options.agent ?? "default", options.projectDir, env);
  const fromFlag = options.bottle !== undefined;
  const name = options.bottle ?? agent.bottle;
  const requester =
    !fromFlag && agent.locations.bottle ? { file: agent.source, ...agent.locations.bottle, path: "bottle" } : undefined;
  const bottle = resolveBottle(name, { env, ...(requester ? { requester } : {}) });
  const gitUser = mergeGitUser(bottle.git.user, agent.gitUser);
  return { agent, bottle, ...(gitUser ? { gitUser } : {}) };
}

/** Every agent: name, source file, bottle, description. Reads agent front matter, no bottle file. */
export async function listAgents(options: { projectDir: string; env?: Env }): Promise<AgentListing[]> {
  return listAgentsSync(options.projectDir, options.env ?? process.env);
}
