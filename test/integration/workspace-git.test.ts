import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { realExec } from "../../lib/exec.ts";
import { readHostRepo } from "../../lib/git/host-repo.ts";
import { HOST_OBJECTS_MOUNT } from "../../lib/git/private-gitdir.ts";
import { planWorkspaceGit, workspaceGitEntries } from "../../lib/git/workspace-git.ts";
import { makeSandbox, type Sandbox } from "../helpers/cli.ts";
import { git, hostGit, initRepo, writeHostGitConfig } from "../helpers/git-project.ts";

/**
 * Planning a mounted workspace's git against real repositories (the host's
 * own `git`, no Docker): what is shadowed, and that the private git dir made
 * from the host repository is a working repository with the same history,
 * index and branch — and none of the host's credentials.
 */

const HOME = process.env.HOME;
const homes: string[] = [];
afterAll(() => {
  process.env.HOME = HOME;
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});

/** A sandbox whose HOME (its .gitconfig trusts the test repositories) this process's git calls use too. */
function sandboxWithRepo(): Sandbox {
  const sandbox = makeSandbox();
  homes.push(sandbox.home);
  writeHostGitConfig(sandbox);
  process.env.HOME = sandbox.home;
  return sandbox;
}

/** Writes the private git dir's tar entries to `dir` as files, with the alternates pointing at the host's objects (what the read-only mount shows). */
function materialize(entries: ReturnType<typeof workspaceGitEntries>, root: string, into: string, objects: string): string {
  for (const entry of entries) {
    const path = join(into, entry.path.slice(root.length));
    if (entry.type === "dir") mkdirSync(path, { recursive: true });
    else {
      mkdirSync(dirname(path), { recursive: true });
      const content = typeof entry.content === "string" ? entry.content.replace(HOST_OBJECTS_MOUNT, objects) : (entry.content ?? "");
      writeFileSync(path, content);
    }
  }
  return into;
}

describe("a mounted workspace's git, planned from the host repository", () => {
  test("the private git dir has the host's history, branch and index, the safe config, and no credential", async () => {
    const sandbox = sandboxWithRepo();
    const project = sandbox.project;
    initRepo(sandbox, project, { "README.md": "hello\n", "src/a.txt": "a\n" });
    git(sandbox, project, "tag", "-a", "v1", "-m", "release");
    git(sandbox, project, "checkout", "-q", "-b", "feature");
    writeFileSync(join(project, "src/a.txt"), "staged\n");
    git(sandbox, project, "add", "src/a.txt");
    git(sandbox, project, "remote", "add", "origin", "https://me:secret-token@example.test/p.git");
    git(sandbox, project, "config", "http.extraheader", "AUTHORIZATION: basic secret-token");
    git(sandbox, project, "config", "core.fsmonitor", "echo host-fsmonitor");

    const found = await planWorkspaceGit(realExec, project);
    expect(found.plan).toEqual({ repo: project, shape: "dir", objects: join(project, ".git", "objects"), submodules: [], mountPoints: [], base: git(sandbox, project, "rev-parse", "HEAD") });
    const entries = workspaceGitEntries(found.plan, found.repo, "/workspace", 1000, 1000);
    expect(JSON.stringify(entries.map((entry) => [entry.path, typeof entry.content === "string" ? entry.content : ""]))).not.toContain("secret-token");
    expect(JSON.stringify(entries.map((entry) => (typeof entry.content === "string" ? entry.content : "")))).not.toContain("fsmonitor");

    const gitDir = materialize(entries, "/workspace/.git", join(sandbox.home, "private"), join(project, ".git", "objects"));
    const inBottle = (...args: string[]) => git(sandbox, project, `--git-dir=${gitDir}`, `--work-tree=${project}`, ...args);
    expect(inBottle("rev-parse", "--abbrev-ref", "HEAD")).toBe("feature");
    expect(inBottle("log", "--format=%s")).toBe("host: first commit");
    expect(inBottle("describe", "--tags")).toBe("v1");
    expect(inBottle("status", "--porcelain")).toBe("M  src/a.txt");
    expect(inBottle("remote", "get-url", "origin")).toBe("https://example.test/p.git");
    // The bottle commits to its own git dir; the host's HEAD and index stay.
    inBottle("-c", "user.name=A", "-c", "user.email=a@example.test", "commit", "-q", "-m", "agent");
    expect(git(sandbox, project, "status", "--porcelain")).toBe("M  src/a.txt");
    expect(git(sandbox, project, "log", "--format=%s", "-1")).toBe("host: first commit");
  });

  test("submodules (nested too), a linked worktree, a workspace below the top, and no repository", async () => {
    const sandbox = sandboxWithRepo();
    const project = sandbox.project;
    const inner = join(sandbox.home, "inner");
    const outer = join(sandbox.home, "outer");
    mkdirSync(inner);
    mkdirSync(outer);
    initRepo(sandbox, inner);
    initRepo(sandbox, outer);
    git(sandbox, outer, "submodule", "add", "-q", inner, "deep/in");
    git(sandbox, outer, "commit", "-q", "-m", "outer: inner");
    initRepo(sandbox, project);
    git(sandbox, project, "submodule", "add", "-q", outer, "vendor/outer");
    git(sandbox, project, "submodule", "update", "-q", "--init", "--recursive");
    git(sandbox, project, "update-index", "--add", "--cacheinfo", `160000,${git(sandbox, inner, "rev-parse", "HEAD")},gone/x`);
    git(sandbox, project, "commit", "-q", "-m", "host: submodules");

    const planned = (await planWorkspaceGit(realExec, project)).plan;
    expect(planned.submodules).toEqual([
      { path: "gone/x", gitfile: false },
      { path: "vendor/outer", gitfile: true },
      { path: "vendor/outer/deep/in", gitfile: true },
    ]);
    expect(planned.mountPoints).toEqual([join(project, "gone"), join(project, "gone/x"), join(project, "gone/x/.git")]);

    const below = join(project, "vendor");
    expect((await planWorkspaceGit(realExec, below)).plan).toEqual({
      enclosing: project,
      shape: "dir",
      submodules: [
        { path: "outer", gitfile: true },
        { path: "outer/deep/in", gitfile: true },
      ],
      mountPoints: [join(below, ".git")],
    });

    const worktree = join(sandbox.home, "wt");
    git(sandbox, project, "worktree", "add", "-q", "-b", "wt", worktree);
    const wt = await planWorkspaceGit(realExec, worktree);
    expect(wt.plan.shape).toBe("file");
    expect(wt.plan.objects).toBe(join(project, ".git", "objects"));
    expect(wt.repo?.head).toBe("ref: refs/heads/wt");

    const none = join(sandbox.home, "plain");
    mkdirSync(none);
    expect((await planWorkspaceGit(realExec, none)).plan).toEqual({ shape: "dir", submodules: [], mountPoints: [join(none, ".git")] });
    expect(await readHostRepo(realExec, none)).toBeUndefined();
    expect(hostGit(sandbox, none, ["status"]).exitCode).not.toBe(0);
  });
});
