import { afterAll, describe, expect, test } from "bun:test";
import type { BottleHandle } from "../../lib/backends/types.ts";
import type { ExecInContainer } from "../../lib/docker.ts";
import { checkResumable, conversationIds, projectKey } from "../../lib/conversations.ts";
import { BottleError } from "../../lib/errors.ts";
import type { RunResult } from "../../lib/exec.ts";
import { PROMPT_PATH } from "../../lib/provision.ts";
import { agentCommand, attachSession, SESSION_SOCKET, sessionState, sessionStateFrom, startAttached, startSession } from "../../lib/session.ts";
import { caught, cleanupTempDirs, makePlan } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

/** A bottle that records what runs in it and answers from `answer` (argv → stdout/exit code). */
function fakeBottle(processes: string[], answer: (argv: string[]) => Partial<RunResult> = () => ({})) {
  const calls: { argv: string[]; options?: ExecInContainer; interactive: boolean }[] = [];
  const result = (argv: string[]): RunResult => ({ argv, exitCode: 0, stdout: "", stderr: "", ...answer(argv) });
  const bottle: BottleHandle = {
    name: "bottle-test",
    async exec(argv, options) {
      calls.push({ argv, options, interactive: false });
      return result(argv);
    },
    async interactive(argv, options) {
      calls.push({ argv, options, interactive: true });
      return result(argv).exitCode;
    },
    async copyIn() {},
    async copyOut() {},
    async logs() {
      return 0;
    },
    async processes() {
      return processes;
    },
    async outOfMemoryKills() {
      return 0;
    },
  };
  return { bottle, calls };
}

const SERVER = `tmux: server tmux -S ${SESSION_SOCKET} -f /etc/bottle-tmux.conf new-session -d -s claude`;
const CLIENT = `tmux: client tmux -S ${SESSION_SOCKET} -f /etc/bottle-tmux.conf attach-session -t claude`;
const COMMAND = "bottle-session /bin/sh /usr/local/bin/bottle-session claude --dangerously-skip-permissions";

describe("agentCommand", () => {
  test("the default runs Claude Code with permissions skipped", () => {
    expect(agentCommand(makePlan(), [])).toEqual(["bottle-run", "claude", "--dangerously-skip-permissions"]);
  });

  test("adds the system prompt file and the model only when set", () => {
    expect(agentCommand(makePlan({ agent: { hasPrompt: true } }), [])).toEqual([
      "bottle-run", "claude", "--dangerously-skip-permissions", "--append-system-prompt-file", PROMPT_PATH,
    ]); // prettier-ignore
    expect(agentCommand(makePlan({ agent: { model: "claude-opus-4" } }), [])).toEqual([
      "bottle-run", "claude", "--dangerously-skip-permissions", "--model", "claude-opus-4",
    ]); // prettier-ignore
  });

  test("a launch's flags go after the agent's: its --model wins, --continue, --resume with and without an id, a first message", () => {
    const plan = makePlan({ agent: { model: "from-agent" } });
    const base = ["bottle-run", "claude", "--dangerously-skip-permissions"];
    expect(agentCommand(plan, [], { model: "from-flag" })).toEqual([...base, "--model", "from-flag"]);
    expect(agentCommand(plan, [], { continue: true })).toEqual([...base, "--model", "from-agent", "--continue"]);
    expect(agentCommand(plan, [], { resume: true })).toEqual([...base, "--model", "from-agent", "--resume"]);
    expect(agentCommand(plan, [], { resume: "abc" })).toEqual([...base, "--model", "from-agent", "--resume", "abc"]);
    expect(agentCommand(plan, [], { prompt: "--not-a-flag" })).toEqual([...base, "--model", "from-agent", "--not-a-flag"]);
  });

  test("headless: --print with the prompt, the output format when asked; a first message is not added to it", () => {
    const base = ["bottle-run", "claude", "--dangerously-skip-permissions"];
    expect(agentCommand(makePlan(), [], { print: { prompt: "hi" } })).toEqual([...base, "--print", "hi"]);
    expect(agentCommand(makePlan(), [], { print: { prompt: "hi", outputFormat: "json" }, prompt: "ignored" })).toEqual([...base, "--print", "hi", "--output-format", "json"]);
  });

  test("a passthrough command wins over everything", () => {
    const plan = makePlan({ agent: { hasPrompt: true, model: "m" } });
    expect(agentCommand(plan, ["bash", "-lc", "echo hi"], { continue: true })).toEqual(["bottle-run", "bash", "-lc", "echo hi"]);
    expect(agentCommand(plan, ["claude", "--help"])).toEqual(["bottle-run", "claude", "--help"]);
  });
});

