import { afterAll, afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync } from "node:fs";
import { recordingExec, type Responder } from "../../../helpers/exec.ts";
import { attachBottle, downBottles, findOrphans, listBottles, removeOrphans } from "../../../../lib/lifecycle.ts";
import { log } from "../../../../lib/log.ts";
import { bottleStateDir, stateDir } from "../../../../lib/paths.ts";
import { LABELS, type Plan } from "../../../../lib/plan.ts";
import { writeState } from "../../../../lib/state.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../../../helpers/unit.ts";

/** ls, attach, exec, down and cleanup find a smolmachines bottle by its gate and state, and reach its VM through smolvm. */

const saved: Record<string, string | undefined> = {};

beforeEach(() => {
  for (const name of ["XDG_STATE_HOME", "XDG_CACHE_HOME", "BOTTLE_SMOLVM"]) saved[name] = process.env[name];
  process.env.XDG_STATE_HOME = tempDir("bottle-lc-state-");
  process.env.XDG_CACHE_HOME = tempDir("bottle-lc-cache-");
  delete process.env.BOTTLE_SMOLVM;
});

afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

afterAll(cleanupTempDirs);

function labels(plan: Plan, role: string): string {
  const all = { [LABELS.name]: plan.name, [LABELS.agent]: "dev", [LABELS.role]: role, [LABELS.backend]: plan.backend, [LABELS.workspace]: "/p", [LABELS.state]: stateDir() };
  return Object.entries(all)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
}

function psRow(name: string, plan: Plan, role: string, state = "running"): string {
  return JSON.stringify({ ID: name, Names: name, Image: "img", State: state, Status: "Up", CreatedAt: "2024-01-01 00:00:00 +0000 UTC", Labels: labels(plan, role) });
}

function inspect(plan: Plan, role: string, running = true): string {
  return JSON.stringify({
    Id: "x",
    Name: role,
    State: { Status: running ? "running" : "exited", Running: running, ExitCode: 0 },
    Config: { Image: "img", Labels: { [LABELS.role]: role, [LABELS.backend]: plan.backend } },
    HostConfig: {},
    NetworkSettings: { Networks: {} },
  });
}

const vmPlan = makePlan({ name: "bottle-vm", backend: "smolmachines" });
const dockerPlan = makePlan({ name: "bottle-dk" });

/** docker sees the VM bottle's gate and network, and a docker bottle; smolvm lists the VM. */
const engine: Responder = (argv) => {
  const sub = argv.slice(1).join(" ");
  if (argv[0] === "smolvm" && sub === "machine ls --json") return { stdout: JSON.stringify([{ name: "bottle-vm", state: "running" }]) };
  if (sub.startsWith("ps") && !sub.includes("bottle.role=pack")) return { stdout: [psRow("bottle-vm-gate", vmPlan, "gate"), psRow("bottle-dk", dockerPlan, "bottle"), psRow("bottle-dk-gate", dockerPlan, "gate")].join("\n") };
  if (sub.startsWith("container inspect")) {
    const name = argv.at(-1);
    if (name === "bottle-vm-gate") return { stdout: inspect(vmPlan, "gate") };
    if (name === "bottle-dk") return { stdout: inspect(dockerPlan, "bottle") };
    return { exitCode: 1, stderr: "No such container" };
  }
  return undefined;
};

describe("ls", () => {
  test("a smolmachines bottle is a row (found by its gate), its status from smolvm", async () => {
    const exec = recordingExec(engine);
    const rows = await listBottles(exec);
    expect(rows.map((row) => [row.name, row.backend, row.status])).toEqual([
      ["bottle-dk", "docker", "running"],
      ["bottle-vm", "smolmachines", "running"],
    ]);
    expect(exec.calls.some((call) => call.argv.join(" ") === "smolvm machine ls --json")).toBe(true);
  });

  test("without smolvm the row still shows, with the gate's state", async () => {
    const exec = recordingExec((argv) => (argv[0] === "smolvm" ? { exitCode: 127 } : engine(argv)));
    expect((await listBottles(exec)).find((row) => row.name === "bottle-vm")?.status).toBe("gate running");
  });

  test("only docker bottles: smolvm is not asked", async () => {
    const exec = recordingExec((argv) => (argv[1] === "ps" ? { stdout: psRow("bottle-dk", dockerPlan, "bottle") } : engine(argv)));
    await listBottles(exec);
    expect(exec.calls.some((call) => call.argv[0] === "smolvm")).toBe(false);
  });
});

