import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bottleArgv, makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, dockerOk, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { git, hostGit, initRepo, writeHostGitConfig } from "../helpers/git-project.ts";
import { Terminal } from "../helpers/terminal.ts";

/**
 * Parallel agents on one repository, with the real engine and real git: each
 * `workspace: branch` bottle works in its own checkout on its own branch;
 * the host's tree and branch are never touched; `diff`, `log`, `merge`,
 * `apply` and `branches` take the work; what a bottle leaves uncommitted
 * becomes a marked commit when it stops, also when its launcher was killed;
 * a secret in its commits stops `merge`.
 */

describeDocker("a branch per bottle", () => {
  let sandbox: Sandbox;
  let repo: string;
  let start: string;
  const agent = uniqueId("br");
  const first = `bottle-${agent}`;
  const second = `bottle-${agent}-2`;
  const bottle = (args: string[], cwd?: string) => runBottle(sandbox, args, cwd ? { cwd } : {});
  /** A command in the bottle as its agent, in /workspace. */
  const inBottle = async (name: string, script: string) => {
    const out = await bottle(["exec", name, "--", "sh", "-c", script]);
    if (out.exitCode !== 0) throw new Error(`exec in ${name} failed: ${out.stderr}`);
    return out.stdout;
  };
  const commit = (message: string) => `git -c user.name=agent -c user.email=agent@bottle.test commit -qam '${message}'`;

  beforeAll(() => {
    sandbox = makeSandbox();
    writeHostGitConfig(sandbox);
    repo = sandbox.project;
    initRepo(sandbox, repo, { "README.md": "hello\n", "story.txt": "once upon a time\n" });
    start = git(sandbox, repo, "rev-parse", "HEAD");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: branch test\n---\n");
  });

  afterAll(async () => {
    await bottle(["down", "--all", "--forget"]);
    removeLabelled(`bottle.agent=${agent}`);
  }, 120_000);

  test(
    "two bottles on one repository each work on a branch of their own; the host's tree, index and branch stay as they were",
    async () => {
      for (const name of [first, second]) {
        const up = await bottle(["up", agent, "--yes", "--branch", "--detach", "--", "sleep", "infinity"]);
        expect(up.exitCode).toBe(0);
        expect(up.stdout.trim()).toBe(name);
      }
      // Each has the repository at HEAD, on its branch, with history.
      expect(await inBottle(first, "git rev-parse --abbrev-ref HEAD; git log -1 --format=%H; cat story.txt")).toBe(`bottle/${agent}\n${start}\nonce upon a time\n`);
      await inBottle(first, `echo 'the first ending' > story.txt && ${commit("first ending")}`);
      await inBottle(second, `echo 'the second ending' > story.txt && ${commit("second ending")}`);
      expect(git(sandbox, repo, "status", "--porcelain")).toBe("");
      expect(git(sandbox, repo, "rev-parse", "HEAD")).toBe(start);
      expect(git(sandbox, repo, "rev-parse", "--abbrev-ref", "HEAD")).toBe("main");
      expect(readFileSync(join(repo, "story.txt"), "utf8")).toBe("once upon a time\n");

      // diff and log see each bottle's running work (brought back first).
      const diff1 = await bottle(["diff", first], repo);
      expect(diff1.exitCode).toBe(0);
      expect(diff1.stdout).toContain("+the first ending");
      expect((await bottle(["diff", second, "--stat"], repo)).stdout).toContain("story.txt | 2 +-");
      const log = JSON.parse((await bottle(["log", second, "--json"], repo)).stdout) as Array<{ subject: string }>;
      expect(log.map((entry) => entry.subject)).toEqual(["second ending"]);
      const branches = JSON.parse((await bottle(["branches", "--json"], repo)).stdout) as Array<{ branch: string; bottle: string; ahead: number; running: boolean }>;
      expect(branches.map((row) => [row.branch, row.bottle, row.ahead, row.running]).sort()).toEqual([
        [`bottle/${agent}`, first, 1, true],
        [`bottle/${agent}-2`, second, 1, true],
      ]);
    },
    300_000,
  );

  test(
    "merge takes the first; the second conflicts and leaves the tree clean; a dirty tree is refused",
    async () => {
      writeFileSync(join(repo, "README.md"), "dirty\n");
      const dirty = await bottle(["merge", first], repo);
      expect(dirty.exitCode).toBe(1);
      expect(dirty.stderr).toContain("has uncommitted changes: nothing was merged");
      git(sandbox, repo, "checkout", "--", "README.md");

      const merged = await bottle(["merge", first], repo);
      expect(merged.exitCode).toBe(0);
      expect(readFileSync(join(repo, "story.txt"), "utf8")).toBe("the first ending\n");

      const conflict = await bottle(["merge", second], repo);
      expect(conflict.exitCode).toBe(1);
      expect(conflict.stderr).toContain("conflicts with your current branch in story.txt: nothing was merged");
      expect(git(sandbox, repo, "status", "--porcelain")).toBe("");
      expect(existsSync(join(repo, ".git", "MERGE_HEAD"))).toBe(false);
      expect(readFileSync(join(repo, "story.txt"), "utf8")).toBe("the first ending\n");
    },
    300_000,
  );

  test(
    "apply brings a branch's changes as uncommitted changes; a secret in a branch's commits stops merge and apply",
    async () => {
      await inBottle(second, `echo 'a new chapter' > chapter2.txt && git add chapter2.txt && ${commit("chapter two")}`);
      // Against the tree with the first ending, the second's story.txt does not apply: all or nothing.
      const refused = await bottle(["apply", second], repo);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain("do not apply to your tree: nothing was applied");
      expect(git(sandbox, repo, "status", "--porcelain")).toBe("");
      git(sandbox, repo, "reset", "-q", "--hard", start);
      const applied = await bottle(["apply", second], repo);
      expect(applied.exitCode).toBe(0);
      expect(git(sandbox, repo, "status", "--porcelain")).toBe("M story.txt\n?? chapter2.txt");
      git(sandbox, repo, "reset", "-q", "--hard", start);
      git(sandbox, repo, "clean", "-qfd");

      const key = ["AKIA", "Z3QBMIJ5NZ4XK7QW"].join("");
      await inBottle(first, `printf 'aws_access_key_id = %s\\n' '${key}' > config.ini && git add config.ini && ${commit("add config")}`);
      const leaked = await bottle(["merge", first], repo);
      expect(leaked.exitCode).toBe(1);
      expect(leaked.stderr).toMatch(/gitleaks found \d+ secret\(s\) in bottle\/.*'s commits: nothing was merged/);
      expect(leaked.stderr).toContain("config.ini:1");
      expect(leaked.stderr).not.toContain(key);
      expect((await bottle(["apply", first], repo)).stderr).toContain("nothing was applied");
      expect(git(sandbox, repo, "rev-parse", "HEAD")).toBe(start);
      expect(git(sandbox, repo, "status", "--porcelain")).toBe("");
    },
    300_000,
  );

  test(
    "what a stopped bottle left uncommitted is a marked commit on its branch; the launcher SIGKILLed, cleanup does it; branches with commits stay",
    async () => {
      await inBottle(second, "echo 'left unsaved' > notes.txt && echo 'edited, not committed' >> README.md");
      expect((await bottle(["down", second])).exitCode).toBe(0);
      const subject = git(sandbox, repo, "log", "-1", "--format=%s", `bottle/${agent}-2`);
      expect(subject).toBe(`WIP (bottle): uncommitted work in ${second}`);
      expect(git(sandbox, repo, "show", `bottle/${agent}-2:notes.txt`)).toBe("left unsaved");

      // A launcher killed with SIGKILL: the bottle runs on; cleanup brings its work back as it removes it.
      const terminal = new Terminal(bottleArgv(["up", agent, "--yes", "--branch", "--", "sh", "-c", "echo $((6 * 7))-up; exec sleep 600"]), { env: sandbox.env, cwd: repo });
      try {
        // What the command prints, never the command line the preflight shows: the bottle runs.
        await terminal.waitFor("42-up", 120_000);
        const name = `bottle-${agent}-2`;
        await inBottle(name, "echo 'unsaved at the kill' > killed.txt");
        const owner = JSON.parse(readFileSync(join(sandbox.state, "bottle", "bottles", name, "owner.json"), "utf8")) as { pid: number };
        process.kill(owner.pid, "SIGKILL");
        await Bun.sleep(1_000);
        expect((await bottle(["cleanup", "--yes"])).exitCode).toBe(0);
        expect(dockerOk("container", "inspect", name)).toBe(false);
        const branch = JSON.parse((await bottle(["branches", "--json"], repo)).stdout).find((row: { bottle: string; branch: string }) => row.bottle === name && row.branch !== `bottle/${agent}-2`)?.branch as string;
        expect(branch).toBe(`bottle/${agent}-2-2`);
        expect(git(sandbox, repo, "show", `${branch}:killed.txt`)).toBe("unsaved at the kill");
      } finally {
        terminal.close();
      }
      // A bottle that did nothing leaves no branch behind.
      const idle = await bottle(["up", agent, "--yes", "--branch", "--", "true"]);
      expect(idle.exitCode).toBe(0);
      expect(hostGit(sandbox, repo, ["rev-parse", "-q", "--verify", `refs/heads/bottle/${agent}-2-3`]).exitCode).not.toBe(0);
      expect(git(sandbox, repo, "branch", "--list", `bottle/${agent}*`).split("\n").length).toBe(3);
    },
    300_000,
  );
});

describeDocker("branch workspaces: bad input, and copy's work as a branch", () => {
  const agent = uniqueId("brx");
  let sandbox: Sandbox;
  beforeAll(() => {
    sandbox = makeSandbox();
    writeHostGitConfig(sandbox);
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: branch errors\n---\n");
  });
  afterAll(async () => {
    await runBottle(sandbox, ["down", "--all", "--forget"]);
    removeLabelled(`bottle.agent=${agent}`);
  }, 120_000);

  test("not a repository: branch is refused with copy offered; a branch that is not a bottle's is refused; nothing is created", async () => {
    const notRepo = await runBottle(sandbox, ["up", agent, "--yes", "--branch", "--detach"]);
    expect(notRepo.exitCode).toBe(1);
    expect(notRepo.stderr).toContain("workspace: branch needs a git repository");
    expect(notRepo.stderr).toContain("workspace: copy");
    initRepo(sandbox, sandbox.project);
    git(sandbox, sandbox.project, "branch", "feature");
    const taken = await runBottle(sandbox, ["up", agent, "--yes", "--branch", "feature", "--detach"]);
    expect(taken.exitCode).toBe(1);
    expect(taken.stderr).toContain("the branch feature exists and is not a bottle's");
    expect(dockerOk("container", "inspect", `bottle-${agent}`)).toBe(false);
  });

  test(
    "a dirty repository: the branch starts from HEAD and says so; a copy brings uncommitted changes and its commits come back as a branch",
    async () => {
      writeFileSync(join(sandbox.project, "README.md"), "changed, not committed\n");
      const dry = await runBottle(sandbox, ["up", agent, "--branch", "--dry-run"]);
      expect(dry.stdout).toContain("the repository has uncommitted changes: the bottle starts from");
      writeFile(join(sandbox.config, "bottles", "copy.yaml"), "workspace: copy\n");
      writeFile(join(sandbox.config, "agents", `${agent}-copy.md`), "---\nbottle: copy\n---\n");
      const name = `bottle-${agent}-copy`;
      const up = await runBottle(sandbox, ["up", `${agent}-copy`, "--yes", "--detach", "--", "sleep", "infinity"]);
      expect(up.exitCode).toBe(0);
      const inside = await runBottle(sandbox, ["exec", name, "--", "sh", "-c", "cat README.md; git status --porcelain; git config --list --local | grep -c url || true"]);
      expect(inside.stdout).toStartWith("changed, not committed\n M README.md\n");
      await runBottle(sandbox, ["exec", name, "--", "sh", "-c", "echo more >> README.md && git -c user.name=a -c user.email=a@b.test commit -qam 'from the copy'"]);
      expect((await runBottle(sandbox, ["down", name])).exitCode).toBe(0);
      expect(git(sandbox, sandbox.project, "log", "-1", "--format=%s", `bottle/${agent}-copy`)).toBe("from the copy");
      expect(readFileSync(join(sandbox.project, "README.md"), "utf8")).toBe("changed, not committed\n");
    },
    300_000,
  );
});
