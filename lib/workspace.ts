import { existsSync, mkdirSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Docker } from "./docker.ts";
import { BottleError } from "./errors.ts";
import { log } from "./log.ts";
import type { Plan } from "./plan.ts";
import { stateDir } from "./paths.ts";

/** How the project gets into the bottle, and how work gets out again. */

export const CONTAINER_WORKSPACE = "/workspace";
/** Paths the host executes later; mounted read-only so the agent cannot plant them. */
export const PROTECTED_GIT_PATHS = [".git/config", ".git/hooks"];
const DEFAULT_UID = 1000;

export function workspacePlan(mode: Plan["workspace"]["mode"], path: string): Plan["workspace"] {
  if (mode === "none") {
    return { mode, containerPath: CONTAINER_WORKSPACE, user: { uid: DEFAULT_UID, gid: DEFAULT_UID }, readonlyPaths: [] };
  }
  let hostPath: string;
  try {
    hostPath = realpathSync(path);
  } catch {
    throw new BottleError(`workspace ${path} does not exist`, { fix: "pass an existing directory with --workspace, or use `workspace: none`" });
  }
  const stat = statSync(hostPath);
  if (!stat.isDirectory()) throw new BottleError(`workspace ${hostPath} is not a directory`, { fix: "pass a directory with --workspace" });
  // The agent runs as the owner of a mounted workspace so files it writes are the user's.
  const user = mode === "mount" && stat.uid !== 0 ? { uid: stat.uid, gid: stat.gid } : { uid: DEFAULT_UID, gid: DEFAULT_UID };
  const readonlyPaths =
    mode === "mount" && existsSync(join(hostPath, ".git")) && statSync(join(hostPath, ".git")).isDirectory()
      ? PROTECTED_GIT_PATHS
      : [];
  return { mode, hostPath, containerPath: CONTAINER_WORKSPACE, user, readonlyPaths };
}

/** A root-owned mounted workspace is not writable by the agent (uid 1000). */
export function workspaceWarning(plan: Plan["workspace"]): string | undefined {
  if (plan.mode !== "mount" || !plan.hostPath) return undefined;
  const stat = statSync(plan.hostPath);
  if (stat.uid === 0 && !(stat.mode & 0o002))
    return `${plan.hostPath} is owned by root; the agent (uid ${DEFAULT_UID}) cannot write to it — use \`workspace: copy\` or run from a directory you own`;
  return undefined;
}

/** Make sure the protected paths exist on the host, so the read-only mounts have a source. */
export function prepareMountedWorkspace(plan: Plan["workspace"]): void {
  if (plan.mode !== "mount" || !plan.hostPath) return;
  for (const path of plan.readonlyPaths) {
    const full = join(plan.hostPath, path);
    if (!existsSync(full)) mkdirSync(full, { recursive: true });
  }
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
export async function recordWorkspaceRefs(docker: Docker, plan: Plan): Promise<void> {
  await docker.execIn(plan.containers.bottle, ["sh", "-c", "cd /workspace && git for-each-ref --format='%(objectname) %(refname)' > /run/bottle/workspace-refs 2>/dev/null || true"], {
    check: false,
  });
}

/**
 * Before a `copy` bottle is removed: save commits (git bundle) and
 * uncommitted changes (patch) to the host. Returns the dir, or undefined when
 * there was nothing new.
 */
export async function saveCopiedWork(docker: Docker, plan: Plan): Promise<string | undefined> {
  const listed = await docker.execIn(plan.containers.bottle, ["sh", "-c", SAVE_SCRIPT], { check: false });
  const files = listed.stdout.split("\n").filter(Boolean);
  if (listed.exitCode !== 0 || files.length === 0) return undefined;
  const target = savedWorkDir(plan.name);
  mkdirSync(target, { recursive: true });
  await docker.cp(`${plan.containers.bottle}:/tmp/bottle-save/.`, target);
  log.info(`saved work from ${plan.name}: ${files.join(", ")} in ${target}`);
  return target;
}
