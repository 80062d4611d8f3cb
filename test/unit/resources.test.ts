import { afterAll, afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { bottleContainerSpec } from "../../lib/backends/docker/container.ts";
import { CGROUP_OOM_FILES, containerHandle } from "../../lib/backends/docker/handle.ts";
import { dockerBackend } from "../../lib/backends/docker/index.ts";
import { dockerUnlimitable } from "../../lib/backends/engine-limits.ts";
import { GATE_CPUS, GATE_MEMORY_BYTES, GATE_PIDS_LIMIT, gateContainerSpec, gateResources } from "../../lib/backends/gate.ts";
import { smolmachinesBackend } from "../../lib/backends/smolmachines/index.ts";
import { containerArgs, Docker, type EngineInfo } from "../../lib/docker.ts";
import { log } from "../../lib/log.ts";
import { ManifestError } from "../../lib/manifest/index.ts";
import type { Plan } from "../../lib/plan.ts";
import { formatPreflight } from "../../lib/preflight.ts";
import { oomKillCount, outOfMemoryWarning, planResources, reportOutOfMemory } from "../../lib/resources.ts";
import { type Capacity, DEFAULT_PIDS, type ResourcesPlan } from "../../lib/resources-schema.ts";
import { recordingExec } from "../helpers/exec.ts";
import { cleanupTempDirs, makePlan } from "../helpers/unit.ts";
import { bottleFor, sandbox, type Sandbox, thrown } from "./manifest/helpers.ts";

afterAll(cleanupTempDirs);

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const ENGINE: Capacity = { cpus: 4, memory: 16 * GiB, of: "the Docker engine", cannot: {} };
const GATE = { cpus: 1, memory: 1024 ** 3, pids: 512 };

/** What the Docker client makes of `docker info` saying these fields. */
async function dockerInfo(fields: Record<string, unknown> = {}): Promise<EngineInfo> {
  return new Docker(recordingExec(() => ({ stdout: JSON.stringify({ Runtimes: { runc: {} }, NCPU: 4, MemTotal: 16 * GiB, ...fields }) }))).info();
}

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

const resolved = (text: string) => bottleFor(box, text);

describe("planning the limits", () => {
  const plan = (text: string, engine = ENGINE) => planResources(resolved(text).resources, engine, GATE, box.env);
  const planError = (text: string, engine = ENGINE) => box.normalize(thrown(() => plan(text, engine)).message);

  test("none set: all of the engine's CPUs, half its memory (whole MiB), 4096 processes, each saying so", () => {
    const odd: Capacity = { ...ENGINE, cpus: 2, memory: 25_275_990_016 };
    expect(plan("", odd)).toEqual({
      cpus: { value: 2, from: "default: all of the Docker engine's" },
      memory: { value: 12_637_437_952, from: "default: half of the Docker engine's 23.5 GiB" },
      pids: { value: DEFAULT_PIDS, from: "default" },
      noSwap: true,
      notes: [],
      engine: { cpus: 2, memory: 25_275_990_016, of: "the Docker engine" },
      gate: GATE,
    });
    expect(12_637_437_952 % MiB).toBe(0);
    expect(DEFAULT_PIDS).toBe(4096);
  });

  test("what a file sets wins, with the file it came from", () => {
    const limits = plan("resources: { cpus: 1.5, memory: 4g }\n");
    expect(limits.cpus).toEqual({ value: 1.5, from: "~/.config/bottle/bottles/dev.yaml" });
    expect(limits.memory).toEqual({ value: 4 * GiB, from: "~/.config/bottle/bottles/dev.yaml" });
    expect(limits.pids).toEqual({ value: 4096, from: "default" });
  });

  test("more than the engine has is an error with the engine's figure, the field's position and the fix", () => {
    const error = thrown(() => plan("resources:\n  memory: 32g\n  cpus: 8\n"));
    expect(error).toBeInstanceOf(ManifestError);
    expect(box.normalize(error.message).split("\n")).toEqual([
      "~/.config/bottle/bottles/dev.yaml:2:11: resources.memory: 32 GiB is more memory than the Docker engine has (16 GiB) — use less",
      "~/.config/bottle/bottles/dev.yaml:3:9: resources.cpus: 8 CPUs is more than the Docker engine has (4) — use at most 4",
    ]);
    expect((error as ManifestError).fix).toBe("lower it, or give the Docker engine more (Docker Desktop: Settings → Resources)");
    // Exactly the engine's is allowed.
    expect(plan("resources: { cpus: 4, memory: 16g }\n").memory?.value).toBe(16 * GiB);
  });

  test("an engine that cannot set a limit (rootless Docker without its controllers delegated): a default is left off and said; one set is an error", async () => {
    const rootless: Capacity = { ...ENGINE, cannot: dockerUnlimitable(await dockerInfo({ CpuCfsQuota: false, SwapLimit: false })) };
    const limits = plan("", rootless);
    expect(limits.cpus).toBeUndefined();
    expect(limits.noSwap).toBe(false);
    expect(limits.notes).toEqual([
      "the Docker engine cannot limit CPUs (docker info: CpuCfsQuota false; rootless Docker needs the cpu controller delegated)",
      "the Docker engine cannot limit swap (docker info: SwapLimit false), so the bottle may swap past its memory",
    ]);
    expect(planError("resources:\n  cpus: 1\n", rootless)).toBe(
      "~/.config/bottle/bottles/dev.yaml:2:9: resources.cpus: the Docker engine cannot limit CPUs (docker info: CpuCfsQuota false; rootless Docker needs the cpu controller delegated) — remove it",
    );
    // The gate is left without what the engine cannot set too: `--cpus` would fail its start.
    expect(gateResources(await dockerInfo({ CpuCfsQuota: false, SwapLimit: false }))).toEqual({ memory: GATE_MEMORY_BYTES, pids: GATE_PIDS_LIMIT });
    expect(gateResources(await dockerInfo())).toEqual({ cpus: GATE_CPUS, memory: GATE_MEMORY_BYTES, pids: GATE_PIDS_LIMIT });
    expect(dockerUnlimitable(await dockerInfo({ CpuCfsQuota: true, MemoryLimit: true, SwapLimit: true, PidsLimit: true }))).toEqual({});
    expect(dockerUnlimitable(await dockerInfo({ NCPU: 0 })).cpus).toBe("the Docker engine does not say how many CPUs it has");
  });

  test("on a VM: this machine's figures, whole CPUs only, and no process limit (set, it is an error)", async () => {
    const host = smolmachinesBackend.planEngine(await dockerInfo()).capacity;
    expect(host.of).toBe("this machine");
    const limits = plan("resources: { cpus: 1 }\n", host);
    expect(limits.pids).toBeUndefined();
    expect(limits.notes).toEqual(["a smolmachines VM has no process limit (its own kernel bounds a fork bomb in it)"]);
    expect(limits.memory?.from).toStartWith("default: half of this machine's");
    expect(planError("resources:\n  cpus: 0.5\n", host)).toBe("~/.config/bottle/bottles/dev.yaml:2:9: resources.cpus: a smolmachines VM takes whole CPUs — write 1");
    expect(planError("resources:\n  pids: 100\n", host)).toBe(
      "~/.config/bottle/bottles/dev.yaml:2:9: resources.pids: a smolmachines VM has no process limit (its own kernel bounds a fork bomb in it) — remove it",
    );
    expect(planError("resources:\n  cpus: 100000\n", host)).toContain("resources.cpus: 100000 CPUs is more than this machine has");
  });

  test("the docker backend reads planning's one `docker info`: the runtime and the engine's CPUs, memory and limits", async () => {
    expect(dockerBackend.planEngine(await dockerInfo({ NCPU: 6, MemTotal: 12 * GiB, PidsLimit: false }))).toEqual({
      runtime: "runc",
      capacity: { cpus: 6, memory: 12 * GiB, of: "the Docker engine", cannot: { pids: "the Docker engine cannot limit processes (docker info: PidsLimit false)" } },
    });
  });
});

/** A plan whose limits are these. */
function limited(resources: Partial<ResourcesPlan>, overrides: Parameters<typeof makePlan>[0] = {}): Plan {
  const base = makePlan(overrides);
  return { ...base, resources: { ...base.resources, ...resources } };
}

describe("the containers' limits", () => {
  test("the bottle: --memory with --memory-swap the same (no swap past it), --cpus, --pids-limit, from the plan", () => {
    const plan = limited({ cpus: { value: 0.5, from: "x" }, memory: { value: 256 * MiB, from: "x" }, pids: { value: 128, from: "x" } });
    const args = containerArgs(bottleContainerSpec(plan, { gate: "198.18.4.2", bottle: "198.18.4.3" }, {}));
    const flag = (name: string) => args[args.indexOf(name) + 1];
    expect([flag("--memory"), flag("--memory-swap"), flag("--cpus"), flag("--pids-limit")]).toEqual(["268435456", "268435456", "0.5", "128"]);
  });

  test("the gate: its own fixed limits, whatever the bottle's", () => {
    const plan = limited({ cpus: { value: 0.5, from: "x" }, memory: { value: 256 * MiB, from: "x" }, pids: { value: 128, from: "x" } });
    const args = containerArgs(gateContainerSpec(plan, {}, "/logs"));
    const flag = (name: string) => args[args.indexOf(name) + 1];
    expect([flag("--memory"), flag("--memory-swap"), flag("--cpus"), flag("--pids-limit")]).toEqual([String(GiB), String(GiB), "1", "512"]);
  });

  test("the preflight shows each limit with where it came from, and the gate's", () => {
    const text = formatPreflight(limited({ memory: { value: 2 * GiB, from: "~/.config/bottle/bottles/dev.yaml" } }), []);
    expect(text).toContain("  resources  2 CPUs (default: all of the Docker engine's), 2 GiB memory, no swap (~/.config/bottle/bottles/dev.yaml), 4096 processes (default)");
    expect(text).toContain("             the gate: 1 CPU, 1 GiB memory, 512 processes (its own)");
    const vm = formatPreflight(limited({ pids: undefined, notes: ["a smolmachines VM has no process limit (its own kernel bounds a fork bomb in it)"] }, { backend: "smolmachines" }), []);
    expect(vm).toContain("(default: half of the Docker engine's 8 GiB), no process limit\n");
    expect(vm).toContain("  note       a smolmachines VM has no process limit (its own kernel bounds a fork bomb in it)");
  });
});

describe("out of memory at teardown", () => {
  const V1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
  const V2 = "low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\noom_group_kill 0\n";

  test("the kernel's count: cgroup v2 memory.events, v1 memory.oom_control, a VM's /proc/vmstat", () => {
    expect(oomKillCount(V1)).toBe(2);
    expect(oomKillCount(V2)).toBe(1);
    expect(oomKillCount("nr_free_pages 1000\npgfault 5\noom_kill 3\n")).toBe(3);
    expect(oomKillCount("oom_kill_disable 0\n")).toBeUndefined();
    expect(oomKillCount("")).toBeUndefined();
  });

  test("a container: read in its cgroup, whichever version the engine has", async () => {
    const exec = recordingExec((argv) => (argv[1] === "exec" ? { exitCode: 1, stdout: V1, stderr: "cat: /sys/fs/cgroup/memory.events: No such file or directory" } : undefined));
    expect(await containerHandle(new Docker(exec), "bottle-x").outOfMemoryKills()).toBe(2);
    expect(exec.calls.map((call) => call.argv)).toEqual([["docker", "exec", "bottle-x", "cat", ...CGROUP_OOM_FILES]]);
  });

  test("a stopped container (no exec): whether docker saw it stop for lack of memory", async () => {
    const stopped = (oomKilled: boolean) =>
      recordingExec((argv) =>
        argv[1] === "exec"
          ? { exitCode: 1, stderr: "Error response from daemon: container is not running" }
          : argv[1] === "container"
            ? { stdout: JSON.stringify({ State: { Status: "exited", Running: false, ExitCode: 137, OOMKilled: oomKilled } }) }
            : undefined,
      );
    expect(await containerHandle(new Docker(stopped(true)), "bottle-x").outOfMemoryKills()).toBe(1);
    expect(await containerHandle(new Docker(stopped(false)), "bottle-x").outOfMemoryKills()).toBe(0);
    const gone = recordingExec(() => ({ exitCode: 1 }));
    expect(await containerHandle(new Docker(gone), "bottle-x").outOfMemoryKills()).toBeUndefined();
  });

  test("one warning line with the limit and where to raise it", () => {
    const env = { HOME: "/home/u" };
    const set = limited({ memory: { value: 256 * MiB, from: "~/.config/bottle/bottles/dev.yaml" } }, { name: "bottle-dev" });
    expect(outOfMemoryWarning(set, 1, env)).toBe(
      "bottle-dev was OOM-killed at 256 MiB (the kernel killed 1 process in it for lack of memory) — raise resources.memory in ~/.config/bottle/bottles/dev.yaml",
    );
    const defaulted = limited({}, { name: "bottle-dev", bottle: { name: "dev", sources: ["/home/u/.config/bottle/bottles/dev.yaml"] } });
    expect(outOfMemoryWarning(defaulted, 3, env)).toBe(
      "bottle-dev was OOM-killed at 4 GiB (the kernel killed 3 processes in it for lack of memory) — set resources.memory in ~/.config/bottle/bottles/dev.yaml (it has the default: half of the Docker engine's 8 GiB)",
    );
    const builtin = limited({}, { name: "bottle-default", bottle: { name: "default", sources: ["(built-in)"] } });
    expect(outOfMemoryWarning(builtin, 1, env)).toBe(
      "bottle-default was OOM-killed at 4 GiB (the kernel killed 1 process in it for lack of memory) — give it a bottle file with resources.memory (`bottle init`; it has the default: half of the Docker engine's 8 GiB)",
    );
  });

  test("said only when the kernel killed something; a bottle that cannot be asked is no warning", async () => {
    const warn = spyOn(log, "warn").mockImplementation((() => undefined) as unknown as typeof log.warn);
    try {
      const plan = limited({}, { name: "bottle-dev" });
      const handle = (kills: Promise<number | undefined>) => ({ ...containerHandle(new Docker(recordingExec()), "bottle-dev"), outOfMemoryKills: () => kills });
      await reportOutOfMemory(handle(Promise.resolve(0)), plan);
      await reportOutOfMemory(handle(Promise.resolve(undefined)), plan);
      await reportOutOfMemory(handle(Promise.reject(new Error("smolvm: not found"))), plan);
      expect(warn).not.toHaveBeenCalled();
      await reportOutOfMemory(handle(Promise.resolve(2)), plan);
      expect(warn.mock.calls.map((call) => String(call[0]))).toEqual([expect.stringContaining("bottle-dev was OOM-killed at 4 GiB (the kernel killed 2 processes")]);
    } finally {
      warn.mockRestore();
    }
  });
});
