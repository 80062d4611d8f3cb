import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, type Sandbox } from "../../helpers/cli.ts";
import { type Attacker, describeEscape, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, tearDown, upAttacker, writeAgent } from "../../helpers/escape-world.ts";
import { chownToAgent, git, hostGit, initRepo, writeHostGitConfig } from "../../helpers/git-project.ts";

/**
 * A mounted workspace's .git, attacked from inside as a prompt-injected agent
 * would: every way to make the HOST's git run the agent's code later (its
 * `git status`, `git commit`, the submodules `git status` follows) — the .git
 * moved aside and replaced, its config, hooks, hooksPath, commondir,
 * config.worktree, modules/*\/hooks, a submodule's gitfile, the directories
 * above it, an unpopulated submodule's .git, the host's object store — then
 * the host runs git and no payload may have run. The agent still commits: its
 * work comes back only as objects, on bottle/<name>, and a hostile object
 * (a tree holding `.git`) is refused by the host's fsck.
 */

const HOST_TOKEN = `hosttok${crypto.randomUUID().replace(/-/g, "")}`;

/** What the host's git would act on: its config, hooks and HEAD, and each submodule's gitfile and config. */
function hostGitState(project: string): string {
  const hash = createHash("sha256");
  const add = (path: string) => {
    if (!existsSync(path)) return hash.update(`${path}: absent\n`);
    const stat = statSync(path);
    if (stat.isDirectory()) for (const entry of readdirSync(path).sort()) add(join(path, entry));
    else hash.update(`${path}: ${stat.mode} `).update(readFileSync(path)).update("\n");
  };
  for (const path of [".git/config", ".git/hooks", ".git/HEAD", ".git/commondir", ".git/config.worktree", ".git/modules/lib/sub/config", ".git/modules/lib/sub/hooks", "lib/sub/.git"])
    add(join(project, path));
  return hash.digest("hex");
}

