import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "../../lib/errors.ts";
import { loadAgentText, loadBottleText } from "../../lib/manifest/index.ts";
import { workspacePlan, type WorkspaceOptions } from "../../lib/workspace.ts";
import { recordingExec } from "../helpers/exec.ts";
import { caught, cleanupTempDirs, tempDir } from "../helpers/unit.ts";
import { captureWarnings } from "./manifest/helpers.ts";

/**
 * Planning a workspace: what the gates hold stays out (mount and copy
 * alike, unless --workspace-unsafe), and a mounted workspace is one its
 * owner, as whom the agent runs, can write — never root's.
 */

afterAll(cleanupTempDirs);

const isRoot = process.getuid?.() === 0;

function machine() {
  const root = realpathSync(tempDir("bottle-workspace-"));
  const home = join(root, "home");
  const project = join(home, "project");
  mkdirSync(join(home, ".ssh"), { recursive: true });
  writeFileSync(join(home, ".ssh", "id_ed25519"), "key");
  mkdirSync(project, { recursive: true });
  if (isRoot) chownSync(project, 1234, 1234);
  const options = (more: Partial<WorkspaceOptions> = {}): WorkspaceOptions => ({
    mode: "mount",
    path: project,
    env: { HOME: home, BOTTLE_CONFIG_DIR: join(home, ".config", "bottle") },
    homes: [],
    platform: "linux",
    uid: 0,
    ...more,
  });
  return { root, home, project, options };
}

// git is asked about the workspace; none of these is a repository.
const exec = () => recordingExec(() => ({ exitCode: 128, stderr: "fatal: not a git repository" }));

describe("what the gates hold stays out", () => {
  for (const mode of ["mount", "copy"] as const) {
    test(`${mode}: the home is refused, naming it, offering a narrower dir, and what copy would do`, async () => {
      const m = machine();
      const error = await caught(workspacePlan(exec(), m.options({ mode, path: m.home })));
      expect(error).toBeInstanceOf(BottleError);
      expect((error as BottleError).message).toBe("workspace ~ would put what the gates keep out into the bottle: it is ~ (your home directory); it holds ~/.ssh (SSH keys)");
      expect((error as BottleError).fix).toContain("narrower directory");
      expect((error as BottleError).fix).toContain("`workspace: copy` would copy the same files in");
      expect((error as BottleError).fix).toContain(`--workspace-unsafe to ${mode} it anyway`);
    });
  }

  test("a symlink to the home, with a trailing slash, is the home", async () => {
    const m = machine();
    symlinkSync(m.home, join(m.root, "link"));
    const error = await caught(workspacePlan(exec(), m.options({ path: `${join(m.root, "link")}/` })));
    expect((error as BottleError).message).toContain("it is ~ (your home directory)");
  });

  test("--workspace-unsafe plans it, with one warning naming what comes in", async () => {
    const m = machine();
    const warnings = captureWarnings();
    try {
      const planned = await workspacePlan(exec(), m.options({ mode: "copy", path: m.home, unsafe: true }));
      expect(planned.workspace.hostPath).toBe(m.home);
      expect(warnings.messages()).toEqual([
        "--workspace-unsafe: the bottle gets what the gates keep out of it — workspace ~: it is ~ (your home directory); it holds ~/.ssh (SSH keys)",
      ]);
    } finally {
      warnings.restore();
    }
  });

  test("a project is planned as before, and `none` looks at nothing", async () => {
    const m = machine();
    const copy = await workspacePlan(exec(), m.options({ mode: "copy" }));
    expect(copy.workspace).toEqual({ mode: "copy", hostPath: m.project, containerPath: "/workspace", user: { uid: 1000, gid: 1000 } });
    const none = await workspacePlan(exec(), m.options({ mode: "none", path: "/" }));
    expect(none.workspace.hostPath).toBeUndefined();
  });
});

describe.skipIf(!isRoot)("a mounted workspace's owner (needs root to chown)", () => {
  test("the agent runs as the owner", async () => {
    const m = machine();
    const planned = await workspacePlan(exec(), m.options());
    expect(planned.workspace.user).toEqual({ uid: 1234, gid: 1234 });
  });

  test("owned by root (0700 or not): refused up front, saying why and how", async () => {
    const m = machine();
    chownSync(m.project, 0, 0);
    chmodSync(m.project, 0o700);
    const error = (await caught(workspacePlan(exec(), m.options()))) as BottleError;
    expect(error.message).toBe("workspace ~/project is owned by root: the agent runs as the workspace's owner, and never as root");
    expect(error.fix).toBe("give it to a user (chown -R USER ~/project), run bottle on a directory a user owns, or set `workspace: copy` in the bottle (the agent then works on a copy it owns)");
    // A copy of it is the agent's own.
    const copy = await workspacePlan(exec(), m.options({ mode: "copy" }));
    expect(copy.workspace.user).toEqual({ uid: 1000, gid: 1000 });
  });

  test("a launching user who is not root mounts only what they own", async () => {
    const m = machine();
    chmodSync(m.project, 0o700);
    const error = (await caught(workspacePlan(exec(), m.options({ uid: 1001 })))) as BottleError;
    expect(error.message).toBe("workspace ~/project belongs to uid 1234, not to you (uid 1001): the agent would write there as uid 1234");
    expect(error.fix).toStartWith("run bottle on a directory you own");
    expect((await workspacePlan(exec(), m.options({ uid: 1234 }))).workspace.user.uid).toBe(1234);
  });

  test("a directory its owner cannot write is refused with chmod", async () => {
    const m = machine();
    chmodSync(m.project, 0o500);
    const error = (await caught(workspacePlan(exec(), m.options()))) as BottleError;
    expect(error.message).toBe("workspace ~/project is mode 0500: its owner, as whom the agent runs, cannot read, write and enter it");
    expect(error.fix).toStartWith("chmod u+rwx ~/project");
  });
});

describe("--workspace-unsafe is a flag of the command line only", () => {
  test("no bottle or agent file can set it", () => {
    for (const key of ["workspace_unsafe", "workspace-unsafe", "workspaceUnsafe"]) {
      const bottle = loadBottleText(`${key}: true\n`, "/x/bottles/dev.yaml");
      expect(bottle.ok).toBe(false);
      const agent = loadAgentText(`---\n${key}: true\n---\nprompt\n`, "/x/agents/dev.md");
      expect(agent.ok).toBe(false);
    }
    // `workspace:` takes only a mode.
    expect(loadBottleText("workspace: unsafe\n", "/x/bottles/dev.yaml").ok).toBe(false);
    expect(loadBottleText("workspace: { mode: mount, unsafe: true }\n", "/x/bottles/dev.yaml").ok).toBe(false);
  });
});
