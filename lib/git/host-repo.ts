import { existsSync, lstatSync, readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import type { Exec } from "../exec.ts";
import { log } from "../log.ts";
import { isWithin } from "../sensitive-paths.ts";

/**
 * What bottle reads of the host's repository at launch: where its git
 * directories are, its refs, the config keys a bottle may see, and every
 * submodule whose `.git` sits in the working tree. All through the host's own
 * `git`, read-only (no index refresh, no fsmonitor), before any bottle could
 * have touched the working tree of this launch.
 */

export interface HostRepo {
  /** The repository's top level (the workspace itself, or a directory above it). */
  top: string;
  /** The workspace's own git dir and common dir (a linked worktree's differ). */
  gitDir: string;
  commonDir: string;
  objectFormat: string;
  /** `ref: refs/heads/x` or a commit id, as in a HEAD file; undefined when the workspace is not the top. */
  head?: string;
  /** packed-refs lines (`<id> <ref>`, `^<peeled>`) of every ref. */
  refs: string[];
  /** Config a bottle may see: key → values (remote URLs without credentials, line endings, …). */
  config: Array<[string, string]>;
  /** Submodule paths relative to the workspace, nested ones included. */
  submodules: string[];
}

/** Config keys safe to hand to a bottle: none can run a program or carry a credential once URLs lose their userinfo. */
const SAFE_CONFIG =
  "^(remote\\..+\\.(url|pushurl|fetch)|branch\\..+\\.(remote|merge)|core\\.(autocrlf|eol|ignorecase|filemode|symlinks|precomposeunicode|sparsecheckout|sparsecheckoutcone)|extensions\\.objectformat)$";

/** Submodules of submodules are followed this deep. */
const MAX_SUBMODULE_DEPTH = 8;

/** Host git, read-only: no optional locks (no index refresh), no fsmonitor, no pager. */
function gitArgv(dir: string, args: string[]): string[] {
  return ["git", "-C", dir, "-c", "core.fsmonitor=false", "--no-pager", ...args];
}

const GIT_ENV = { GIT_OPTIONAL_LOCKS: "0", GIT_TERMINAL_PROMPT: "0" };

async function git(exec: Exec, dir: string, args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const out = await exec.run(gitArgv(dir, args), { check: false, env: GIT_ENV });
    return { ok: out.exitCode === 0, stdout: out.stdout, stderr: out.stderr };
  } catch (error) {
    // No git on this machine.
    return { ok: false, stdout: "", stderr: error instanceof Error ? error.message : String(error) };
  }
}

/** Drop what a URL may carry of a credential: all userinfo for http(s), the password part elsewhere. */
export function withoutCredentials(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/@]*@)(.*)$/i.exec(url);
  if (!match) return url;
  const [, scheme, userinfo, rest] = match;
  if (/^https?:\/\//i.test(scheme!)) return `${scheme}${rest}`;
  const user = userinfo!.slice(0, -1).split(":")[0];
  return `${scheme}${user ? `${user}@` : ""}${rest}`;
}

/** `git config -z --get-regexp` output: `key\nvalue\0`… */
export function parseConfigList(text: string): Array<[string, string]> {
  return text
    .split("\0")
    .filter(Boolean)
    .map((record) => {
      const at = record.indexOf("\n");
      return at === -1 ? [record, ""] : [record.slice(0, at), record.slice(at + 1)];
    });
}

/** `git ls-files -s -z` output → the paths of gitlinks (mode 160000). */
export function gitlinkPaths(text: string): string[] {
  return text
    .split("\0")
    .filter((record) => record.startsWith("160000 "))
    .map((record) => record.slice(record.indexOf("\t") + 1));
}

/** Every gitlink under `dir`'s repository (nested ones in populated submodules too), as absolute paths. */
async function submodulePaths(exec: Exec, dir: string, depth = 0): Promise<string[]> {
  if (depth > MAX_SUBMODULE_DEPTH) return [];
  const listed = await git(exec, dir, ["ls-files", "--stage", "-z"]);
  if (!listed.ok) return [];
  const found: string[] = [];
  for (const path of gitlinkPaths(listed.stdout)) {
    const absolute = join(dir, path);
    found.push(absolute);
    if (existsSync(join(absolute, ".git"))) found.push(...(await submodulePaths(exec, absolute, depth + 1)));
  }
  return found;
}

