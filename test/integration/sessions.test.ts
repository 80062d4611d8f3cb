import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync } from "node:fs";
import { join } from "node:path";
import { bottleArgv, makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { type ApiServer, apiManifest, startApiServer } from "../helpers/api-server.ts";
import { BASE_IMAGE, describeDocker, docker, dockerOk, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { Terminal } from "../helpers/terminal.ts";
import { homeVolumeName } from "../../lib/homes.ts";
import { makeTestCa, type TestCa } from "../helpers/tls.ts";

/**
 * Sessions that last, with the real Claude Code against the test API, in a
 * real terminal: `bottle up` runs Claude Code in a session that a closed
 * terminal or Ctrl-] leaves running, `bottle attach` comes back to the same
 * process with its screen; Claude's home survives `down`, so `--continue`
 * picks the conversation up; `bottle run -p` is headless. No token ever
 * reaches the kept home.
 */

const TOKEN = `sk-ant-oat01-${crypto.randomUUID().replace(/-/g, "")}-sessions`;

describeDocker("sessions: detach, reattach, resume after down, headless runs", () => {
  let sandbox: Sandbox;
  let ca: TestCa;
  let api: ApiServer;
  let terminal: Terminal | undefined;
  const agent = uniqueId("sess");
  const label = `bottle.test=${agent}`;
  const name = `bottle-${agent}`;

  const bottle = (args: string[]) => runBottle(sandbox, args);
  const claudePid = () =>
    docker("top", name, "-eo", "pid,comm")
      .split("\n")
      .find((line) => /\sclaude$/.test(line))
      ?.trim()
      .split(/\s+/)[0];

  beforeAll(() => {
    sandbox = makeSandbox({ CLAUDE_CODE_OAUTH_TOKEN: TOKEN });
    chownSync(sandbox.project, 1000, 1000);
    ca = makeTestCa();
    writeFile(join(sandbox.config, "bottles", "sessions.yaml"), `${apiManifest(ca).join("\n")}\n`);
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: sessions\n---\nBe brief.\n");
    api = startApiServer(ca, label);
  });

  afterAll(async () => {
    terminal?.close();
    await bottle(["down", "--all", "--forget"]);
    removeLabelled(label, `bottle.agent=${agent}`);
  }, 120_000);

  test(
    "up → ask → answer → detach → attach: the same Claude Code process, its answer still on screen, at the new terminal's size",
    async () => {
      const joined = api.joinWhenCreated(`${name}-egress`);
      terminal = new Terminal(bottleArgv(["up", agent, "--yes"]), { env: sandbox.env, cwd: sandbox.project });
      await joined;
      await terminal.waitFor("bypass permissions on", 240_000);
      terminal.type("what is in the first bottle?");
      await terminal.waitFor("bottle-test answer: what is in the first bottle?");
      const pid = claudePid();
      expect(pid).toBeDefined();

      // Ctrl-] detaches: bottle up ends, Claude Code goes on.
      terminal.keys("C-]");
      expect(await terminal.waitForExit()).toBe(0);
      expect(terminal.screen()).toContain(`bottle attach ${name}`);
      const ls = JSON.parse((await bottle(["ls", "--json"])).stdout) as Array<{ name: string; session: string }>;
      expect(ls.find((row) => row.name === name)?.session).toBe("detached");

      // Back, in a terminal of another size: the earlier answer is there, the process the same.
      terminal.resize(100, 30);
      terminal.respawn(bottleArgv(["attach", name]), { env: sandbox.env, cwd: sandbox.project });
      await terminal.waitFor("bottle-test answer: what is in the first bottle?");
      expect(claudePid()).toBe(pid!);
      const width = await bottle(["exec", name, "--", "tmux", "-S", "/run/bottle/session.sock", "display-message", "-p", "#{window_width}"]);
      expect(width.stdout.trim()).toBe("100");
      expect(JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session).toBe("attached");
      terminal.keys("C-]");
      expect(await terminal.waitForExit()).toBe(0);
    },
    400_000,
  );

  test(
    "down keeps Claude's home; up --continue sends the earlier turn to the API; the home holds no token",
    async () => {
      expect((await bottle(["down", name])).exitCode).toBe(0);
      const homes = JSON.parse((await bottle(["ls", "--all", "--json"])).stdout) as { homes: Array<{ volume: string; agent: string; usedBy: string[] }> };
      const home = homes.homes.find((entry) => entry.agent === agent);
      expect(home?.usedBy).toEqual([]);

      const before = api.requests().length;
      const joined = api.joinWhenCreated(`${name}-egress`);
      terminal!.respawn(bottleArgv(["up", agent, "--yes", "--continue"]), { env: sandbox.env, cwd: sandbox.project });
      await joined;
      await terminal!.waitFor("bypass permissions on", 120_000);
      terminal!.type("and the second?");
      await terminal!.waitFor("bottle-test answer: and the second?");
      const resumed = api.requests().slice(before).find((request) => request.body.includes("and the second?"));
      expect(resumed?.body).toContain("what is in the first bottle?");
      // Ctrl-D twice ends Claude Code: the launch tears the bottle down, the home stays.
      expect(await terminal!.leaveClaude()).toBe(0);
      expect(dockerOk("container", "inspect", name)).toBe(false);

      // The gate held the token: it reached the API, never the kept home.
      expect(api.requests().some((request) => request.authorization === `Bearer ${TOKEN}`)).toBe(true);
      const grep = Bun.spawnSync(["docker", "run", "--rm", "-v", `${home!.volume}:/home:ro`, BASE_IMAGE, "grep", "-rlF", TOKEN.slice(14), "/home"], { stdout: "pipe" });
      expect(grep.stdout.toString()).toBe("");
      const transcripts = Bun.spawnSync(["docker", "run", "--rm", "-v", `${home!.volume}:/home:ro`, BASE_IMAGE, "sh", "-c", "ls /home/projects/-workspace/"], { stdout: "pipe" });
      expect(transcripts.stdout.toString()).toMatch(/\.jsonl/);
    },
    400_000,
  );

  test(
    "a closed terminal detaches too; a SIGKILLed launcher leaves the session reattachable and cleanup finds it; two terminals share one session; an exited Claude is said so",
    async () => {
      // A test before that failed half-way must not leave its bottle to this one.
      await bottle(["down", "--all"]);
      // --detach starts Claude Code in its session at once.
      let joined = api.joinWhenCreated(`${name}-egress`);
      const up = await bottle(["up", agent, "--yes", "--detach"]);
      await joined;
      expect(up.exitCode).toBe(0);
      expect(JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session).toBe("detached");

      // Two terminals attached: the same screen in both.
      const first = new Terminal(bottleArgv(["attach", name]), { env: sandbox.env, cwd: sandbox.project });
      const second = new Terminal(bottleArgv(["attach", name]), { env: sandbox.env, cwd: sandbox.project });
      try {
        await first.waitFor("bypass permissions on", 60_000);
        await second.waitFor("bypass permissions on", 60_000);
        first.type("shared screen?");
        await first.waitFor("bottle-test answer: shared screen?");
        await second.waitFor("bottle-test answer: shared screen?");
        // Closing a terminal (its tmux session killed: SIGHUP) is a detach, not a stop.
        first.close();
        second.close();
        await Bun.sleep(1_000);
        expect(JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session).toBe("detached");
      } finally {
        first.close();
        second.close();
      }

      // Claude Code ends (Ctrl-D twice in its session): ls says exited, attach says so and how to resume.
      // Both presses in one exec (Claude Code wants the second soon after the first), again until it has ended.
      const ctrlD = "tmux -S /run/bottle/session.sock send-keys -t claude C-d; sleep 0.3; tmux -S /run/bottle/session.sock send-keys -t claude C-d";
      const deadline = Date.now() + 60_000;
      while (JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session !== "exited" && Date.now() < deadline) {
        await bottle(["exec", name, "--", "sh", "-c", ctrlD]);
        await Bun.sleep(2_000);
      }
      expect(JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session).toBe("exited");
      const attach = await bottle(["attach", name]);
      expect(attach.exitCode).toBe(1);
      expect(attach.stderr).toContain(`Claude Code in ${name} has exited (exit code 0)`);
      expect(attach.stderr).toContain("--continue");
      expect((await bottle(["down", name])).exitCode).toBe(0);

      // A launcher killed with SIGKILL: the bottle and its session stay and can be attached; cleanup lists it.
      joined = api.joinWhenCreated(`${name}-egress`);
      const launcher = new Terminal(bottleArgv(["up", agent, "--yes"]), { env: sandbox.env, cwd: sandbox.project });
      try {
        await joined;
        await launcher.waitFor("bypass permissions on", 120_000);
        const owner = JSON.parse(await Bun.file(join(sandbox.state, "bottle", "bottles", name, "owner.json")).text()) as { pid: number };
        process.kill(owner.pid, "SIGKILL");
        await Bun.sleep(1_000);
        expect(JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session).toMatch(/attached|detached/);
        const orphans = JSON.parse((await bottle(["cleanup", "--json"])).stdout) as Array<{ name: string }>;
        expect(orphans.map((orphan) => orphan.name)).toContain(name);
        launcher.respawn(bottleArgv(["attach", name]), { env: sandbox.env, cwd: sandbox.project });
        await launcher.waitFor("bypass permissions on", 60_000);
        launcher.keys("C-]");
        expect(await launcher.waitForExit()).toBe(0);
      } finally {
        launcher.close();
      }
      expect((await bottle(["cleanup", "--yes"])).exitCode).toBe(0);
      expect(dockerOk("container", "inspect", name)).toBe(false);
    },
    400_000,
  );

  test(
    "bottle run -p: the answer on stdout and exit 0; an API error exits 1; --resume with an unknown id lists the known ones",
    async () => {
      // A test before that failed half-way must not leave its bottle to this one.
      await bottle(["down", "--all"]);
      let joined = api.joinWhenCreated(`${name}-egress`);
      const ok = await bottle(["run", agent, "--yes", "-p", "say something headless"]);
      await joined;
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toContain("bottle-test answer: say something headless");
      expect(dockerOk("container", "inspect", name)).toBe(false);

      joined = api.joinWhenCreated(`${name}-egress`);
      const failed = await bottle(["run", agent, "--yes", "-p", "please-fail now"]);
      await joined;
      expect(failed.exitCode).toBe(1);

      joined = api.joinWhenCreated(`${name}-egress`);
      const unknown = await bottle(["run", agent, "--yes", "--resume", "no-such-conversation", "-p", "hello"]);
      await joined;
      expect(unknown.exitCode).toBe(1);
      expect(unknown.stderr).toContain("no conversation no-such-conversation");
      expect(unknown.stderr).toMatch(/resume one of these \(newest first\): [0-9a-f-]{36}/);
      expect(dockerOk("container", "inspect", name)).toBe(false);

      // Detached, the headless run goes on in the bottle's session; attach prints what it answered once it ended.
      joined = api.joinWhenCreated(`${name}-egress`);
      const detached = await bottle(["run", agent, "--yes", "--detach", "-p", "answer me later"]);
      await joined;
      expect(detached.exitCode).toBe(0);
      expect(detached.stdout.trim()).toBe(name);
      const deadline = Date.now() + 60_000;
      while (JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session !== "exited" && Date.now() < deadline) await Bun.sleep(500);
      const later = await bottle(["attach", name]);
      expect(later.stdout).toContain("bottle-test answer: answer me later");
      expect(later.stderr).toContain(`Claude Code in ${name} has exited (exit code 0)`);
      expect((await bottle(["down", name])).exitCode).toBe(0);
    },
    400_000,
  );

  test(
    "up --detach -- CMD runs the command in the session: attach shows it, Ctrl-] leaves it running",
    async () => {
      // A test before that failed half-way must not leave its bottle to this one.
      await bottle(["down", "--all"]);
      const joined = api.joinWhenCreated(`${name}-egress`);
      const up = await bottle(["up", agent, "--yes", "--detach", "--", "sh", "-c", "echo command-in-session; exec sleep 600"]);
      await joined;
      expect(up.exitCode).toBe(0);
      expect(up.stderr).toContain(`is running sh -c "echo command-in-session; exec sleep 600"`);
      const attached = new Terminal(bottleArgv(["attach", name]), { env: sandbox.env, cwd: sandbox.project });
      try {
        await attached.waitFor("command-in-session");
        attached.keys("C-]");
        expect(await attached.waitForExit()).toBe(0);
      } finally {
        attached.close();
      }
      expect(JSON.parse((await bottle(["ls", "--json"])).stdout).find((row: { name: string }) => row.name === name)?.session).toBe("detached");
      expect((await bottle(["down", name])).exitCode).toBe(0);
    },
    400_000,
  );
});

describeDocker("a kept home from another bottle version", () => {
  test("is refused before anything is created, with the reason and the fix", async () => {
    const sandbox = makeSandbox({ CLAUDE_CODE_OAUTH_TOKEN: TOKEN });
    const agent = uniqueId("oldhome");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: old home\n---\n");
    const volume = homeVolumeName(sandbox.project, agent, join(sandbox.state, "bottle"));
    docker("volume", "create", "--label", "bottle.home=1", "--label", "bottle.home-format=0", "--label", `bottle.state=${join(sandbox.state, "bottle")}`, volume);
    try {
      const out = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
      expect(out.exitCode).toBe(1);
      expect(out.stderr).toContain(`the kept home ${volume} was made by another version of bottle (home format 0, this one reads 1)`);
      expect(out.stderr).toContain(`docker volume rm ${volume}`);
      expect(dockerOk("container", "inspect", `bottle-${agent}`)).toBe(false);
    } finally {
      docker("volume", "rm", volume);
    }
  }, 120_000);
});