describeEscape(["docker", "smolmachines"], "", "escape through a mounted workspace's .git", () => {
  let sandbox: Sandbox;
  let attacker: Attacker;
  let project: string;
  let before: string;
  let hostHead: string;
  /** Payloads write here (a host path): a file appearing is host code execution. */
  let pwned: string;

  const payload = (route: string) => `echo ${route} >> ${pwned}/${route}; false`;

  beforeAll(async () => {
    sandbox = makeSandbox();
    writeHostGitConfig(sandbox);
    project = sandbox.project;
    pwned = join(sandbox.home, "pwned");
    mkdirSync(pwned, { recursive: true });
    // The submodule's source, then the project: a commit, a populated submodule (lib/sub, a gitfile),
    // an unpopulated one (vendor/missing: in the index, not on disk), and a token in .git/config.
    const subSource = join(sandbox.home, "sub-source");
    mkdirSync(subSource);
    initRepo(sandbox, subSource, { "sub.txt": "sub\n" });
    initRepo(sandbox, project, { "README.md": "hello\n" });
    git(sandbox, project, "submodule", "add", "-q", subSource, "lib/sub");
    git(sandbox, project, "update-index", "--add", "--cacheinfo", `160000,${git(sandbox, subSource, "rev-parse", "HEAD")},vendor/missing`);
    git(sandbox, project, "config", "-f", ".gitmodules", "submodule.vendor/missing.path", "vendor/missing");
    git(sandbox, project, "config", "-f", ".gitmodules", "submodule.vendor/missing.url", subSource);
    git(sandbox, project, "add", ".gitmodules");
    git(sandbox, project, "commit", "-q", "-m", "host: submodules");
    git(sandbox, project, "remote", "add", "origin", `https://bottle-user:${HOST_TOKEN}@example.test/project.git`);
    git(sandbox, project, "config", "http.extraheader", `AUTHORIZATION: basic ${HOST_TOKEN}`);
    chownToAgent(project);
    hostHead = git(sandbox, project, "rev-parse", "HEAD");
    before = hostGitState(project);
    attacker = await upAttacker({ prefix: "esc-gitws", sandbox, manifest: ["egress:", "  allow: [allowed.test]"] });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "the agent's commits come back only as objects, on bottle/<name>; a commit holding a .git entry is refused by the host's fsck",
    async () => {
      const branch = `bottle/${attacker.name.replace(/^bottle-/, "")}`;
      const made = await attacker.sh(
        "cd /workspace && echo agent > agent.txt && git add agent.txt && git -c user.name=Agent -c user.email=agent@example.test commit -q -m 'agent: work' && git rev-parse HEAD",
      );
      expect(made.exitCode).toBe(0);
      const commit = made.stdout.trim().split("\n").pop()!;
      const fetched = await runBottle(sandbox, ["fetch", attacker.name, "--json"]);
      expect({ code: fetched.exitCode, stderr: fetched.stderr }).toEqual({ code: 0, stderr: "" });
      expect(JSON.parse(fetched.stdout)).toEqual({ branch, commit, commits: 1 });
      expect(git(sandbox, project, "log", "-1", "--format=%s", branch)).toBe("agent: work");
      // The host's own branch and HEAD did not move.
      expect(git(sandbox, project, "rev-parse", "HEAD")).toBe(hostHead);
      expect(readdirSync(pwned)).toEqual([]);

      // A tree entry named .git would write into the host's .git on checkout: fsck refuses the object, no branch moves.
      const hostile = await attacker.sh(
        "cd /workspace && blob=$(printf 'x' | git hash-object -w --stdin) && " +
          "tree=$(printf '100644 blob %s\\t.git\\n' $blob | git mktree) && " +
          "c=$(git -c user.name=A -c user.email=a@example.test commit-tree $tree -p HEAD -m hostile) && git update-ref HEAD $c && echo HOSTILE=$c",
      );
      expect(hostile.stdout).toContain("HOSTILE=");
      const refused = await runBottle(sandbox, ["fetch", attacker.name]);
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toMatch(/dotgit|\.git/i);
      expect(git(sandbox, project, "rev-parse", branch)).toBe(commit);
      await attacker.sh(`cd /workspace && git update-ref HEAD ${commit}`);

    },
    TEST_TIMEOUT_MS,
  );
  test(
    "every .git route to the host's git: the mounts hold, and the host's git status, commit and submodules run no payload",
    async () => {
      const out = await attacker.sh(
        [
          "cd /workspace",
          // The host's remote, without the token its URL carries on the host.
          "git remote get-url origin",
          // 1. The .git itself, moved aside or removed, and a new one with an fsmonitor.
          "mv .git .git-aside && echo MOVED-DOTGIT",
          "rm -rf .git 2>/dev/null; [ -e .git ] || echo REMOVED-DOTGIT",
          `[ -e .git/HEAD ] || { git init -q . && git config core.fsmonitor '${payload("dotgit-swap")}'; }`,
          // 2. What is inside .git: config, hooks, hooksPath, commondir, config.worktree, modules/*/hooks.
          `git config core.fsmonitor '${payload("fsmonitor")}'`,
          "mkdir -p .git/hooks .evil-hooks",
          ...["pre-commit", "post-commit", "post-checkout", "reference-transaction", "post-index-change"].flatMap((hook) => [
            `printf '#!/bin/sh\\n${payload(`hook-${hook}`)}\\n' > .git/hooks/${hook}; chmod +x .git/hooks/${hook}`,
            `printf '#!/bin/sh\\n${payload(`hookspath-${hook}`)}\\n' > .evil-hooks/${hook}; chmod +x .evil-hooks/${hook}`,
          ]),
          "git config core.hooksPath /workspace/.evil-hooks",
          `git init -q .evil-common && git -C .evil-common config core.fsmonitor '${payload("commondir")}' && echo /workspace/.evil-common/.git > .git/commondir`,
          `git config extensions.worktreeConfig true; printf '[core]\\n\\tfsmonitor = ${payload("worktree-config")}\\n' > .git/config.worktree`,
          `mkdir -p .git/modules/lib/sub/hooks && printf '[core]\\n\\tfsmonitor = ${payload("modules-config")}\\n' > .git/modules/lib/sub/config`,
          // 3. A submodule's gitfile, the directories above it, an unpopulated submodule's .git — pointed at a git dir of the agent's.
          `git init -q .evil-src && mv .evil-src/.git .evil-sub && git --git-dir=.evil-sub config core.fsmonitor '${payload("submodule")}'`,
          "printf 'gitdir: ../../.evil-sub\\n' > lib/sub/.git && echo WROTE-SUB-GITFILE",
          "mv lib/sub lib/sub-aside && echo MOVED-SUB",
          "mv lib lib-aside && echo MOVED-LIB",
          "rm -f lib/sub/.git 2>/dev/null; [ -e lib/sub/.git ] || echo REMOVED-SUB-GITFILE",
          "mkdir -p lib/sub && printf 'gitdir: ../../.evil-sub\\n' > lib/sub/.git 2>/dev/null",
          "mkdir -p vendor/missing && printf 'gitdir: ../../.evil-sub\\n' > vendor/missing/.git && echo WROTE-MISSING-GITFILE",
          "mv vendor vendor-aside && echo MOVED-VENDOR",
          // 4. The host's object store (the private git dir's own objects/ is the agent's to write).
          "touch /run/bottle-git-objects/planted 2>/dev/null && echo WROTE-HOST-OBJECTS",
          "mkdir -p /run/bottle-git-objects/pack/x 2>/dev/null && echo WROTE-HOST-PACKS",
          // 5. The token in the host's .git/config, anywhere the bottle can read.
          `grep -rlsF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev ${HOST_TOKEN} / | sed 's/^/FOUND-TOKEN /'`,
          "exit 0",
        ].join("\n"),
      );
      expect(out.stdout).not.toContain("MOVED-");
      expect(out.stdout).not.toContain("REMOVED-");
      expect(out.stdout).not.toContain("WROTE-");
      expect(out.stdout).not.toContain("FOUND-TOKEN");
      expect(out.stdout).toContain("https://example.test/project.git");

      // What the host later runs, in the repository and in its submodule.
      for (const args of [
        ["status"],
        ["status", "--porcelain=v2", "--ignore-submodules=none"],
        ["diff"],
        ["submodule", "status", "--recursive"],
        ["commit", "-q", "--allow-empty", "-m", "host: after the attack"],
        ["log", "--oneline", "-1"],
        ["checkout", "-q", "-b", "host-branch"],
        ["checkout", "-q", "main"],
      ])
        hostGit(sandbox, project, args);
      hostGit(sandbox, join(project, "lib", "sub"), ["status"]);
      expect(readdirSync(pwned)).toEqual([]);
      // The host's repository is as it was, apart from the host's own commit and branch.
      git(sandbox, project, "branch", "-D", "host-branch");
      git(sandbox, project, "reset", "-q", "--soft", hostHead);
      expect(hostGitState(project)).toBe(before);
      expect(git(sandbox, project, "rev-parse", "HEAD")).toBe(hostHead);

      // Down: the mount points bottle made for the unpopulated submodule are gone again, and still no payload ran.
      const down = await runBottle(sandbox, ["down", attacker.name]);
      expect(down.exitCode).toBe(0);
      expect(existsSync(join(project, "vendor"))).toBe(false);
      hostGit(sandbox, project, ["status"]);
      expect(readdirSync(pwned)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

});

describeEscape(["docker", "smolmachines"], "", "escape through a linked worktree's gitfile, and a workspace below a repository's top", () => {
  let sandbox: Sandbox;
  const attackers: Attacker[] = [];

  afterAll(async () => {
    for (const attacker of attackers) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "the gitfile cannot be rewritten or moved; a .git the agent makes below the top stays in the bottle",
    async () => {
      sandbox = makeSandbox();
      writeHostGitConfig(sandbox);
      const pwned = join(sandbox.home, "pwned");
      mkdirSync(pwned);
      const main = join(sandbox.home, "main-repo");
      mkdirSync(main);
      initRepo(sandbox, main, { "README.md": "main\n", "sub/inner.txt": "inner\n" });
      // The workspace: a linked worktree of main-repo (its .git is a gitfile).
      git(sandbox, main, "worktree", "add", "-q", "-b", "wt", sandbox.project);
      chownToAgent(sandbox.home);
      const gitfile = readFileSync(join(sandbox.project, ".git"), "utf8");
      const worktree = await upAttacker({ prefix: "esc-gitwt", sandbox, manifest: ["egress:", "  allow: [allowed.test]"], dockerfile: null });
      attackers.push(worktree);
      const out = await worktree.sh(
        [
          "cd /workspace",
          `git init -q /workspace/.evil && git -C /workspace/.evil config core.fsmonitor 'echo wt >> ${pwned}/worktree; false'`,
          "printf 'gitdir: /workspace/.evil/.git\\n' > .git && echo WROTE-GITFILE",
          "mv .git .git-aside && echo MOVED-GITFILE",
          "git log --oneline -1 && echo agent > a.txt && git add a.txt && git -c user.name=A -c user.email=a@example.test commit -q -m 'agent: in the worktree' && echo COMMITTED",
        ].join("\n"),
      );
      expect(out.stdout).not.toContain("WROTE-");
      expect(out.stdout).not.toContain("MOVED-");
      expect(out.stdout).toContain("COMMITTED");
      hostGit(sandbox, sandbox.project, ["status"]);
      hostGit(sandbox, main, ["status"]);
      expect(readFileSync(join(sandbox.project, ".git"), "utf8")).toBe(gitfile);
      expect((await runBottle(sandbox, ["down", worktree.name])).exitCode).toBe(0);
      attackers.pop();
      expect(git(sandbox, main, "log", "-1", "--format=%s", `bottle/${worktree.name.replace(/^bottle-/, "")}`)).toBe("agent: in the worktree");

      // A workspace below the top of main-repo: the agent's `git init` lands in its own .git, not in the host's sub/.git.
      const agent = writeAgent({ sandbox, prefix: "esc-gitsub", manifest: ["egress:", "  allow: [allowed.test]"], dockerfile: null });
      const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"], { cwd: join(main, "sub") });
      expect(up.exitCode).toBe(0);
      const name = up.stdout.trim();
      attackers.push({ ...worktree, agent, name });
      const planted = await runBottle(sandbox, [
        "exec",
        name,
        "--",
        "sh",
        "-c",
        `cd /workspace && git init -q . && git config core.fsmonitor 'echo below >> ${pwned}/below; false' && git status >/dev/null; echo DONE`,
      ]);
      expect(planted.stdout).toContain("DONE");
      hostGit(sandbox, join(main, "sub"), ["status"]);
      expect((await runBottle(sandbox, ["down", name])).exitCode).toBe(0);
      attackers.pop();
      hostGit(sandbox, join(main, "sub"), ["status"]);
      expect(existsSync(join(main, "sub", ".git"))).toBe(false);
      expect(readdirSync(pwned)).toEqual([]);
    },
    TEST_TIMEOUT_MS * 2,
  );
});
