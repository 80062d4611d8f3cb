import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { GIT_UPSTREAM_REPO, awsKey, githubToken, startGitUpstream, type GitUpstream } from "../helpers/git-upstream.ts";
import { containerIp, sshKeygen } from "../helpers/world.ts";

/**
 * The git gate end to end: real git, real gitleaks, a real sshd. The
 * "upstream" is a container this test starts (test/helpers/git-upstream.ts)
 * under a made-up name on the bottle's egress network.
 */

const UPSTREAM_HOST = "git.upstream.test";
const OLD_SECRET = awsKey();

describeDocker("the git gate", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("gitgate");
  const label = `bottle.test=${agent}`;
  let name = "";
  let upstream: GitUpstream | undefined;
  let privateKeyBody = "";
  let clones = 0;

  const inBottle = (script: string) => runBottle(sandbox, ["exec", name, "--", "sh", "-c", script]);
  const upstreamGit = (...args: string[]) => upstream!.git(...args);
  const upstreamRef = (ref: string) => upstream!.ref(ref);
  /** A fresh clone in the bottle (through the gate); returns its directory. */
  const freshClone = () => `/tmp/clone-${++clones}`;
  const cloneScript = (dir: string) => `git clone -q ${upstream!.url} ${dir} && cd ${dir} || exit 99`;

  beforeAll(async () => {
    // The upstream: main already holds an old secret (it is upstream, so never rescanned).
    upstream = startGitUpstream({
      label,
      host: UPSTREAM_HOST,
      env: { OLD_SECRET },
      setup: [
        'printf "AWS_ACCESS_KEY_ID=%s\\n" "$OLD_SECRET" > legacy.env; git add legacy.env; git commit -qm "legacy config"',
        // The upstream's own policy: refs/heads/protected is refused.
        `printf '#!/bin/sh\\nwhile read o n r; do [ "$r" = refs/heads/protected ] && { echo "upstream policy: refs/heads/protected is protected"; exit 1; }; done; exit 0\\n' > ${GIT_UPSTREAM_REPO}/hooks/pre-receive`,
        `chmod +x ${GIT_UPSTREAM_REPO}/hooks/pre-receive`,
      ],
    });
    // A line of the private part (the first ones hold the public key).
    privateKeyBody = readFileSync(join(upstream.keys, "id_ed25519"), "utf8").split("\n")[3]!;

    sandbox = makeSandbox();
    writeFile(join(sandbox.config, "bottles", "gitgate.yaml"), ["workspace: none", ...upstream.manifest(), ""].join("\n"));
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: gitgate\n---\ngit gate test agent\n");
    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    expect(up.stderr.includes("bottle: ") ? up.stderr : "").toBe("");
    expect(up.stderr).toContain(`origin → ${upstream.url}`);
    name = up.stdout.trim();
    upstream.attach(name);
  }, 600_000);

  afterAll(async () => {
    if (name) await runBottle(sandbox, ["down", name]);
    upstream?.remove();
    removeLabelled(label, `bottle.agent=${agent}`);
  });

  test("the bottle's gitconfig sends the upstream URL to the gate", async () => {
    const out = await inBottle(`git config --get-all url.git://gate/origin.git.insteadof`);
    expect(out.stdout).toContain(upstream!.url);
    expect(out.stdout).toContain(`ssh://git@${UPSTREAM_HOST}/project.git`);
  });

  test("a clone through the upstream URL works and shows the upstream's history", async () => {
    const dir = freshClone();
    const out = await inBottle(`${cloneScript(dir)}; cat README.md; git log --format=%s; git rev-parse HEAD; git config remote.origin.url`);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toContain("# project");
    expect(out.stdout).toContain("legacy config");
    expect(out.stdout).toContain(upstreamRef("main"));
    expect(out.stdout).toContain(upstream!.url);
  });

  test("a clean commit pushed arrives upstream", async () => {
    const dir = freshClone();
    const out = await inBottle(
      `${cloneScript(dir)}; echo 'print("hello")' > hello.py; git add hello.py; git commit -qm 'add hello'; git push origin main 2>&1; git rev-parse HEAD`,
    );
    expect(out.exitCode).toBe(0);
    const head = out.stdout.trim().split("\n").pop()!;
    expect(upstreamRef("main")).toBe(head);
    expect(upstreamGit("log", "-1", "--format=%s", "main")).toBe("add hello");
    expect(out.stdout).toContain("no secrets found");
  });

  /** Commit `files` (path → content) on main in a fresh clone, push, and return the push's output; upstream main must not move. */
  async function rejectedPush(files: Record<string, string>, extra = "") {
    const before = upstreamRef("main");
    const dir = freshClone();
    const writes = Object.entries(files)
      .map(([path, content]) => `mkdir -p "$(dirname ${path})"; printf '%s\\n' '${content.replace(/'/g, `'\\''`)}' > ${path}; git add ${path}`)
      .join("; ");
    const out = await inBottle(`${cloneScript(dir)}; ${writes}; git commit -qm 'add config'; ${extra || "git push origin main"} 2>&1; echo "exit=$?"`);
    expect(out.stdout).toContain("push rejected");
    expect(out.stdout).not.toContain("exit=0");
    expect(upstreamRef("main")).toBe(before);
    return out.stdout;
  }

  test("a commit adding an AWS access key is rejected, naming file, rule and commit, never the key", async () => {
    const key = awsKey();
    const out = await rejectedPush({ "config/aws.env": `AWS_ACCESS_KEY_ID=${key}` });
    expect(out).toContain("config/aws.env:1");
    expect(out).toContain("aws-access-token");
    expect(out).toMatch(/commit [0-9a-f]{12}/);
    expect(out).not.toContain(key);
    expect(out).not.toContain(key.slice(4));
  });

  test("a private key block is rejected", async () => {
    sshKeygen(upstream!.keys, "leaked_key", "leaked");
    const pem = readFileSync(join(upstream!.keys, "leaked_key"), "utf8").trim();
    const out = await rejectedPush({ "deploy/key.pem": pem });
    expect(out).toContain("deploy/key.pem");
    expect(out).toContain("private-key");
    expect(out).not.toContain(pem.split("\n")[2]!);
  });

  test("a GitHub token is rejected", async () => {
    const token = githubToken();
    const out = await rejectedPush({ "src/client.ts": `const token = "${token}";` });
    expect(out).toContain("src/client.ts:1");
    expect(out).toContain("github-pat");
    expect(out).not.toContain(token);
  });

  test("a gitleaks:allow comment does not bypass the scan", async () => {
    const out = await rejectedPush({ "settings.py": `AWS_KEY = "${awsKey()}"  # gitleaks:allow` });
    expect(out).toContain("settings.py:1");
    expect(out).toContain("aws-access-token");
  });

  test("gitleaks' default path allowlist (vendor/, *.bin, …) does not hide a secret", async () => {
    const out = await rejectedPush({ "vendor/lib/creds.txt": `token ${githubToken()}`, "blob.bin": `key ${awsKey()}` });
    expect(out).toContain("vendor/lib/creds.txt");
    expect(out).toContain("blob.bin");
  });

  test("a secret in a commit message is rejected", async () => {
    const before = upstreamRef("main");
    const dir = freshClone();
    const out = await inBottle(`${cloneScript(dir)}; echo ok > notes.txt; git add notes.txt; git commit -qm 'use ${githubToken()} for CI'; git push origin main 2>&1; echo "exit=$?"`);
    expect(out.stdout).toContain("push rejected");
    expect(out.stdout).toContain("(message)");
    expect(out.stdout).toContain("github-pat");
    expect(upstreamRef("main")).toBe(before);
  });

  test("a secret introduced two commits back in a multi-commit push is caught", async () => {
    const before = upstreamRef("main");
    const dir = freshClone();
    const out = await inBottle(
      [
        cloneScript(dir),
        `printf 'STRIPE=1\\nAWS_ACCESS_KEY_ID=${awsKey()}\\n' > keys.env; git add keys.env; git commit -qm one`,
        "git rev-parse HEAD > /tmp/secret-commit-" + clones,
        "git rm -q keys.env; git commit -qm 'two: remove it again'",
        "echo done > three.txt; git add three.txt; git commit -qm three",
        `git push origin main 2>&1; echo "exit=$?"; echo "secret-commit=$(cat /tmp/secret-commit-${clones})"`,
      ].join("; "),
    );
    expect(out.stdout).toContain("push rejected");
    expect(out.stdout).toContain("keys.env:2");
    const secretCommit = /secret-commit=([0-9a-f]{40})/.exec(out.stdout)![1]!;
    expect(out.stdout).toContain(`commit ${secretCommit.slice(0, 12)}`);
    expect(upstreamRef("main")).toBe(before);
  });

  test("pushing with --no-verify or straight to the gate's URL is scanned all the same", async () => {
    await rejectedPush({ "a.env": `AWS_ACCESS_KEY_ID=${awsKey()}` }, "git push --no-verify origin main");
    await rejectedPush({ "b.env": `AWS_ACCESS_KEY_ID=${awsKey()}` }, "git push git://gate/origin.git HEAD:main");
  });

  test("a force-push that rewrites history is scanned; a clean rewrite goes through", async () => {
    const dir = freshClone();
    const pushed = await inBottle(`${cloneScript(dir)}; echo v1 > draft.md; git add draft.md; git commit -qm draft; git push -q origin main 2>&1; git rev-parse HEAD`);
    expect(pushed.exitCode).toBe(0);
    const draft = pushed.stdout.trim().split("\n").pop()!;
    expect(upstreamRef("main")).toBe(draft);
    // Rewrite the pushed commit to carry a secret: rejected, upstream keeps the draft.
    const dirty = await inBottle(
      `cd ${dir}; printf 'AWS_ACCESS_KEY_ID=${awsKey()}\\n' > draft.md; git commit -qa --amend -m draft; git push --force origin main 2>&1; echo "exit=$?"`,
    );
    expect(dirty.stdout).toContain("push rejected");
    expect(dirty.stdout).toContain("draft.md:1");
    expect(upstreamRef("main")).toBe(draft);
    // A clean rewrite is forwarded as a forced update.
    const clean = await inBottle(`cd ${dir}; echo v2 > draft.md; git commit -qa --amend -m 'draft v2'; git push --force origin main 2>&1; echo "exit=$?"; git rev-parse HEAD`);
    expect(clean.stdout).toContain("exit=0");
    const rewritten = clean.stdout.trim().split("\n").pop()!;
    expect(rewritten).not.toBe(draft);
    expect(upstreamRef("main")).toBe(rewritten);
  });

  test("a new branch is scanned for its new commits only: an old secret already upstream does not block it", async () => {
    const dir = freshClone();
    const out = await inBottle(
      `${cloneScript(dir)}; test -f legacy.env; git checkout -qb feature; echo feature > feature.txt; git add feature.txt; git commit -qm feature; git push origin feature 2>&1; echo "exit=$?"; git rev-parse HEAD`,
    );
    expect(out.stdout).toContain("exit=0");
    expect(upstreamRef("refs/heads/feature")).toBe(out.stdout.trim().split("\n").pop()!);
    // …while a new branch bringing a new secret is refused.
    const bad = await inBottle(`cd ${dir}; git checkout -qb feature-2; echo 'k=${githubToken()}' > t.txt; git add t.txt; git commit -qm t; git push origin feature-2 2>&1; echo "exit=$?"`);
    expect(bad.stdout).toContain("push rejected");
    expect(upstreamRef("refs/heads/feature-2")).toBe("");
    // Deleting a branch needs no scan.
    const del = await inBottle(`cd ${dir}; git push origin --delete feature 2>&1; echo "exit=$?"`);
    expect(del.stdout).toContain("exit=0");
    expect(upstreamRef("refs/heads/feature")).toBe("");
  });

  test("merges: a secret the merge itself adds is caught; merging in history already upstream is not rescanned", async () => {
    const dir = freshClone();
    // A topic branch from the first commit, then upstream main merged in: the
    // merge brings legacy.env (an old secret, already upstream) and adds nothing.
    const clean = await inBottle(
      [
        cloneScript(dir),
        "git checkout -qb topic $(git rev-list --max-parents=0 HEAD)",
        "echo topic > topic.txt; git add topic.txt; git commit -qm topic",
        "git merge -q --no-edit origin/main",
        "test -f legacy.env",
        `git push origin topic 2>&1; echo "exit=$?"`,
      ].join(" && "),
    );
    expect(clean.stdout).toContain("exit=0");
    expect(upstreamRef("refs/heads/topic")).not.toBe("");
    // An "evil merge": the secret appears only in the merge commit.
    const evil = await inBottle(
      [
        `cd ${dir}`,
        "git checkout -qb side origin/main~1 && echo s > s.txt && git add s.txt && git commit -qm side",
        "git checkout -q topic && git merge -q --no-commit side",
        `printf 'AWS_ACCESS_KEY_ID=${awsKey()}\\n' > merged.env && git add merged.env && git commit -qm 'merge side'`,
        `git push origin topic 2>&1; echo "exit=$?"; echo "merge=$(git rev-parse HEAD)"`,
      ].join("; "),
    );
    expect(evil.stdout).toContain("push rejected");
    expect(evil.stdout).toContain("merged.env:1");
    const merge = /merge=([0-9a-f]{40})/.exec(evil.stdout)![1]!;
    expect(evil.stdout).toContain(`commit ${merge.slice(0, 12)}`);
  });

  test("tags are scanned (annotated tag messages too); refs other than branches and tags are refused", async () => {
    const dir = freshClone();
    const out = await inBottle(
      [
        cloneScript(dir),
        "git tag v0.1",
        `git tag -a v0.2 -m 'release; deploy with ${githubToken()}'`,
        `git push origin v0.1 2>&1; echo "light=$?"`,
        `git push origin v0.2 2>&1; echo "annotated=$?"`,
        `git push origin HEAD:refs/notes/sneaky 2>&1; echo "notes=$?"`,
      ].join("; "),
    );
    expect(out.stdout).toContain("light=0");
    expect(upstreamRef("refs/tags/v0.1")).not.toBe("");
    expect(out.stdout).not.toContain("annotated=0");
    expect(out.stdout).toContain("(message):");
    expect(upstreamRef("refs/tags/v0.2")).toBe("");
    expect(out.stdout).toContain("only branches and tags go through the git gate");
    expect(out.stdout).not.toContain("notes=0");
    expect(upstreamRef("refs/notes/sneaky")).toBe("");
  });

  test("git daemon listens on the bottle's network only: the egress side cannot reach it", () => {
    const gateEgress = containerIp(`${name}-gate`, `${name}-egress`);
    const gateInternal = containerIp(`${name}-gate`, `${name}-internal`);
    // /proc/net/tcp: the listening socket's address is the internal one (little-endian hex), not 0.0.0.0.
    const listening = docker("exec", `${name}-gate`, "awk", '$4 == "0A" && $2 ~ /:24CA$/ { print $2 }', "/proc/net/tcp");
    const hex = gateInternal.split(".").reverse().map((part) => Number(part).toString(16).padStart(2, "0")).join("").toUpperCase();
    expect(listening).toBe(`${hex}:24CA`);
    const out = Bun.spawnSync(["docker", "exec", upstream!.container, "timeout", "10", "git", "ls-remote", `git://${gateEgress}/origin.git`], { stdout: "pipe", stderr: "pipe" });
    expect(out.exitCode).not.toBe(0);
    expect(out.stderr.toString()).toMatch(/refused|unable to connect/i);
    expect(gateInternal).not.toBe(gateEgress);
  });

  test("a push is judged against the upstream as it is now: the gate refreshes before receiving", async () => {
    const dir = freshClone();
    const prepared = await inBottle(`${cloneScript(dir)}; echo mine > mine.txt; git add mine.txt; git commit -qm mine`);
    expect(prepared.exitCode).toBe(0);
    // Someone else moves main upstream after our clone, behind the gate's back.
    docker(
      "exec", "-u", "git", upstream!.container, "sh", "-c",
      `set -e; rm -rf /tmp/other; git clone -q ${GIT_UPSTREAM_REPO} /tmp/other; cd /tmp/other; git -c user.name=o -c user.email=o@o commit -q --allow-empty -m other; git push -q origin main`,
    );
    const theirs = upstreamRef("main");
    const out = await inBottle(`cd ${dir}; git push origin main 2>&1; echo "exit=$?"`);
    expect(out.stdout).not.toContain("exit=0");
    expect(out.stdout).toMatch(/fetch first|non-fast-forward/);
    expect(upstreamRef("main")).toBe(theirs);
  });

  test("the upstream's own refusal reaches the agent and the gate's mirror does not run ahead", async () => {
    const dir = freshClone();
    const out = await inBottle(`${cloneScript(dir)}; git checkout -qb protected; echo p > p.txt; git add p.txt; git commit -qm p; git push origin protected 2>&1; echo "exit=$?"`);
    expect(out.stdout).not.toContain("exit=0");
    expect(out.stdout).toContain("upstream policy: refs/heads/protected is protected");
    expect(upstreamRef("refs/heads/protected")).toBe("");
    const mirror = Bun.spawnSync(["docker", "exec", `${name}-gate`, "git", "--git-dir=/var/lib/bottle/git/origin.git", "rev-parse", "--verify", "--quiet", "refs/heads/protected"]);
    expect(mirror.exitCode).not.toBe(0);
  });

  test("bottle logs --gate git shows fetches, scans with their findings and forwards, without secrets", async () => {
    const logs = await runBottle(sandbox, ["logs", name, "--gate", "git", "--json"]);
    expect(logs.exitCode).toBe(0);
    const lines = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(lines.some((line) => line.event === "fetch" && line.decision === "allow")).toBe(true);
    expect(lines.some((line) => line.event === "scan" && line.decision === "deny" && line.findings.some((f: { rule: string }) => f.rule === "aws-access-token"))).toBe(true);
    expect(lines.some((line) => line.event === "forward" && line.decision === "allow")).toBe(true);
    const raw = readFileSync(join(sandbox.state, "bottle", "bottles", name, "logs", "git.jsonl"), "utf8");
    expect(raw).not.toMatch(/AKIA[A-Z2-7]{16}|ghp_[A-Za-z0-9]{36}/);
    const text = await runBottle(sandbox, ["logs", name, "--gate", "git"]);
    expect(text.stdout).toContain("forward");
    expect(text.stdout).toContain("aws-access-token");
  });

  test("the upstream key never enters the bottle, and SSH straight to the upstream fails", async () => {
    // The key's text comes in on stdin, so no command line in the bottle holds it.
    const out = await runBottle(
      sandbox,
      [
        "exec", name, "--", "sh", "-c",
        [
          "read -r key",
          "find / -xdev \\( -name '*id_*' -o -name identity -o -name known_hosts \\) -type f 2>/dev/null | xargs -r grep -l 'PRIVATE KEY' 2>/dev/null; echo find-done",
          "env > /tmp/env-dump; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline > /tmp/proc-dump 2>/dev/null",
          `printf '%s\\n' "$key" | grep -cF -f - /tmp/env-dump /tmp/proc-dump`,
          `rm /tmp/env-dump /tmp/proc-dump; printf '%s\\n' "$key" | grep -rlsF -f - /home /tmp /workspace /run /etc /opt /usr/local 2>/dev/null; echo grep-done`,
        ].join("; "),
      ],
      { stdin: `${privateKeyBody}\n` },
    );
    expect(out.stdout.trim().split("\n")).toEqual(["find-done", "/tmp/env-dump:0", "/tmp/proc-dump:0", "grep-done"]);
    const ip = containerIp(upstream!.container, `${name}-egress`);
    const ssh = await inBottle(
      `for target in ${UPSTREAM_HOST} ${ip}; do ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no git@$target true 2>&1 && echo LEAK-$target; done; curl -sS --max-time 5 -p -x http://gate:3128 http://${UPSTREAM_HOST}:22/ 2>&1 && echo LEAK-proxy; exit 0`,
    );
    expect(ssh.stdout).not.toContain("LEAK");
    // In the gate, only root can read it; nothing of it in docker's view or the state dir.
    expect(docker("exec", `${name}-gate`, "stat", "-c", "%a %U", "/etc/bottle/git/remotes/origin/identity", "/etc/bottle/git")).toBe("600 root\n700 root");
    expect(docker("inspect", `${name}-gate`)).not.toContain(privateKeyBody);
    const stateDir = join(sandbox.state, "bottle", "bottles", name);
    for (const file of readdirSync(stateDir, { recursive: true, withFileTypes: true }))
      if (file.isFile()) expect(readFileSync(join(file.parentPath, file.name), "utf8")).not.toContain(privateKeyBody);
  });

  describe("when the upstream is down", () => {
    test("fetch fails closed with a clear message", async () => {
      const dir = freshClone();
      const cloned = await inBottle(cloneScript(dir));
      expect(cloned.exitCode).toBe(0);
      docker("stop", "-t", "1", upstream!.container);
      const out = await inBottle(`cd ${dir}; git fetch origin 2>&1; echo "exit=$?"; git ls-remote origin 2>&1; echo "exit=$?"`);
      expect(out.stdout).not.toContain("exit=0");
      expect(out.stdout).toContain("cannot fetch 'origin' from its upstream");
      expect(out.stdout).toContain("stale");
      const logs = await runBottle(sandbox, ["logs", name, "--gate", "git", "--json"]);
      expect(logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line)).some((line) => line.event === "fetch" && line.decision === "error")).toBe(true);
    });
  });
});
