import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BottleHandle } from "../backends/types.ts";
import type { Exec } from "../exec.ts";
import { log } from "../log.ts";
import type { Plan } from "../plan.ts";
import { parseBundle } from "./bundle.ts";
import { recordBranch } from "./registry.ts";

/**
 * How a bottle's commits reach the host (a mounted, copied or branch
 * workspace of a repository): only as git objects. The
 * bottle's own git writes a bundle of what its HEAD has beyond the host's
 * refs; the host reads that bundle as data (reading it runs no config or
 * hook of the bottle's), puts its pack through `git index-pack --strict`
 * and a connectivity check, and points `bottle/<name>` at its HEAD. At
 * teardown, and on demand (`bottle fetch`).
 */

export interface BroughtBack {
  branch: string;
  commit: string;
  /** Commits on the branch that no other host ref has. */
  commits: number;
}

/** Host git in the user's repository (trusted: no bottle ever wrote to its .git). */
export async function hostGit(exec: Exec, repo: string, args: string[], options: { check?: boolean; stdin?: string | Uint8Array } = {}) {
  return exec.run(["git", "-C", repo, "-c", "core.fsmonitor=false", ...args], {
    check: options.check ?? true,
    env: { GIT_OPTIONAL_LOCKS: "0", GIT_TERMINAL_PROMPT: "0" },
    ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
  });
}

/** rev-list arguments one per line (a repository may have thousands of refs: too many for argv). */
function revLines(include: string, exclude: string[]): string {
  return [include, ...exclude.map((tip) => `^${tip}`)].join("\n") + "\n";
}

/**
 * fsck of every object the bottle sends, strict: a path named `.git`, `..`
 * or `.` (also in their NTFS and HFS+ spellings) fails the whole pack, so no
 * tree that could write into a .git on checkout reaches the host.
 */
const STRICT_FSCK = "--strict=hasDotgit=error,hasDotdot=error,hasDot=error";

/** `bottle-dev-2` → `bottle/dev-2`, as a valid ref name. */
export function branchBase(bottleName: string): string {
  const short = bottleName.replace(/^bottle-/, "").replace(/\.{2,}/g, ".").replace(/(\.lock|\.)+$/, "") || "work";
  return `bottle/${short}`;
}

/** The commits every host ref points at (tags peeled): what the bottle need not send back. */
async function hostTips(exec: Exec, repo: string): Promise<string[]> {
  const out = await hostGit(exec, repo, ["for-each-ref", "--format=%(if)%(*objectname)%(then)%(*objectname)%(else)%(objectname)%(end)"]);
  return [...new Set(out.stdout.split("\n").filter(Boolean))];
}

/**
 * `bottle/<name>` if free or an ancestor of `commit` (the same bottle name's
 * earlier work, continued); else the first free `bottle/<name>-N`, so
 * earlier work on a branch of that name is never overwritten.
 */
export async function chooseBranch(exec: Exec, repo: string, base: string, commit: string): Promise<string> {
  for (let n = 1; n < 100; n++) {
    const branch = n === 1 ? base : `${base}-${n}`;
    const existing = await hostGit(exec, repo, ["rev-parse", "-q", "--verify", `refs/heads/${branch}^{commit}`], { check: false });
    if (existing.exitCode !== 0) return branch;
    const ancestor = await hostGit(exec, repo, ["merge-base", "--is-ancestor", existing.stdout.trim(), commit], { check: false });
    if (ancestor.exitCode === 0) return branch;
  }
  throw new Error(`no free branch name after ${base}-99`);
}

/**
 * Bring the bottle's new commits onto its branch. Undefined when there is
 * nothing new (or no repository); throws when the bundle cannot be made or
 * fetched.
 */
