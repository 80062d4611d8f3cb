import { lchownSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { AGENT_UID, type Sandbox } from "./cli.ts";

/**
 * A real git repository as the sandbox's project, for the tests of how a
 * bottle's commits come back (and cannot come back any other way). The host
 * side runs the real `git` with the sandbox's HOME, whose .gitconfig names the
 * test user and trusts the project: the project belongs to the agent's uid
 * (1000) so that a bottle can write to it while the tests run as root.
 */

export interface GitResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** `git ARGS` in `dir` as the sandbox's host user would run it (its HOME, its config). */
export function hostGit(sandbox: Sandbox, dir: string, args: string[]): GitResult {
  const out = Bun.spawnSync(["git", ...args], { cwd: dir, env: { ...sandbox.env, GIT_TERMINAL_PROMPT: "0" }, stdout: "pipe", stderr: "pipe" });
  return { exitCode: out.exitCode ?? -1, stdout: out.stdout.toString(), stderr: out.stderr.toString() };
}

/** Like hostGit, but throws on failure and returns trimmed stdout. */
export function git(sandbox: Sandbox, dir: string, ...args: string[]): string {
  const out = hostGit(sandbox, dir, args);
  if (out.exitCode !== 0) throw new Error(`git ${args.join(" ")} in ${dir} failed (${out.exitCode}): ${out.stderr}`);
  return out.stdout.trim();
}

/** The sandbox user's ~/.gitconfig: an identity, trust for the (agent-owned) test repositories, local submodules allowed. */
export function writeHostGitConfig(sandbox: Sandbox): void {
  writeFileSync(
    join(sandbox.home, ".gitconfig"),
    "[user]\n\tname = Host User\n\temail = host@example.test\n[safe]\n\tdirectory = *\n[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n",
  );
}

/** Give `dir` (recursively) to the agent's uid, so a mount-mode bottle can write to it. */
export function chownToAgent(dir: string): void {
  if (process.getuid?.() !== 0) return;
  const walk = (path: string) => {
    lchownSync(path, AGENT_UID, AGENT_UID);
    if (lstatSync(path).isDirectory())
      for (const entry of readdirSync(path)) walk(join(path, entry));
  };
  walk(dir);
}

/** `dir` as a repository with one commit (README.md), on branch main. */
export function initRepo(sandbox: Sandbox, dir: string, files: Record<string, string> = { "README.md": "hello\n" }): string {
  git(sandbox, dir, "init", "-q", "-b", "main");
  for (const path of Object.keys(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), files[path]!);
  }
  git(sandbox, dir, "add", "-A");
  git(sandbox, dir, "commit", "-q", "-m", "host: first commit");
  return git(sandbox, dir, "rev-parse", "HEAD");
}
