import { chownSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BASE_IMAGE } from "./docker.ts";

/** The agent image's user (assets/agent.Dockerfile). */
export const AGENT_UID = 1000;

/**
 * Runs the `bottle` CLI the way a user does: a separate process with its own
 * HOME, config and state dirs. BOTTLE_BIN selects the compiled binary (e2e);
 * otherwise the source entry point runs under Bun.
 */

export const ROOT = join(import.meta.dir, "..", "..");
export const SOURCE_ENTRY = join(ROOT, "cmd", "bottle.ts");

export interface Sandbox {
  home: string;
  config: string;
  state: string;
  cache: string;
  project: string;
  env: Record<string, string>;
}

export function makeSandbox(extraEnv: Record<string, string> = {}): Sandbox {
  const home = mkdtempSync(join(tmpdir(), "bottle-test-"));
  const config = join(home, ".config", "bottle");
  const state = join(home, ".local", "state");
  const cache = join(home, ".cache");
  const project = join(home, "project");
  for (const dir of [config, state, cache, project]) mkdirSync(dir, { recursive: true });
  // The agent runs as the workspace's owner, never as root: as root (CI), the project is the image's user's.
  if (process.getuid?.() === 0) chownSync(project, AGENT_UID, AGENT_UID);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    BOTTLE_CONFIG_DIR: config,
    XDG_STATE_HOME: state,
    XDG_CACHE_HOME: cache,
    BOTTLE_BASE_IMAGE: BASE_IMAGE,
    NO_COLOR: "1",
    ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    ...(process.env.SSL_CERT_FILE ? { SSL_CERT_FILE: process.env.SSL_CERT_FILE } : {}),
    ...extraEnv,
  };
  return { home, config, state, cache, project, env };
}

export function writeFile(path: string, content: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return path;
}

export function bottleArgv(args: string[]): string[] {
  return process.env.BOTTLE_BIN ? [process.env.BOTTLE_BIN, ...args] : [process.execPath, SOURCE_ENTRY, ...args];
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function runBottle(sandbox: Sandbox, args: string[], options: { cwd?: string; stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const proc = Bun.spawn(bottleArgv(args), {
    cwd: options.cwd ?? sandbox.project,
    env: { ...sandbox.env, ...options.env },
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, stdout, stderr };
}

export function spawnBottle(sandbox: Sandbox, args: string[], options: { cwd?: string } = {}) {
  return Bun.spawn(bottleArgv(args), {
    cwd: options.cwd ?? sandbox.project,
    env: sandbox.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}
