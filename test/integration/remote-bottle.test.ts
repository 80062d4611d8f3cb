import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { realExec } from "../../lib/exec.ts";
import { removeStaleImages, type StaleImage } from "../../lib/image-cleanup.ts";
import { HASH_LABEL } from "../../lib/images.ts";
import { BASE_IMAGE, docker, dockerOk, uniqueId } from "../helpers/docker.ts";
import { git, initRepo, writeHostGitConfig } from "../helpers/git-project.ts";
import { describeRemote, runDocker } from "../helpers/remote-engine.ts";

/**
 * A whole bottle on a remote Docker engine (the stand-in `.ci/remote-engine`
 * starts: another dockerd, in its own network and mount namespaces, over TCP
 * with TLS): chosen with --context and found again without it; the gate
 * refuses what it must there; the token stays in the gate; the workspace goes
 * in as a branch and its commit comes back; `down` removes it all there; and
 * the local engine never sees one of its objects. An engine that does not
 * answer fails in seconds, in one line.
 */

const TOKEN = `sk-ant-oat01-${crypto.randomUUID().replace(/-/g, "")}-remote`;

describeRemote("a bottle on a remote engine", (engine) => {
  let sandbox: Sandbox;
  const agent = uniqueId("remote");
  const name = `bottle-${agent}`;
  const label = `bottle.agent=${agent}`;
  const bottle = (args: string[]) => runBottle(sandbox, args);
  /** What of the agent's objects each engine has. */
  const objectsOn = (run: (...args: string[]) => string) => [
    ...run("ps", "-a", "--filter", `label=${label}`, "--format", "{{.Names}}").split("\n"),
    ...run("network", "ls", "--filter", `label=${label}`, "--format", "{{.Name}}").split("\n"),
    ...run("volume", "ls", "--filter", `label=${label}`, "--format", "{{.Name}}").split("\n"),
  ].filter(Boolean);

  beforeAll(() => {
    // The contexts live in the real user's docker config, not the sandbox HOME's.
    sandbox = makeSandbox({ CLAUDE_CODE_OAUTH_TOKEN: TOKEN, DOCKER_CONFIG: process.env.DOCKER_CONFIG || join(homedir(), ".docker") });
    writeHostGitConfig(sandbox);
    initRepo(sandbox, sandbox.project, { "README.md": "remote\n" });
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: remote engine test\n---\n");
  });

  afterAll(async () => {
    await bottle(["down", "--all", "--forget"]);
    for (const object of objectsOn(engine.docker)) runDocker(["--context", engine.context, "rm", "-f", object]);
  }, 300_000);

  test(
    "up --context runs it there, the workspace as a branch (a remote engine cannot mount this machine's files); nothing of it on the local engine",
    async () => {
      const up = await bottle(["up", agent, "--yes", "--detach", "--context", engine.context, "--", "sleep", "infinity"]);
      expect(up.exitCode).toBe(0);
      expect(up.stdout.trim()).toBe(name);
      expect(up.stderr).toContain(`branch of ${sandbox.project}`);
      expect(objectsOn(engine.docker)).toEqual(expect.arrayContaining([name, `${name}-gate`, `${name}-internal`, `${name}-egress`]));
      expect(objectsOn(docker)).toEqual([]);
      const ls = JSON.parse((await bottle(["ls", "--json"])).stdout) as Array<{ name: string; engine: string; status: string }>;
      expect(ls.find((row) => row.name === name)).toMatchObject({ engine: engine.context, status: "running" });
    },
    600_000,
  );

  test(
    "found without --context: exec there; the gate refuses a host not allowed and an IP literal, and its log comes back; the token stays in the gate",
    async () => {
      const probe = await bottle([
        "exec", name, "--", "sh", "-c",
        "curl -sS -o /dev/null -D - --max-time 10 http://denied.test/ | grep -i '^X-Bottle-Egress-Rule'; curl -sS -o /dev/null -D - --max-time 10 http://1.1.1.1/ | grep -i '^X-Bottle-Egress-Rule'",
      ]); // prettier-ignore
      expect(probe.stdout.replace(/\r/g, "")).toBe("X-Bottle-Egress-Rule: not-allowed\nX-Bottle-Egress-Rule: ip-literal\n");
      const logs = await bottle(["logs", name, "--gate", "egress", "--json"]);
      expect(logs.stdout).toContain('"host":"denied.test"');
      // The bottle has the placeholder; the real token is in the gate only.
      const inside = await bottle(["exec", name, "--", "sh", "-c", "env; cat ~/.claude.json"]);
      expect(inside.stdout).toContain("bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN");
      expect(inside.stdout).not.toContain(TOKEN);
      expect(engine.docker("exec", `${name}-gate`, "sh", "-c", `grep -c ${TOKEN} /etc/bottle/credentials.json || grep -rlc ${TOKEN} /etc/bottle`)).not.toBe("0");
    },
    300_000,
  );

  test(
    "a commit in its branch workspace comes back as the bottle's branch; down removes everything there but Claude's kept home, which ls --all and cleanup --homes find there",
    async () => {
      const commit = await bottle(["exec", name, "--", "sh", "-c", "echo far > far.txt && git add far.txt && git -c user.name=a -c user.email=a@b.test commit -qm 'made far away'"]);
      expect(commit.exitCode).toBe(0);
      expect((await bottle(["down", name])).exitCode).toBe(0);
      expect(git(sandbox, sandbox.project, "log", "-1", "--format=%s", `bottle/${agent}`)).toBe("made far away");
      expect(git(sandbox, sandbox.project, "show", `bottle/${agent}:far.txt`)).toBe("far");
      const home = engine.docker("volume", "ls", "--filter", "label=bottle.home", "--filter", `label=${label}`, "--format", "{{.Name}}");
      expect(objectsOn(engine.docker)).toEqual([home]);
      const homes = JSON.parse((await bottle(["ls", "--all", "--json"])).stdout) as { homes: Array<{ volume: string; engine: string }> };
      expect(homes.homes.find((row) => row.volume === home)?.engine).toBe(engine.context);
      expect((await bottle(["cleanup", "--homes", "--yes"])).exitCode).toBe(0);
      expect(objectsOn(engine.docker)).toEqual([]);
      expect(objectsOn(docker)).toEqual([]);
    },
    300_000,
  );

  test(
    "merge with DOCKER_HOST on the remote engine: the scan runs there on the repository's bundle; a secret stops it, the clean branch merges",
    async () => {
      const branch = `bottle/${agent}`;
      const clean = git(sandbox, sandbox.project, "rev-parse", branch);
      const start = git(sandbox, sandbox.project, "rev-parse", "HEAD");
      // A commit with a secret on the bottle's branch, as its agent would have made it.
      const side = join(sandbox.home, "secret-worktree");
      git(sandbox, sandbox.project, "worktree", "add", "-q", side, branch);
      const key = ["AKIA", "Z3QBMIJ5NZ4XK7QW"].join("");
      writeFileSync(join(side, "config.ini"), `aws_access_key_id = ${key}\n`);
      git(sandbox, side, "add", "config.ini");
      git(sandbox, side, "commit", "-qm", "add config");
      git(sandbox, sandbox.project, "worktree", "remove", "--force", side);

      // No path of this machine can be mounted on that engine: a scan that tried would fail, not pass.
      const leaked = await runBottle(sandbox, ["merge", name], { env: engine.env });
      expect(leaked.exitCode).toBe(1);
      expect(leaked.stderr).toMatch(/gitleaks found \d+ secret\(s\) in bottle\/.*'s commits: nothing was merged/);
      expect(leaked.stderr).toContain("config.ini:1");
      expect(git(sandbox, sandbox.project, "rev-parse", "HEAD")).toBe(start);

      git(sandbox, sandbox.project, "branch", "-f", branch, clean);
      const merged = await runBottle(sandbox, ["merge", name], { env: engine.env });
      expect(merged.exitCode).toBe(0);
      expect(git(sandbox, sandbox.project, "log", "-1", "--format=%s")).toBe("made far away");
      expect(objectsOn(docker)).toEqual([]);
    },
    300_000,
  );

  test("cleanup --images finds bottle's unused images on the remote engine it ran on, and they are removed there", async () => {
    const hash = crypto.randomUUID().replace(/-/g, "").repeat(2);
    const tag = `bottle-custom:${hash.slice(0, 16)}`;
    const built = runDocker(["--context", engine.context, "build", "--quiet", "--tag", tag, "-"], {
      stdin: new Blob([`FROM ${BASE_IMAGE}\nLABEL ${HASH_LABEL}="${hash}" bottle.image="custom"\n`]),
    });
    expect(built.exitCode).toBe(0);
    try {
      const listed = await bottle(["cleanup", "--images", "--json"]);
      expect(listed.exitCode).toBe(0);
      const found = (JSON.parse(listed.stdout) as { images: StaleImage[] }).images.find((image) => image.tag === tag);
      expect(found).toMatchObject({ kind: "custom", engine: engine.context });
      expect(dockerOk("image", "inspect", tag)).toBe(false);
      // Removed through the engine it names (the CLI's --yes would also clear the local engine's, which later tests use).
      const removed = await removeStaleImages(realExec, [found!], { context: engine.context, endpoint: engine.host, remote: true });
      expect(removed.map((image) => image.tag)).toEqual([tag]);
      expect(runDocker(["--context", engine.context, "image", "inspect", tag]).exitCode).not.toBe(0);
    } finally {
      runDocker(["--context", engine.context, "rmi", "-f", tag]);
    }
  }, 120_000);

  test(
    "DOCKER_HOST with TLS, and an ssh:// context, reach the same engine; the plan records which",
    async () => {
      const viaEnv = await runBottle(sandbox, ["up", agent, "--yes", "--", "sh", "-c", "echo from-docker-host"], { env: engine.env });
      expect(viaEnv.exitCode).toBe(0);
      expect(viaEnv.stdout).toContain("from-docker-host");
      const dry = JSON.parse((await runBottle(sandbox, ["up", agent, "--dry-run", "--json"], { env: engine.env })).stdout) as { engine?: { host?: string; remote: boolean } };
      expect(dry.engine).toMatchObject({ host: engine.host, remote: true });
      if (engine.ssh) {
        const viaSsh = await bottle(["up", agent, "--yes", "--context", engine.ssh.context, "--", "sh", "-c", "echo from-ssh"]);
        expect(viaSsh.exitCode).toBe(0);
        expect(viaSsh.stdout).toContain("from-ssh");
      }
      expect(objectsOn(docker)).toEqual([]);
    },
    300_000,
  );

  test("workspace: mount asked for on a remote engine is refused before anything is made, with the reason", async () => {
    writeFile(join(sandbox.config, "bottles", "mounted.yaml"), "workspace: mount\n");
    writeFile(join(sandbox.config, "agents", `${agent}-m.md`), "---\nbottle: mounted\n---\n");
    const out = await bottle(["up", `${agent}-m`, "--yes", "--detach", "--context", engine.context]);
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain("cannot mount this one's files");
    expect(out.stderr).toContain("workspace: branch");
    // A port would open on the engine's machine, not this one: refused too.
    const ports = await bottle(["up", agent, "--yes", "--detach", "--context", engine.context, "-p", "3000"]);
    expect(ports.exitCode).toBe(2);
    expect(ports.stderr).toContain("a forwarded port would open on that machine, not this one");
  });

  test("an engine that does not answer fails in seconds, one line naming it; doctor --context checks the engine", async () => {
    const dead = `bottle-dead-${crypto.randomUUID().slice(0, 8)}`;
    runDocker(["context", "create", dead, "--docker", `host=${engine.filteredHost}`], { env: { DOCKER_CONFIG: sandbox.env.DOCKER_CONFIG! } });
    try {
      const started = performance.now();
      const out = await bottle(["up", agent, "--yes", "--detach", "--context", dead]);
      expect(performance.now() - started).toBeLessThan(15_000);
      expect(out.exitCode).toBe(1);
      expect(out.stderr).toContain(`the docker engine ${dead} (${engine.filteredHost}) does not answer: no answer within 5 s`);
    } finally {
      runDocker(["context", "rm", "-f", dead], { env: { DOCKER_CONFIG: sandbox.env.DOCKER_CONFIG! } });
    }
    const doctor = JSON.parse((await bottle(["doctor", "--context", engine.context, "--json"])).stdout) as { checks: Array<{ name: string; status: string; detail: string }> };
    expect(doctor.checks.find((check) => check.name === "docker daemon")?.status).toBe("ok");
    expect(doctor.checks.find((check) => check.name === "docker engine")?.detail).toContain(engine.host);
    expect(doctor.checks.find((check) => check.name === "disk space")?.detail).toContain("on the engine");
  });
});