describe("attach and exec", () => {
  test("a smolmachines bottle: `smolvm machine exec -i` as the agent user, in /workspace", async () => {
    writeState(vmPlan, { pid: process.pid, detach: true, startedAt: vmPlan.createdAt });
    const exec = recordingExec(engine);
    expect(await attachBottle(exec, "bottle-vm", ["git", "status"])).toBe(0);
    const attached = exec.calls.filter((call) => call.interactive);
    expect(attached.map((call) => call.argv)).toEqual([
      ["smolvm", "machine", "exec", "--name", "bottle-vm", "-i", "-w", "/workspace", "--", "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--", "bottle-run", "git", "status"],
    ]);
  });

  test("a docker bottle: its terminal joins the session in one exec, then its client is detached", async () => {
    writeState(dockerPlan, { pid: process.pid, detach: true, startedAt: dockerPlan.createdAt });
    const exec = recordingExec(engine);
    await attachBottle(exec, "bottle-dk", []);
    expect(exec.calls.some((call) => call.argv[1] === "top")).toBe(false);
    const [attach] = exec.calls.filter((call) => call.interactive).map((call) => call.argv);
    expect(attach).toEqual(["docker", "exec", "--interactive", "--user", "1000:1000", "--workdir", "/workspace", "bottle-dk", "bottle-attach", expect.stringMatching(/^[0-9a-f-]{36}$/), "join", "attach-session", "-t", "claude"]);
    // Then the client is detached by the tty it noted, should its terminal have gone away.
    const after = exec.calls.at(-1)!.argv;
    expect(after.slice(0, 3)).toEqual(["docker", "exec", "--user"]);
    expect(after).toContain(attach![9]!);
    expect(after.join(" ")).toContain("detach-client");
  });

  test("a docker bottle whose Claude Code exited: its state from docker top (no exec inside), one error with its exit code and how to resume", async () => {
    writeState(dockerPlan, { pid: process.pid, detach: true, startedAt: dockerPlan.createdAt });
    // As docker top prints them: the pid, then comm ("tmux: server") and args in columns; no bottle-session: its command ended.
    const server = "101     tmux:    server tmux -S /run/bottle/session.sock -f /etc/bottle-tmux.conf new-session -d -s claude";
    const exec = recordingExec((argv) =>
      argv[1] === "top"
        ? { stdout: `PID COMMAND COMMAND\n7 sleep sleep infinity\n${server}\n` }
        : argv.includes("/run/bottle/session.exit")
          ? { stdout: "3\n" }
          : argv.includes("bottle-attach")
            ? { exitCode: 3 }
            : engine(argv),
    );
    await expect(attachBottle(exec, "bottle-dk", [])).rejects.toThrow("Claude Code in bottle-dk has exited (exit code 3)");
    expect(exec.calls.find((call) => call.argv[1] === "top")?.argv).toEqual(["docker", "top", "bottle-dk", "-eo", "pid,comm,args"]);
  });

  test("a smolmachines bottle whose gate is gone is not running", async () => {
    writeState(vmPlan, { pid: process.pid, detach: true, startedAt: vmPlan.createdAt });
    const exec = recordingExec((argv) => (argv[1] === "container" ? { exitCode: 1 } : engine(argv)));
    await expect(attachBottle(exec, "bottle-vm", [])).rejects.toThrow(/no running bottle named bottle-vm/);
    expect(exec.calls.some((call) => call.interactive)).toBe(false);
  });
});

