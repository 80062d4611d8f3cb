import { existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import type { Exec } from "../exec.ts";
import { log } from "../log.ts";
import { bottleStateDir } from "../paths.ts";
import type { TarEntry } from "../tar.ts";
import { headCommit, type HostRepo, readHostGitFiles, readHostRepo } from "./host-repo.ts";
import { HOST_OBJECTS_MOUNT, privateGitDirEntries } from "./private-gitdir.ts";

/**
 * A mounted workspace's `.git`, which the host later runs git in, is never
 * writable from the bottle and cannot be replaced: `/workspace/.git` is
 * itself a mount point (a mount point cannot be renamed or removed) of the
 * bottle's private git dir, or — when the host's `.git` is a gitfile — of a
 * read-only gitfile pointing at it. Every submodule's `.git` in the working
 * tree (which the host's `git status` follows) is shadowed read-only the same
 * way. The agent still commits, to its private git dir; the work comes back
 * only as objects (bottle-branch.ts).
 */

export const WorkspaceGitSchema = v.object({
  /** The host repository whose history the bottle sees and whose branch gets its commits (the workspace is its top level). */
  repo: v.optional(v.string()),
  /** The repository the workspace sits inside without being its top level (the bottle then sees no history). */
  enclosing: v.optional(v.string()),
  /** `dir`: /workspace/.git is the private git dir; `file`: a read-only gitfile pointing at it (the host's .git is a file). */
  shape: v.picklist(["dir", "file"]),
  /** The host's object store, mounted read-only. */
  objects: v.optional(v.string()),
  /** Submodules in the workspace (relative paths): `gitfile` when their `.git` is a gitfile (shown read-only), else an empty directory hides it. */
  submodules: v.array(v.object({ path: v.string(), gitfile: v.boolean() })),
  /** Mount points bottle creates in the workspace for these (removed at teardown while empty). */
  mountPoints: v.array(v.string()),
  /** The commit the host's HEAD was at when the bottle started: where its work is measured from. */
  base: v.optional(v.string()),
});

export type WorkspaceGit = v.InferOutput<typeof WorkspaceGitSchema>;

/** Where the private git dir lives in the bottle when /workspace/.git must be a gitfile. */
export const PRIVATE_GITDIR = "/run/bottle-git";

/** What planning found: the plan's part and what the launch copies from the host (refs, config). */
export interface WorkspaceGitFound {
  plan: WorkspaceGit;
  repo?: HostRepo;
}

/** Side-effect free: where /workspace/.git and the submodules' `.git` come from. */
export async function planWorkspaceGit(exec: Exec, workspace: string): Promise<WorkspaceGitFound> {
  const repo = await readHostRepo(exec, workspace);
  const dotGit = join(workspace, ".git");
  const hostShape = existsSync(dotGit) ? (lstatSync(dotGit).isFile() ? "file" : "dir") : "absent";
  if (hostShape !== "absent" && !repo) log.warn(`git on this machine cannot read ${dotGit}: the bottle gets none of its history, and the agent's commits will not come back`);
  const atTop = repo?.top === workspace;
  const submodules = (repo?.submodules ?? []).map((path) => {
    const own = join(workspace, path, ".git");
    return { path, gitfile: existsSync(own) && lstatSync(own).isFile() };
  });
  const mountPoints = [
    ...(hostShape === "absent" ? [dotGit] : []),
    ...submodules.flatMap((submodule) => missingDirs(workspace, join(submodule.path, ".git"))),
  ];
  const base = atTop ? await headCommit(exec, workspace) : undefined;
  const plan: WorkspaceGit = {
    ...(atTop ? { repo: workspace, objects: join(repo.commonDir, "objects") } : {}),
    ...(repo && !atTop ? { enclosing: repo.top } : {}),
    shape: hostShape === "file" ? "file" : "dir",
    submodules,
    mountPoints,
    ...(base ? { base } : {}),
  };
  return { plan, ...(repo && atTop ? { repo } : {}) };
}

/** The directories of `relative` (under `base`) that do not exist yet, outermost first. */
function missingDirs(base: string, relative: string): string[] {
  const missing: string[] = [];
  let path = base;
  for (const part of relative.split("/")) {
    path = join(path, part);
    if (!existsSync(path)) missing.push(path);
  }
  return missing;
}

/** The bottle's host files for these mounts: a gitfile and an empty directory in its state dir. */
export function workspaceGitFiles(name: string): { gitfile: string; empty: string } {
  const dir = join(bottleStateDir(name), "workspace-git");
  return { gitfile: join(dir, "gitfile"), empty: join(dir, "empty") };
}

/** At launch: the gitfile and empty directory the mounts use, and the mount points docker would otherwise make as root. */
export function prepareWorkspaceGit(name: string, git: WorkspaceGit): void {
  const files = workspaceGitFiles(name);
  mkdirSync(files.empty, { recursive: true, mode: 0o755 });
  writeFileSync(files.gitfile, `gitdir: ${PRIVATE_GITDIR}\n`, { mode: 0o644 });
  for (const path of git.mountPoints) if (!existsSync(path)) mkdirSync(path);
}

/** After teardown: the mount points bottle made, innermost first, while nothing was put in them. */
export function removeWorkspaceGitMountPoints(git: WorkspaceGit): void {
  for (const path of [...git.mountPoints].reverse()) {
    try {
      if (lstatSync(path).isDirectory() && readdirSync(path).length === 0) rmdirSync(path);
    } catch {
      // gone already, or not ours to remove
    }
  }
}

export interface WorkspaceMount {
  source?: string;
  target: string;
  readonly?: boolean;
  /** A volume of the bottle's own (docker), removed with it. */
  volume?: boolean;
}

/**
 * The directories from the workspace down to each submodule (`a`, `a/b`,
 * `a/b/sub`): a directory holding a mount point can still be renamed, and a
 * renamed `a` would let the agent put a `.git` of its own where the host's
 * git looks for the submodule. Each is bound onto itself (contents live and
 * writable as before) so that it is a mount point too.
 */
export function submoduleAncestors(submodules: WorkspaceGit["submodules"]): string[] {
  const dirs = new Set<string>();
  for (const { path } of submodules) {
    const parts = path.split("/");
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
}

/** The mounts that shadow the workspace's git, beside the workspace's own. */
export function workspaceGitMounts(name: string, git: WorkspaceGit, workspace: string, containerPath: string): WorkspaceMount[] {
  const files = workspaceGitFiles(name);
  const mounts: WorkspaceMount[] =
    git.shape === "file"
      ? [{ source: files.gitfile, target: `${containerPath}/.git`, readonly: true }, { target: PRIVATE_GITDIR, volume: true }]
      : [{ target: `${containerPath}/.git`, volume: true }];
  if (git.objects) mounts.push({ source: git.objects, target: HOST_OBJECTS_MOUNT, readonly: true });
  for (const dir of submoduleAncestors(git.submodules)) mounts.push({ source: join(workspace, dir), target: `${containerPath}/${dir}` });
  for (const submodule of git.submodules)
    mounts.push({
      source: submodule.gitfile ? join(workspace, submodule.path, ".git") : files.empty,
      target: `${containerPath}/${submodule.path}/.git`,
      readonly: true,
    });
  return mounts;
}

/** The private git dir's files, owned by the agent (part of the provisioning archive). */
export function workspaceGitEntries(git: WorkspaceGit, repo: HostRepo | undefined, containerPath: string, uid: number, gid: number, borrowObjects = true): TarEntry[] {
  const root = git.shape === "file" ? PRIVATE_GITDIR : `${containerPath}/.git`;
  return privateGitDirEntries(root, repo, repo ? readHostGitFiles(repo) : { sharedIndexes: [] }, uid, gid, borrowObjects);
}