export async function bringBackCommits(bottle: BottleHandle, exec: Exec, plan: Plan): Promise<BroughtBack | undefined> {
  const repo = plan.workspace.git?.repo;
  if (!repo) return undefined;
  const { uid, gid } = plan.workspace.user;
  const asAgent = { user: `${uid}:${gid}`, workdir: plan.workspace.containerPath, check: false } as const;
  const head = await bottle.exec(["git", "rev-parse", "-q", "--verify", "HEAD^{commit}"], asAgent);
  const commit = head.stdout.trim();
  if (head.exitCode !== 0 || !/^[0-9a-f]{40,64}$/.test(commit)) return undefined;
  const tips = await hostTips(exec, repo);
  if (tips.includes(commit)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "bottle-bundle-"));
  const file = join(dir, "work.bundle");
  try {
    const made = await bottle.exec(["git", "bundle", "create", "-", "--stdin"], {
      ...asAgent,
      stdin: revLines("HEAD", tips),
      stdoutFile: file,
    });
    if (made.exitCode !== 0) {
      if (/empty bundle/i.test(made.stderr)) return undefined;
      throw new Error(`the bottle could not bundle its commits: ${made.stderr.trim().split("\n").pop() ?? `exit ${made.exitCode}`}`);
    }
    const bundle = parseBundle(readFileSync(file));
    const head = bundle.refs.find((ref) => ref.name === "HEAD");
    if (!head || bundle.refs.length !== 1) throw new Error("the bottle's bundle does not hold exactly its HEAD");
    // The pack goes through fsck (index-pack --strict), then must connect to what the host has.
    await hostGit(exec, repo, ["index-pack", STRICT_FSCK, "--fix-thin", "--stdin"], { stdin: bundle.pack });
    await hostGit(exec, repo, ["rev-list", "--objects", "--quiet", "--stdin"], { stdin: revLines(head.id, tips) });
    const fetched = (await hostGit(exec, repo, ["rev-parse", "--verify", `${head.id}^{commit}`])).stdout.trim();
    const branch = await chooseBranch(exec, repo, plan.workspace.branch?.name ?? branchBase(plan.name), fetched);
    await hostGit(exec, repo, ["update-ref", "-m", `bottle: commits of ${plan.name}`, `refs/heads/${branch}`, fetched]);
    const base = plan.workspace.branch?.base ?? plan.workspace.git?.base;
    if (base && plan.workspace.mode !== "none")
      recordBranch({ repo, branch, bottle: plan.name, base, mode: plan.workspace.mode, createdAt: new Date().toISOString() });
    const count = await hostGit(exec, repo, ["rev-list", "--count", "--stdin"], { stdin: revLines(fetched, tips) });
    return { branch, commit: fetched, commits: Number(count.stdout.trim()) || 0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Marks the commit that holds what a bottle left uncommitted when it stopped. */
export const WIP_SUBJECT = "WIP (bottle): uncommitted work";

/**
 * A copied or branch workspace lives only in the bottle: what the agent left
 * uncommitted becomes one marked commit on its branch before the bottle goes
 * (a mounted workspace's files are on the host already). Committed with no
 * hooks and an identity of its own.
 */
export async function commitLeftovers(bottle: BottleHandle, plan: Plan): Promise<void> {
  if (plan.workspace.mode !== "copy" && plan.workspace.mode !== "branch") return;
  const { uid, gid } = plan.workspace.user;
  const script = `git add -A && if ! git diff --cached --quiet; then git -c user.name=bottle -c user.email=bottle@localhost commit -q --no-verify -m "$1" -m "$2"; fi`;
  await bottle.exec(["sh", "-c", script, "wip", `${WIP_SUBJECT} in ${plan.name}`, "Made by bottle when the bottle stopped, from the files the agent had not committed."], {
    user: `${uid}:${gid}`,
    workdir: plan.workspace.containerPath,
    check: false,
  });
}

/** At teardown: bring the commits back and say where they are; a failure is a warning (the bottle is going away either way). */
export async function bringBackOnTeardown(bottle: BottleHandle, exec: Exec, plan: Plan): Promise<BroughtBack | undefined> {
  try {
    await commitLeftovers(bottle, plan);
    const brought = await bringBackCommits(bottle, exec, plan);
    if (brought) log.info(`${plan.name}'s commits are on branch ${brought.branch} (${brought.commits} new): git log ${brought.branch}`);
    return brought;
  } catch (error) {
    log.warn(`could not bring ${plan.name}'s commits back: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}