describe("sessionStateFrom", () => {
  const interactive = makePlan();
  const command = makePlan({ interactive: false });

  test("a server with clients is attached (counted), without is detached", () => {
    expect(sessionStateFrom([SERVER, COMMAND, CLIENT, CLIENT, "claude claude --dangerously-skip-permissions"], interactive)).toEqual({ state: "attached", clients: 2 });
    expect(sessionStateFrom([SERVER, COMMAND, "claude claude"], interactive)).toEqual({ state: "detached", clients: 0 });
  });

  test("a server whose command ended (keeping the last screen) is exited, even with a terminal on it", () => {
    expect(sessionStateFrom([SERVER], interactive)).toEqual({ state: "exited" });
    expect(sessionStateFrom([SERVER, CLIENT], interactive)).toEqual({ state: "exited" });
  });

  test("a tmux the agent runs on another socket is not the session", () => {
    const own = ["tmux: server tmux -S /tmp/mine new-session -d", "tmux: client tmux -S /tmp/mine attach"];
    expect(sessionStateFrom(own, interactive)).toEqual({ state: "exited" });
    expect(sessionStateFrom([SERVER, COMMAND, ...own], interactive)).toEqual({ state: "detached", clients: 0 });
  });

  test("a process whose args only mention the socket is neither server nor client", () => {
    expect(sessionStateFrom([`cat cat ${SESSION_SOCKET}`], interactive)).toEqual({ state: "exited" });
  });

  test("no server: exited for a Claude Code bottle, none for a bottle started with a command", () => {
    expect(sessionStateFrom([], interactive)).toEqual({ state: "exited" });
    expect(sessionStateFrom([], command)).toEqual({ state: "none" });
  });
});

