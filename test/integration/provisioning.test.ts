import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bottleArgv, makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, objectsWithLabel, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { HTTPS_ECHO_SERVER, makeTestCa, type TestCa } from "../helpers/tls.ts";
import { writeHostGitConfig } from "../helpers/git-project.ts";
import { startEchoHost, type WorldHost } from "../helpers/world.ts";

/**
 * What a bottle gets before the agent starts: skills, prompt, git identity,
 * extra CAs, extra image layers, a copied workspace whose work is saved, and
 * Claude Code that lands straight at its prompt.
 */

function git(cwd: string, ...args: string[]): string {
  // The project is the agent user's (makeSandbox), the tests run as root: git would call it dubious.
  const out = Bun.spawnSync(["git", "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${out.stderr.toString()}`);
  return out.stdout.toString().trim();
}

describeDocker("provisioning a bottle", () => {
  let sandbox: Sandbox;
  let ca: TestCa;
  const agent = uniqueId("prov");
  const label = `bottle.test=${agent}`;
  let name = "";
  const world: WorldHost[] = [];

  const inBottle = (script: string) => runBottle(sandbox, ["exec", name, "--", "sh", "-c", script]);

  beforeAll(async () => {
    sandbox = makeSandbox();
    chownSync(sandbox.project, 1000, 1000);
    ca = makeTestCa();
    writeFile(join(sandbox.home, ".claude", "skills", "reviewing", "SKILL.md"), "---\nname: reviewing\n---\nReview carefully.\n");
    writeFile(join(sandbox.home, ".claude", "skills", "reviewing", "scripts", "check.sh"), "#!/bin/sh\necho checked\n");
    writeFile(join(sandbox.config, "bottles", "extra.Dockerfile"), "USER root\nRUN echo custom-layer > /opt/custom-layer\n");
    writeFile(
      join(sandbox.config, "bottles", "prov.yaml"),
      [
        "egress:",
        "  allow: [secure.test]",
        "  allow_private: [secure.test]",
        "git:",
        "  user: { name: Bottle User, email: bottle@example.test }",
        `ca_certs: [${ca.caPath}]`,
        "image:",
        "  dockerfile: extra.Dockerfile",
        "",
      ].join("\n"),
    );
    writeFile(
      join(sandbox.config, "agents", `${agent}.md`),
      ["---", "bottle: prov", "skills: [reviewing]", "git:", "  user: { name: Agent Name }", "---", "You are the provisioning test agent.", ""].join("\n"),
    );
    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    expect(up.stderr.includes("bottle: ") ? up.stderr : "").toBe("");
    name = up.stdout.trim();
    const plan = JSON.parse(readFileSync(join(sandbox.state, "bottle", "bottles", name, "plan.json"), "utf8"));
    const { cert, key } = ca.issue(["secure.test"]);
    world.push(startEchoHost(plan.images.gate.tag, `${name}-egress`, ["secure.test"], label, { script: HTTPS_ECHO_SERVER, env: { TLS_CERT: cert, TLS_KEY: key } }));
  });

  afterAll(async () => {
    for (const host of world) host.remove();
    if (name) await runBottle(sandbox, ["down", name]);
    removeLabelled(`bottle.agent=${agent}`);
  });

  test("skills are copied into the bottle user's ~/.claude/skills", async () => {
    const out = await inBottle("cat ~/.claude/skills/reviewing/SKILL.md; sh ~/.claude/skills/reviewing/scripts/check.sh; stat -c '%U' ~/.claude/skills/reviewing");
    expect(out.stdout).toContain("Review carefully.");
    expect(out.stdout).toContain("checked");
    expect(out.stdout).toContain("agent");
  });

  test("the prompt is a file only the bottle user can read", async () => {
    const out = await inBottle("stat -c '%a %U' ~/.claude/bottle/prompt.md; cat ~/.claude/bottle/prompt.md");
    expect(out.stdout).toContain("600 agent");
    expect(out.stdout).toContain("You are the provisioning test agent.");
  });

  test("the git identity: the agent's name over the bottle's, the bottle's email", async () => {
    const out = await inBottle("git config user.name; git config user.email");
    expect(out.stdout.trim().split("\n")).toEqual(["Agent Name", "bottle@example.test"]);
  });

  test("the bottle's image.dockerfile adds layers on top of the agent image", async () => {
    const out = await inBottle("cat /opt/custom-layer; whoami");
    expect(out.stdout).toContain("custom-layer");
    expect(out.stdout).toContain("agent");
  });

  test("extra CA certs are trusted inside: HTTPS to a host with a test-CA certificate works through the gate", async () => {
    const out = await inBottle("curl -sS --max-time 10 https://secure.test/hello");
    expect(out.stdout).toContain("secure hello from secure.test /hello");
    // And the trust comes from the CA: without it curl refuses.
    const strict = await inBottle("curl -sS --max-time 10 --cacert /dev/null --capath /nonexistent https://secure.test/ || echo refused");
    expect(strict.stdout).toContain("refused");
  });
});

describeDocker("workspace: copy", () => {
  test("a copied repository's commits and what was left uncommitted come back as its branch; the host's .git never goes in", async () => {
    const sandbox = makeSandbox();
    // The project is the agent user's and the tests run as root: the user's git trusts it, as on their own repository.
    writeHostGitConfig(sandbox);
    const agent = uniqueId("copy");
    writeFile(join(sandbox.project, "file.txt"), "one\n");
    git(sandbox.project, "init", "-q", "-b", "main");
    git(sandbox.project, "add", ".");
    git(sandbox.project, "commit", "-qm", "first");
    // A credential in the host repository's config (a remote URL with a token) must not reach the bottle.
    git(sandbox.project, "remote", "add", "origin", "https://user:ghp_copyCanaryToken1234567890@example.test/repo.git");
    const before = git(sandbox.project, "rev-parse", "HEAD");
    writeFile(join(sandbox.config, "bottles", "copy.yaml"), "workspace: copy\n");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: copy\n---\n");
    const out = await runBottle(sandbox, [
      "up",
      agent,
      "--yes",
      "--",
      "sh",
      "-c",
      "grep -rqs ghp_copyCanaryToken /workspace /home && echo TOKEN-IN-BOTTLE; echo two >> file.txt && git -c user.name=a -c user.email=a@a commit -qam second && echo draft > new.txt && echo three >> file.txt",
    ]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).not.toContain("TOKEN-IN-BOTTLE");
    // The host project is untouched.
    expect(git(sandbox.project, "rev-parse", "HEAD")).toBe(before);
    expect(readFileSync(join(sandbox.project, "file.txt"), "utf8")).toBe("one\n");
    const branch = `bottle/${agent}`;
    expect(git(sandbox.project, "log", "--format=%s", `${before}..${branch}`).split("\n")).toEqual([`WIP (bottle): uncommitted work in bottle-${agent}`, "second"]);
    expect(git(sandbox.project, "show", `${branch}:new.txt`)).toBe("draft");
    expect(git(sandbox.project, "show", `${branch}:file.txt`)).toBe("one\ntwo\nthree");
    expect(existsSync(join(sandbox.state, "bottle", "saved"))).toBe(false);
    expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
  });

  test("nothing new: nothing saved", async () => {
    const sandbox = makeSandbox();
    // The project is the agent user's and the tests run as root: the user's git trusts it, as on their own repository.
    writeHostGitConfig(sandbox);
    const agent = uniqueId("copy");
    writeFile(join(sandbox.project, "file.txt"), "one\n");
    git(sandbox.project, "init", "-q", "-b", "main");
    git(sandbox.project, "add", ".");
    git(sandbox.project, "commit", "-qm", "first");
    writeFile(join(sandbox.config, "bottles", "copy.yaml"), "workspace: copy\n");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: copy\n---\n");
    const out = await runBottle(sandbox, ["up", agent, "--yes", "--", "cat", "file.txt"]);
    expect(out.stdout).toBe("one\n");
    expect(out.stderr).not.toContain("saved work");
    expect(existsSync(join(sandbox.state, "bottle", "saved"))).toBe(false);
  });
});

describeDocker("interactive Claude Code", () => {
  test("lands straight at Claude Code's prompt in bypass-permissions mode, with no dialog in between", async () => {
    const sandbox = makeSandbox({ ANTHROPIC_API_KEY: `sk-ant-api03-${"x".repeat(40)}` });
    chownSync(sandbox.project, 1000, 1000);
    const agent = uniqueId("tty");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: tty\n---\nBe brief.\n");
    const command = bottleArgv(["up", agent, "--yes"])
      .map((arg) => `'${arg.replace(/'/g, "'\\''")}'`)
      .join(" ");
    const proc = Bun.spawn(["script", "-qefc", command, "/dev/null"], {
      cwd: sandbox.project,
      env: { ...sandbox.env, TERM: "xterm-256color", COLUMNS: "120", LINES: "40" },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    let screen = "";
    const reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stdout) screen += decoder.decode(chunk);
    })();
    const deadline = Date.now() + 180_000;
    while (!screen.includes("bypass permissions on") && Date.now() < deadline) await Bun.sleep(250);
    const plain = screen.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, "");
    expect(plain).toContain("bypass permissions on");
    for (const dialog of ["Choose the text style", "Do you trust the files", "Yes, I accept", "Do you want to use this API key", "Security notes"])
      expect(plain).not.toContain(dialog);
    // Ctrl-D twice leaves Claude Code; the bottle is torn down and the code passes through.
    proc.stdin.write("\x04");
    await proc.stdin.flush();
    await Bun.sleep(500);
    proc.stdin.write("\x04");
    await proc.stdin.flush();
    const code = await proc.exited;
    await reader;
    expect(code).toBe(0);
    expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
    removeLabelled(`bottle.agent=${agent}`);
  }, 300_000);
});
