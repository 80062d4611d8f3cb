import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { BottleHandle } from "../backends/types.ts";
import { BottleError } from "../errors.ts";
import type { Exec } from "../exec.ts";
import type { Plan } from "../plan.ts";
import { branchBase, chooseBranch, hostGit } from "./bottle-branch.ts";
import { findBranch, forgetBranch, recordBranch } from "./registry.ts";
import type { WorkspaceGit } from "./workspace-git.ts";

/**
 * `workspace: branch`: the bottle works in its own checkout of the host
 * repository's HEAD, on a branch of its own. The checkout is made inside the
 * bottle from its private git dir (the host's refs, index and safe config,
 * borrowing the host's objects read-only; private-gitdir.ts), so the host's
 * working tree, index and current branch are never touched, and any number
 * of bottles can work on one repository at once. Not `git worktree add` on
 * the host: a worktree is registered in the host's .git and shares its config
 * and hooks, and its files would sit on the host, where the host later runs
 * them; a local clone on the host likewise. The bottle's commits come back as
 * objects, checked, like a mounted workspace's (bottle-branch.ts).
 */

export type PlannedBranch = NonNullable<Plan["workspace"]["branch"]>;

/** Planning (side-effect free): where the branch starts, and what the bottle will not have. */
export async function planBranch(exec: Exec, path: string, git: WorkspaceGit | undefined, requested: string | undefined): Promise<{ branch: PlannedBranch; notes: string[] }> {
  const repo = git?.repo;
  if (!repo)
    throw new BottleError(`workspace: branch needs a git repository, and ${git?.enclosing ? `${path} is inside ${git.enclosing}, not its top level` : `${path} is not one`}`, {
      fix: git?.enclosing ? `run bottle from ${git.enclosing}` : "use `workspace: copy` (or `--workspace` a repository)",
    });
  if (!git.base) throw new BottleError(`the repository ${repo} has no commit yet: a branch has nowhere to start`, { fix: "make a first commit, or use `workspace: copy`" });
  let base = git.base;
  if (requested !== undefined) {
    const valid = await hostGit(exec, repo, ["check-ref-format", "--branch", requested], { check: false });
    if (valid.exitCode !== 0) throw new BottleError(`"${requested}" is not a valid branch name`, { fix: "pass a name like feature/parser to --branch" });
    const existing = await hostGit(exec, repo, ["rev-parse", "-q", "--verify", `refs/heads/${requested}^{commit}`], { check: false });
    if (existing.exitCode === 0) {
      // An earlier bottle's branch is continued; anyone else's is not ours to write.
      if (!findBranch(repo, requested))
        throw new BottleError(`the branch ${requested} exists and is not a bottle's: bottle never writes to a branch it did not make`, {
          fix: "pick another name, or leave the name out (the bottle's branch is then bottle/<its name>)",
        });
      base = existing.stdout.trim();
    }
  }
  const notes: string[] = [];
  const status = await hostGit(exec, repo, ["status", "--porcelain", "--untracked-files=no"], { check: false });
  if (status.stdout.trim())
    notes.push(`the repository has uncommitted changes: the bottle starts from ${base.slice(0, 12)} without them (commit them first, or use workspace: copy)`);
  if (git.submodules.length) notes.push(`submodules are not checked out in the bottle: ${git.submodules.map((submodule) => submodule.path).join(", ")}`);
  if (usesLfs(repo)) notes.push("files tracked by Git LFS are their pointer files in the bottle (their content needs the network)");
  return { branch: { base, explicit: requested !== undefined, ...(requested !== undefined ? { name: requested } : {}) }, notes };
}

function usesLfs(repo: string): boolean {
  try {
    return /filter=lfs/.test(readFileSync(join(repo, ".gitattributes"), "utf8"));
  } catch {
    return false;
  }
}

/**
 * At launch, once the bottle's name is settled: its host branch, made at its
 * base (bottle/<name>, or the next free bottle/<name>-N; a name given with
 * --branch as it is), and written down for `bottle branches`.
 */
export async function claimBranch(exec: Exec, plan: Plan): Promise<Plan> {
  const repo = plan.workspace.git?.repo;
  const planned = plan.workspace.branch;
  if (plan.workspace.mode !== "branch" || !repo || !planned) return plan;
  const name = planned.name ?? (await chooseBranch(exec, repo, branchBase(plan.name), planned.base));
  // Made only if absent (old value: none): an existing bottle branch is continued as it is.
  const made = await hostGit(exec, repo, ["update-ref", "-m", `bottle: branch of ${plan.name}`, `refs/heads/${name}`, planned.base, ""], { check: false });
  recordBranch({ repo, branch: name, bottle: plan.name, base: planned.base, mode: "branch", createdAt: new Date().toISOString() });
  return { ...plan, workspace: { ...plan.workspace, branch: { ...planned, name, created: made.exitCode === 0 } } };
}

/**
 * A branch this launch made and nothing was added to (a launch that failed,
 * or a bottle that did no work) goes again; one with commits never does.
 */
export async function releaseBranch(exec: Exec, plan: Plan): Promise<boolean> {
  const repo = plan.workspace.git?.repo;
  const branch = plan.workspace.branch;
  if (!repo || !branch?.name || !branch.created) return false;
  // Deleted only while it still points at its base (update-ref's old value).
  const removed = await hostGit(exec, repo, ["update-ref", "-d", `refs/heads/${branch.name}`, branch.base], { check: false });
  if (removed.exitCode === 0) forgetBranch(repo, branch.name);
  return removed.exitCode === 0;
}

/** In the bottle, after provisioning put the private git dir in place: the branch checked out into /workspace. */
export async function checkoutBranch(bottle: BottleHandle, plan: Plan): Promise<void> {
  const branch = plan.workspace.branch;
  if (plan.workspace.mode !== "branch" || !branch?.name) return;
  const { uid, gid } = plan.workspace.user;
  await bottle.exec(["git", "-C", plan.workspace.containerPath, "checkout", "-q", "-f", "-B", branch.name, branch.base], { user: `${uid}:${gid}` });
}