describe("down and cleanup", () => {
  test("down deletes the VM first, then the gate, its network and the state", async () => {
    writeState(vmPlan, { pid: process.pid, detach: true, startedAt: vmPlan.createdAt });
    const exec = recordingExec((argv) =>
      argv[1] === "ps" && argv.join(" ").includes("bottle.name=bottle-vm") ? { stdout: psRow("bottle-vm-gate", vmPlan, "gate") } : engine(argv),
    );
    expect(await downBottles(exec, ["bottle-vm"])).toEqual(["bottle-vm"]);
    const removal = exec.calls.map((call) => call.argv).filter((argv) => argv[0] === "smolvm" || argv[1] === "rm");
    expect(removal).toEqual([
      // Whether it ran out of memory (its kernel's count), while it still runs.
      ["smolvm", "machine", "exec", "--name", "bottle-vm", "--", "cat", "/proc/vmstat"],
      ["smolvm", "machine", "stop", "--name", "bottle-vm"],
      ["smolvm", "machine", "delete", "--name", "bottle-vm", "-f"],
      ["docker", "rm", "--force", "--volumes", "bottle-vm-gate"],
    ]);
    expect(existsSync(bottleStateDir("bottle-vm"))).toBe(false);
  });

  test("down of a docker bottle never calls smolvm", async () => {
    writeState(dockerPlan, { pid: process.pid, detach: true, startedAt: dockerPlan.createdAt });
    const exec = recordingExec(engine);
    await downBottles(exec, ["bottle-dk"]);
    expect(exec.calls.some((call) => call.argv[0] === "smolvm")).toBe(false);
  });

  test("down of a bottle that ran out of memory says so, before its container goes", async () => {
    writeState(dockerPlan, { pid: process.pid, detach: true, startedAt: dockerPlan.createdAt });
    const exec = recordingExec((argv) => (argv[1] === "exec" && argv.includes("cat") ? { stdout: "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n" } : engine(argv)));
    const warn = spyOn(log, "warn").mockImplementation((() => undefined) as unknown as typeof log.warn);
    try {
      await downBottles(exec, ["bottle-dk"]);
      expect(warn.mock.calls.map((call) => String(call[0]))).toEqual([expect.stringContaining("bottle-dk was OOM-killed at 4 GiB")]);
    } finally {
      warn.mockRestore();
    }
    const argvs = exec.calls.map((call) => call.argv.slice(1, 3).join(" "));
    expect(argvs.indexOf("exec bottle-dk")).toBeLessThan(argvs.indexOf("rm --force"));
  });

  test("cleanup removes the machine of a smolmachines bottle whose launcher died", async () => {
    // A launcher that is gone: the largest pid Linux hands out, plus one.
    writeState(vmPlan, { pid: 4_194_305, detach: false, startedAt: vmPlan.createdAt });
    const exec = recordingExec((argv) => (argv[1] === "ps" && !argv.join(" ").includes("bottle.role=pack") ? { stdout: psRow("bottle-vm-gate", vmPlan, "gate") } : engine(argv)));
    const orphans = await findOrphans(exec);
    expect(orphans).toEqual([{ name: "bottle-vm", containers: ["bottle-vm-gate"], networks: [], stateDir: true, backend: "smolmachines" }]);
    await removeOrphans(exec, orphans);
    expect(exec.calls.map((call) => call.argv).filter((argv) => argv[0] === "smolvm")).toEqual([
      ["smolvm", "machine", "exec", "--name", "bottle-vm", "--", "cat", "/proc/vmstat"],
      ["smolvm", "machine", "stop", "--name", "bottle-vm"],
      ["smolvm", "machine", "delete", "--name", "bottle-vm", "-f"],
    ]);
  });

  test("a detached smolmachines bottle with a running gate is no orphan", async () => {
    writeState(vmPlan, { pid: 4_194_305, detach: true, startedAt: vmPlan.createdAt });
    const exec = recordingExec((argv) => (argv[1] === "ps" && !argv.join(" ").includes("bottle.role=pack") ? { stdout: psRow("bottle-vm-gate", vmPlan, "gate") } : engine(argv)));
    expect(await findOrphans(exec)).toEqual([]);
  });
});
