import { mkdirSync, realpathSync, statSync } from "node:fs";
import { join, sep } from "node:path";
import type { BottleHandle } from "./backends/types.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import type { HostRepo } from "./git/host-repo.ts";
import { planBranch } from "./git/branch-workspace.ts";
import { planWorkspaceGit } from "./git/workspace-git.ts";
import { log } from "./log.ts";
import type { Plan } from "./plan.ts";
import { stateDir } from "./paths.ts";

/** How the project gets into the bottle, and how work gets out again. */

export const CONTAINER_WORKSPACE = "/workspace";
const DEFAULT_UID = 1000;

export interface PlannedWorkspace {
  workspace: Plan["workspace"];
  /** The host repository the private git dir is made from at launch (mount; copy and branch of a repository). */
  repo?: HostRepo;
  /** What the bottle will not have of the repository (branch: uncommitted changes, submodules, LFS contents). */
  notes?: string[];
}

/**
 * Side-effect free; it reads (never writes) the host repository. A copy or
 * branch of a repository gets a private git dir like a mount's (its commits
 * come back the same way); a branch is the repository's top level checked
 * out at HEAD, on `branch` when one was asked for.
 */
export async function workspacePlan(exec: Exec, mode: Plan["workspace"]["mode"], path: string, branch?: string): Promise<PlannedWorkspace> {
  if (mode === "none") {
    return { workspace: { mode, containerPath: CONTAINER_WORKSPACE, user: { uid: DEFAULT_UID, gid: DEFAULT_UID } } };
  }
  let hostPath: string;
  try {
    hostPath = realpathSync(path);
  } catch {
    throw new BottleError(`workspace ${path} does not exist`, { fix: "pass an existing directory with --workspace, or use `workspace: none`" });
  }
  const stat = statSync(hostPath);
  if (!stat.isDirectory()) throw new BottleError(`workspace ${hostPath} is not a directory`, { fix: "pass a directory with --workspace" });
  // A git dir's insides are what the host later runs: never a workspace.
  if (hostPath.split(sep).includes(".git"))
    throw new BottleError(`workspace ${hostPath} is inside a .git directory`, { fix: "run bottle from the project's working tree, not from inside its .git" });
  // The agent runs as the owner of a mounted workspace so files it writes are the user's.
  const user = mode === "mount" && stat.uid !== 0 ? { uid: stat.uid, gid: stat.gid } : { uid: DEFAULT_UID, gid: DEFAULT_UID };
  const workspace: Plan["workspace"] = { mode, hostPath, containerPath: CONTAINER_WORKSPACE, user };
  if (mode === "mount") {
    const git = await planWorkspaceGit(exec, hostPath);
    return { workspace: { ...workspace, git: git.plan }, ...(git.repo ? { repo: git.repo } : {}) };
  }
  // A copy or a branch touches nothing in the host tree: no mount points, no shadows.
  const top = mode === "branch" ? ((await repositoryTop(exec, hostPath)) ?? hostPath) : hostPath;
  const found = await planWorkspaceGit(exec, top);
  // Its private git dir is /workspace/.git itself, whatever shape the host's .git has.
  const git = found.plan.repo ? { ...found.plan, shape: "dir" as const, mountPoints: [] } : undefined;
  if (mode === "copy") return { workspace: { ...workspace, ...(git ? { git } : {}) }, ...(found.repo ? { repo: found.repo } : {}) };
  const planned = await planBranch(exec, top, found.plan, branch);
  return {
    workspace: { ...workspace, hostPath: top, ...(git ? { git } : {}), branch: planned.branch },
    ...(found.repo ? { repo: found.repo } : {}),
    notes: planned.notes,
  };
}

async function repositoryTop(exec: Exec, path: string): Promise<string | undefined> {
  const out = await exec.run(["git", "-C", path, "rev-parse", "--show-toplevel"], { check: false });
  return out.exitCode === 0 ? out.stdout.trim() || undefined : undefined;
}

/** Where work from a `copy` workspace is saved on teardown. */
export function savedWorkDir(name: string): string {
  return join(stateDir(), "saved", `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
}

const SAVE_SCRIPT = `set -e
cd /workspace
out=/tmp/bottle-save
rm -rf "$out"; mkdir -p "$out"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git add -A --intent-to-add >/dev/null 2>&1 || true
  git diff --binary HEAD > "$out/uncommitted.patch" 2>/dev/null || git diff --binary > "$out/uncommitted.patch"
  [ -s "$out/uncommitted.patch" ] || rm -f "$out/uncommitted.patch"
  base="$(cat /run/bottle/workspace-refs 2>/dev/null || true)"
  now="$(git for-each-ref --format='%(objectname) %(refname)')"
  if [ "$base" != "$now" ] && [ -n "$now" ]; then git bundle create "$out/work.bundle" --all >/dev/null 2>&1; fi
else
  tar -C /workspace -cf "$out/workspace.tar" .
fi
ls "$out"
`;

/** Record the refs the copy started from, so teardown saves only when something changed. */
export async function recordWorkspaceRefs(bottle: BottleHandle): Promise<void> {
  await bottle.exec(["sh", "-c", "cd /workspace && git for-each-ref --format='%(objectname) %(refname)' > /run/bottle/workspace-refs 2>/dev/null || true"], {
    check: false,
  });
}

/**
 * Before a `copy` bottle is removed: save commits (git bundle) and
 * uncommitted changes (patch) to the host. Returns the dir, or undefined when
 * there was nothing new.
 */
export async function saveCopiedWork(bottle: BottleHandle, plan: Plan): Promise<string | undefined> {
  const listed = await bottle.exec(["sh", "-c", SAVE_SCRIPT], { check: false });
  const files = listed.stdout.split("\n").filter(Boolean);
  if (listed.exitCode !== 0 || files.length === 0) return undefined;
  const target = savedWorkDir(plan.name);
  mkdirSync(target, { recursive: true });
  await bottle.copyOut("/tmp/bottle-save/.", target);
  log.info(`saved work from ${plan.name}: ${files.join(", ")} in ${target}`);
  return target;
}