describe("sessions in a bottle", () => {
  const plan = makePlan({ workspace: { user: { uid: 1234, gid: 5678 } } });

  test("--detach starts the session with no terminal, as the workspace's user, through bottle-session", async () => {
    const { bottle, calls } = fakeBottle([]);
    await startSession(bottle, plan, { continue: true });
    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call!.interactive).toBe(false);
    expect(call!.options).toMatchObject({ user: "1234:5678", workdir: "/workspace" });
    expect(call!.argv.slice(0, 5)).toEqual(["tmux", "-S", SESSION_SOCKET, "-f", "/etc/bottle-tmux.conf"]);
    expect(call!.argv).toContain("-d");
    expect(call!.argv.slice(call!.argv.indexOf("--") + 1)).toEqual(["bottle-session", "claude", "--dangerously-skip-permissions", "--continue"]);
  });

  test("an attached start runs on the terminal through bottle-attach, then detaches its own client by the id it gave", async () => {
    const { bottle, calls } = fakeBottle([], (argv) => (argv[0] === "bottle-attach" ? { exitCode: 7 } : {}));
    expect(await startAttached(bottle, plan)).toBe(7);
    expect(calls.map((call) => call.interactive)).toEqual([true, false]);
    const [attach, detach] = calls;
    const id = attach!.argv[1]!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(attach!.argv[2]).toBe("start");
    expect(attach!.argv).toContain("new-session");
    expect(attach!.argv).toContain("-A");
    expect(detach!.argv.slice(-2)).toEqual([id, SESSION_SOCKET]);
    expect(detach!.options).toMatchObject({ check: false, user: "1234:5678" });
  });

  test("the client is detached also when the terminal's exec fails", async () => {
    const { bottle, calls } = fakeBottle([]);
    bottle.interactive = async (argv, options) => {
      calls.push({ argv, options, interactive: true });
      throw new Error("docker went away");
    };
    expect(String(await caught(startAttached(bottle, plan)))).toContain("docker went away");
    expect(calls.at(-1)?.argv).toContain(SESSION_SOCKET);
  });

  test("attach to an exited session says how it ended and how to resume; to a command bottle, how to run one", async () => {
    // bottle-attach answers 3: the command has ended.
    const exited = fakeBottle([], (argv) => (argv[0] === "cat" ? { stdout: "3\n" } : argv[0] === "bottle-attach" ? { exitCode: 3 } : {}));
    expect(await sessionState(exited.bottle, plan)).toEqual({ state: "exited", exitCode: 3 });
    const error = await caught(attachSession(exited.bottle, plan, []));
    expect(error).toBeInstanceOf(BottleError);
    expect(String((error as BottleError).message)).toContain("has exited (exit code 3)");
    expect((error as BottleError).fix).toContain(`bottle up ${plan.agent.name} --continue`);
    expect(exited.calls.find((call) => call.interactive)?.argv.slice(2, 3)).toEqual(["join"]);
    expect(exited.calls.some((call) => call.argv.includes("capture-pane"))).toBe(true);

    // 4: no session (the bottle's command ran on its launcher's terminal).
    const none = fakeBottle([], (argv) => (argv[0] === "bottle-attach" ? { exitCode: 4 } : {}));
    const noSession = await caught(attachSession(none.bottle, makePlan({ interactive: false }), []));
    expect((noSession as BottleError).fix).toContain("bottle exec");
  });

  test("an exited session whose exit file is missing has no code, and says so without one", async () => {
    const { bottle } = fakeBottle([], (argv) => (argv[0] === "cat" ? { exitCode: 1, stdout: "" } : argv[0] === "bottle-attach" ? { exitCode: 3 } : {}));
    expect(await sessionState(bottle, plan)).toEqual({ state: "exited" });
    expect(String((await caught(attachSession(bottle, plan, []))) as Error)).not.toContain("exit code");
  });

  test("attach joins a running session in one exec, with no look at its processes first; a command after -- runs on its own, not in the session", async () => {
    const running = fakeBottle([]);
    running.bottle.processes = async () => {
      throw new Error("attach looked at the processes");
    };
    expect(await attachSession(running.bottle, plan, [])).toBe(0);
    expect(running.calls.find((call) => call.interactive)?.argv).toEqual(expect.arrayContaining(["bottle-attach", "join", "attach-session", "claude"]));
    const command = fakeBottle([]);
    await attachSession(command.bottle, plan, ["ls", "-la"]);
    expect(command.calls).toHaveLength(1);
    expect(command.calls[0]).toMatchObject({ argv: ["bottle-run", "ls", "-la"], interactive: true });
  });
});

describe("conversations", () => {
  test("a project path becomes Claude Code's directory name", () => {
    expect(projectKey("/workspace")).toBe("-workspace");
    expect(projectKey("/home/a.b/my project")).toBe("-home-a-b-my-project");
  });

  test("ids come from the workspace's transcripts, newest first, read as the workspace's user", async () => {
    const plan = makePlan({ workspace: { user: { uid: 1234, gid: 5678 } } });
    const { bottle, calls } = fakeBottle([], () => ({ stdout: "b2.jsonl\na1.jsonl\n\n" }));
    expect(await conversationIds(bottle, plan)).toEqual(["b2", "a1"]);
    expect(calls[0]!.argv.at(-1)).toBe("/home/agent/.claude/projects/-workspace");
    expect(calls[0]!.options).toMatchObject({ user: "1234:5678", check: false });
  });

  test("--resume ID passes when the home keeps it; otherwise one error that lists at most ten, newest first", async () => {
    const plan = makePlan();
    const ids = Array.from({ length: 12 }, (_, index) => `id-${index}`);
    const { bottle } = fakeBottle([], () => ({ stdout: ids.map((id) => `${id}.jsonl`).join("\n") }));
    await checkResumable(bottle, plan, "id-11");
    const error = (await caught(checkResumable(bottle, plan, "nope"))) as BottleError;
    expect(error.message).toContain("no conversation nope");
    expect(error.fix).toContain("id-0, id-1");
    expect(error.fix).toContain("… +2 more");
    expect(error.fix).not.toContain("id-10");

    const empty = fakeBottle([]);
    expect(((await caught(checkResumable(empty.bottle, plan, "x"))) as BottleError).fix).toContain("there is none yet");
  });
});
