import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { BottleError } from "./errors.ts";
import { stateDir } from "./paths.ts";
import { readStateList, writeStateList } from "./state-list.ts";
import type { Exec } from "./exec.ts";

/**
 * Which Docker engine a bottle runs on, by the Docker CLI's own rules, in
 * its order: `--context NAME`, else DOCKER_HOST (with DOCKER_TLS_VERIFY and
 * DOCKER_CERT_PATH), else DOCKER_CONTEXT, else the current context (`docker
 * context use`). It is written into the bottle's plan, so every later
 * command (ls, attach, exec, logs, down, cleanup) goes to that engine without
 * being told again. An engine whose endpoint is not a local socket is remote:
 * nothing of this machine's filesystem can be mounted there.
 */

export const EngineSchema = v.object({
  /** A docker context's name, when the engine was chosen by one. */
  context: v.optional(v.string()),
  /** DOCKER_HOST, when the engine was chosen by it. */
  host: v.optional(v.string()),
  tlsVerify: v.optional(v.boolean()),
  certPath: v.optional(v.string()),
  /** Where the engine listens (tcp://…, ssh://…, unix://…). */
  endpoint: v.string(),
  /** Not a local socket: no bind mounts from this machine. */
  remote: v.boolean(),
});

export type Engine = v.InferOutput<typeof EngineSchema>;

type Env = Record<string, string | undefined>;

/** The docker CLI's global flags that reach `engine` (none for the local default). */
export function engineArgs(engine: Engine | undefined): string[] {
  if (!engine) return [];
  if (engine.context) return ["--context", engine.context];
  if (!engine.host) return [];
  const args = ["--host", engine.host];
  if (engine.tlsVerify || engine.certPath) {
    const dir = engine.certPath ?? "";
    args.push("--tlsverify", "--tlscacert", `${dir}/ca.pem`, "--tlscert", `${dir}/cert.pem`, "--tlskey", `${dir}/key.pem`);
  }
  return args;
}

export function isRemoteEndpoint(endpoint: string): boolean {
  return !/^(unix|npipe):\/\//.test(endpoint);
}

/** A short name for messages and `bottle ls`. */
export function engineName(engine: Engine | undefined): string {
  if (!engine) return "local";
  return engine.context ?? engine.host ?? "local";
}

/** A context's endpoint; an unknown context is one error that lists the ones there are. */
async function contextEndpoint(exec: Exec, name: string, docker: string): Promise<string> {
  const out = await exec.run([docker, "context", "inspect", name, "--format", "{{json .Endpoints.docker.Host}}"], { check: false, env: { DOCKER_HOST: "", DOCKER_CONTEXT: "" } });
  if (out.exitCode === 0) return JSON.parse(out.stdout.trim()) as string;
  const listed = await exec.run([docker, "context", "ls", "--format", "{{.Name}}"], { check: false });
  const names = listed.stdout.split("\n").filter(Boolean);
  throw new BottleError(`there is no docker context "${name}"${names.length ? ` (contexts: ${names.join(", ")})` : ""}`, {
    fix: "see `docker context ls`, or make one with `docker context create NAME --docker host=…`",
    exitCode: 2,
  });
}

/** The engine a new bottle runs on. */
export async function resolveEngine(exec: Exec, option: string | undefined, env: Env, docker = env.BOTTLE_DOCKER || "docker"): Promise<Engine> {
  if (option) {
    const endpoint = await contextEndpoint(exec, option, docker);
    return { context: option, endpoint, remote: isRemoteEndpoint(endpoint) };
  }
  if (env.DOCKER_HOST) {
    const tls = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== "" && env.DOCKER_TLS_VERIFY !== "0";
    return {
      host: env.DOCKER_HOST,
      ...(tls ? { tlsVerify: true } : {}),
      ...(env.DOCKER_CERT_PATH ? { certPath: env.DOCKER_CERT_PATH } : {}),
      endpoint: env.DOCKER_HOST,
      remote: isRemoteEndpoint(env.DOCKER_HOST),
    };
  }
  const name = env.DOCKER_CONTEXT || currentContext(env);
  // The default context is the local socket: no docker call on every launch to learn that.
  if (name === "default") return { endpoint: "unix:///var/run/docker.sock", remote: false };
  const endpoint = await contextEndpoint(exec, name, docker);
  return { context: name, endpoint, remote: isRemoteEndpoint(endpoint) };
}

/** `docker context use` writes the current context into the CLI's config.json. */
function currentContext(env: Env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), ".docker");
  try {
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { currentContext?: unknown };
    return typeof config.currentContext === "string" && config.currentContext ? config.currentContext : "default";
  } catch {
    return "default";
  }
}

/** Every docker context the user has, as engines (`bottle ls --all-contexts`). */
export async function listContexts(exec: Exec, docker = process.env.BOTTLE_DOCKER || "docker"): Promise<Engine[]> {
  const out = await exec.run([docker, "context", "ls", "--format", "{{json .}}"], { check: false });
  return out.stdout
    .split("\n")
    .filter(Boolean)
    .flatMap((line) => {
      try {
        const row = JSON.parse(line) as { Name?: string; DockerEndpoint?: string };
        if (!row.Name || row.Name === "default" || !row.DockerEndpoint) return [];
        return [{ context: row.Name, endpoint: row.DockerEndpoint, remote: isRemoteEndpoint(row.DockerEndpoint) }];
      } catch {
        return [];
      }
    });
}

/** How long a remote engine may take to answer before bottle says it does not (the CLI alone can hang for a minute). */
export const ENGINE_DEADLINE_MS = 5_000;

/**
 * A remote engine answers within the deadline, or one error names it: the
 * Docker CLI waits 20 s to a minute on a host that drops packets. The local
 * engine is not asked (its own errors are clearer, and it costs a call).
 */
export async function checkEngineAnswers(exec: Exec, engine: Engine | undefined, docker = process.env.BOTTLE_DOCKER || "docker"): Promise<string | undefined> {
  if (!engine?.remote) return undefined;
  const out = await exec.run([docker, ...engineArgs(engine), "version", "--format", "{{.Server.Version}}"], { check: false, timeoutMs: ENGINE_DEADLINE_MS });
  if (out.exitCode === 0 && out.stdout.trim()) return out.stdout.trim();
  const reason = out.stderr.includes("timed out") ? `no answer within ${ENGINE_DEADLINE_MS / 1000} s` : (out.stderr.trim().split("\n").pop() ?? `exit ${out.exitCode}`);
  throw new BottleError(`the docker engine ${engineName(engine)} (${engine.endpoint}) does not answer: ${reason.slice(0, 300)}`, {
    fix: `check that the machine is up and the ${engine.context ? `context (docker --context ${engine.context} version)` : "DOCKER_HOST"} is right`,
  });
}

/** Engines bottles were started on, remembered past their bottles (their kept homes stay there). */
function enginesFile(): string {
  return join(stateDir(), "engines.json");
}

export function rememberedEngines(): Engine[] {
  return readStateList(enginesFile(), EngineSchema);
}

/** Written down when a bottle starts on an engine other than the local default. */
export function rememberEngine(engine: Engine): void {
  writeStateList(enginesFile(), [...rememberedEngines().filter((other) => engineName(other) !== engineName(engine)), engine]);
}
