import { mkdirSync, realpathSync, statSync, type Stats } from "node:fs";
import { join, sep } from "node:path";
import type { BottleHandle } from "./backends/types.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import type { HostRepo } from "./git/host-repo.ts";
import { planBranch } from "./git/branch-workspace.ts";
import { repositoryTop } from "./git/review.ts";
import { planWorkspaceGit } from "./git/workspace-git.ts";
import { log } from "./log.ts";
import { displayPath } from "./manifest/errors.ts";
import type { ResolvedBottle } from "./manifest/types.ts";
import type { Plan } from "./plan.ts";
import { stateDir } from "./paths.ts";
import { describeExposures, workspaceExposures } from "./workspace-exposure.ts";

/**
 * How the project gets into the bottle, and how work gets out again.
 *
 * Planning a workspace checks, before anything exists:
 *
 * - **What the gates hold stays out**, for `mount` and `copy` alike (a copy
 *   brings the same files in). A workspace that is `/`, the user's home, or
 *   holds (or lies inside) a credential store or a key or CA file the bottle
 *   names is refused (lib/workspace-exposure.ts). `--workspace-unsafe`, a
 *   flag of the command line only (no bottle or agent file can set it: a
 *   repository ships agents), launches it anyway, with one warning naming
 *   what comes in.
 *
 * - **The agent can write a mounted workspace, as a user that is not root.**
 *   It runs as the workspace's owner, so files it writes are the user's. A
 *   workspace owned by root is refused, not run as root inside: uid 0 owns
 *   the image's files and most of what the kernel checks by uid
 *   (CVE-2019-5736, the runc escape that overwrote the host's runc binary,
 *   needed root in the container), every file the launch provisions in HOME
 *   would have to change hands (as uid 0 without capabilities Claude Code
 *   cannot even read the agent's settings), and Claude Code refuses
 *   --dangerously-skip-permissions as root unless told IS_SANDBOX=1 (both
 *   checked with the real image). Running as uid 1000 instead (as before)
 *   starts a bottle whose agent then fails with "Permission denied". The fix
 *   is the user's: chown the directory, or `workspace: copy` (the agent owns
 *   its copy). A launching user who is not root may mount only a directory
 *   they own: the agent runs as the owner, so another user's directory would
 *   give it what its launcher cannot touch (someone else's 0700 home). A
 *   directory its own owner cannot read, write and enter (mode 0500) is
 *   refused with `chmod u+rwx`.
 */

export const CONTAINER_WORKSPACE = "/workspace";
const DEFAULT_UID = 1000;

type Env = Record<string, string | undefined>;

export interface PlannedWorkspace {
  workspace: Plan["workspace"];
  /** The host repository the private git dir is made from at launch (mount; copy and branch of a repository). */
  repo?: HostRepo;
  /** What the bottle will not have of the repository (branch: uncommitted changes, submodules, LFS contents). */
  notes?: string[];
}

export interface WorkspaceOptions {
  mode: Plan["workspace"]["mode"];
  /** The directory asked for (--workspace, or the current one). */
  path: string;
  env: Env;
  /** The bottle's identity and CA files stay out too. */
  bottle?: Pick<ResolvedBottle, "git" | "ssh" | "caCerts">;
  /** --workspace-unsafe: launch a workspace that exposes what the gates hold, with a warning. */
  unsafe?: boolean;
  /** The launching user's uid; default this process's (undefined where there are none). */
  uid?: number;
  platform?: NodeJS.Platform;
  /** The machine's homes; default /etc/passwd's (tests give their own). */
  homes?: string[];
  /** branch: the branch's name when one was asked for (default bottle/<name>). */
  branch?: string;
}

/** Refuses a workspace that would expose what the gates hold, unless --workspace-unsafe (then warns). */
function checkExposure(hostPath: string, options: WorkspaceOptions): void {
  const exposures = workspaceExposures(hostPath, {
    env: options.env,
    ...(options.bottle ? { bottle: options.bottle } : {}),
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.homes ? { homes: options.homes } : {}),
  });
  if (exposures.length === 0) return;
  const show = (path: string) => displayPath(path, options.env);
  const what = describeExposures(exposures, show);
  const verb = options.mode === "copy" ? "copy" : "mount";
  if (options.unsafe) {
    log.warn(`--workspace-unsafe: the bottle gets what the gates keep out of it — workspace ${show(hostPath)}: ${what}`);
    return;
  }
  throw new BottleError(`workspace ${show(hostPath)} would put what the gates keep out into the bottle: ${what}`, {
    fix:
      `run bottle on a narrower directory (your project's own) that holds none of it, with --workspace DIR or from that directory; ` +
      `\`workspace: copy\` would copy the same files in, so it needs one too; ` +
      `or pass --workspace-unsafe to ${verb} it anyway`,
  });
}

/** The uid:gid the agent runs as on a mounted workspace: its owner, or a refusal saying why and how to fix it. */
function mountUser(hostPath: string, stat: Stats, options: WorkspaceOptions): Plan["workspace"]["user"] {
  const show = displayPath(hostPath, options.env);
  const copy = "or set `workspace: copy` in the bottle (the agent then works on a copy it owns)";
  if (stat.uid === 0)
    throw new BottleError(`workspace ${show} is owned by root: the agent runs as the workspace's owner, and never as root`, {
      fix: `give it to a user (chown -R USER ${show}), run bottle on a directory a user owns, ${copy}`,
    });
  const launcher = options.uid ?? process.getuid?.();
  if (launcher !== undefined && launcher !== 0 && launcher !== stat.uid)
    throw new BottleError(`workspace ${show} belongs to uid ${stat.uid}, not to you (uid ${launcher}): the agent would write there as uid ${stat.uid}`, {
      fix: `run bottle on a directory you own, ${copy}`,
    });
  const mode = stat.mode & 0o777;
  if ((mode & 0o700) !== 0o700)
    throw new BottleError(`workspace ${show} is mode ${mode.toString(8).padStart(4, "0")}: its owner, as whom the agent runs, cannot read, write and enter it`, {
      fix: `chmod u+rwx ${show}, ${copy}`,
    });
  return { uid: stat.uid, gid: stat.gid };
}

/**
 * Side-effect free; it reads (never writes) the host repository. A copy or
 * branch of a repository gets a private git dir like a mount's (its commits
 * come back the same way); a branch is the repository's top level checked
 * out at HEAD, on `options.branch` when one was asked for.
 */
export async function workspacePlan(exec: Exec, options: WorkspaceOptions): Promise<PlannedWorkspace> {
  const { mode, path, branch } = options;
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
  checkExposure(hostPath, options);
  // The agent runs as the owner of a mounted workspace so files it writes are the user's; a copy is the agent's own.
  const user = mode === "mount" ? mountUser(hostPath, stat, options) : { uid: DEFAULT_UID, gid: DEFAULT_UID };
  const workspace: Plan["workspace"] = { mode, hostPath, containerPath: CONTAINER_WORKSPACE, user };
  if (mode === "mount") {
    const git = await planWorkspaceGit(exec, hostPath);
    return { workspace: { ...workspace, git: git.plan }, ...(git.repo ? { repo: git.repo } : {}) };
  }
  // A copy or a branch touches nothing in the host tree: no mount points, no shadows.
  const top = mode === "branch" ? ((await repositoryTop(exec, hostPath)) ?? hostPath) : hostPath;
  // A branch checks out the whole repository: its top level is what comes in.
  if (top !== hostPath) checkExposure(top, options);
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
