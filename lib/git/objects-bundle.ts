import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BottleHandle } from "../backends/types.ts";
import type { Exec } from "../exec.ts";
import type { Plan } from "../plan.ts";

/**
 * A bottle on a remote engine cannot borrow the host repository's objects
 * through a read-only mount (private-gitdir.ts): they travel into it as one
 * bundle instead, unbundled into its private git dir before anything is
 * checked out. Its commits come back the same way as everywhere
 * (bottle-branch.ts).
 */

/** Where the host's objects wait in the bottle (a remote engine), until unbundled into its private git dir. */
export const OBJECTS_BUNDLE = "/run/bottle/objects.bundle";

/**
 * The host repository's objects as one bundle of every ref, for a bottle on
 * a remote engine, where they cannot be mounted. Undefined for a repository
 * without a commit.
 */
export async function objectsBundle(exec: Exec, repo: string): Promise<Uint8Array | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "bottle-objects-"));
  try {
    const file = join(dir, "objects.bundle");
    const made = await exec.run(["git", "-C", repo, "-c", "core.fsmonitor=false", "bundle", "create", file, "--all"], { check: false, env: { GIT_OPTIONAL_LOCKS: "0" } });
    return made.exitCode === 0 ? readFileSync(file) : undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** In the bottle: the bundled objects into its private git dir, before anything is checked out. */
export async function unbundleObjects(bottle: BottleHandle, plan: Plan): Promise<void> {
  const { uid, gid } = plan.workspace.user;
  await bottle.exec(["sh", "-c", 'git -C "$1" bundle unbundle "$2" >/dev/null && rm -f "$2"', "unbundle", plan.workspace.containerPath, OBJECTS_BUNDLE], { user: `${uid}:${gid}` });
}