/**
 * The repository the workspace is in, or undefined when it is in none (or
 * git refuses it, e.g. another user's repository: then the host's git would
 * refuse it too).
 */
export async function readHostRepo(exec: Exec, workspace: string): Promise<HostRepo | undefined> {
  const where = await git(exec, workspace, ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir", "--show-object-format"]);
  if (!where.ok) {
    if (/dubious ownership/i.test(where.stderr)) log.warn(`git refuses ${workspace}: another user owns it (fix: run bottle as its owner, or \`git config --global --add safe.directory ${workspace}\` if you trust that user)`);
    return undefined;
  }
  const [top, gitDir, commonDir, objectFormat] = where.stdout.split("\n");
  if (!top || !gitDir || !commonDir) return undefined;
  const submodules = (await submodulePaths(exec, top)).filter((path) => isWithin(path, workspace) && path !== workspace).map((path) => relative(workspace, path));
  const repo: HostRepo = { top, gitDir, commonDir, objectFormat: objectFormat || "sha1", refs: [], config: [], submodules };
  // Only a workspace that is the top level gets the repository's history.
  if (top !== workspace) return repo;
  const [head, refs, config] = await Promise.all([
    git(exec, workspace, ["symbolic-ref", "-q", "HEAD"]).then(async (symbolic) =>
      symbolic.ok ? `ref: ${symbolic.stdout.trim()}` : (await git(exec, workspace, ["rev-parse", "-q", "--verify", "HEAD"])).stdout.trim() || undefined,
    ),
    git(exec, workspace, ["for-each-ref", "--format=%(objectname) %(refname)%(if)%(*objectname)%(then)%0a^%(*objectname)%(end)"]),
    git(exec, workspace, ["config", "--file", join(commonDir, "config"), "-z", "--get-regexp", SAFE_CONFIG]),
  ]);
  return {
    ...repo,
    ...(head ? { head } : {}),
    refs: refs.stdout.split("\n").filter(Boolean),
    config: parseConfigList(config.stdout).map(([key, value]) => [key, /\.(url|pushurl)$/.test(key) ? withoutCredentials(value) : value]),
  };
}

/** The commit HEAD is at, or undefined (no commit yet). */
export async function headCommit(exec: Exec, dir: string): Promise<string | undefined> {
  const out = await git(exec, dir, ["rev-parse", "-q", "--verify", "HEAD^{commit}"]);
  return out.ok ? out.stdout.trim() || undefined : undefined;
}

/** Files of the host's git dirs that a private git dir copies as they are (data only, never config or hooks). */
export interface HostGitFiles {
  index?: Uint8Array;
  /** sharedindex.* of a split index. */
  sharedIndexes: Array<[string, Uint8Array]>;
  exclude?: Uint8Array;
  sparseCheckout?: Uint8Array;
  shallow?: Uint8Array;
}

function readIfFile(path: string): Uint8Array | undefined {
  try {
    return lstatSync(path).isFile() ? readFileSync(path) : undefined;
  } catch {
    return undefined;
  }
}

export function readHostGitFiles(repo: HostRepo): HostGitFiles {
  let shared: string[] = [];
  try {
    shared = readdirSync(repo.gitDir).filter((name) => /^sharedindex\.[0-9a-f]+$/.test(name));
  } catch {
    // unreadable: no split index then
  }
  const files: HostGitFiles = { sharedIndexes: [] };
  const index = readIfFile(join(repo.gitDir, "index"));
  if (index) files.index = index;
  for (const name of shared) {
    const content = readIfFile(join(repo.gitDir, name));
    if (content) files.sharedIndexes.push([name, content]);
  }
  const exclude = readIfFile(join(repo.commonDir, "info", "exclude"));
  if (exclude) files.exclude = exclude;
  const sparse = readIfFile(join(repo.gitDir, "info", "sparse-checkout"));
  if (sparse) files.sparseCheckout = sparse;
  const shallow = readIfFile(join(repo.commonDir, "shallow"));
  if (shallow) files.shallow = shallow;
  return files;
}
