import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync } from "node:fs";
import { join } from "node:path";
import { GATE_CPUS, GATE_MEMORY_BYTES, GATE_PIDS_LIMIT } from "../../lib/backends/gate.ts";
import { DEFAULT_PIDS } from "../../lib/resources-schema.ts";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, objectsWithLabel, removeLabelled, uniqueId } from "../helpers/docker.ts";

/**
 * A bottle's resources on the real engine: the limits a manifest sets (and
 * the defaults) are what `docker inspect` shows on the bottle and its gate; a
 * process that allocates past the memory limit is reported at teardown, of a
 * command run to its end and of a detached bottle at `bottle down`; a fork
 * bomb stops at the pids limit and the bottle stays usable.
 */

const MiB = 1024 ** 2;
/** Grows to 600 MiB: tail keeps a "line" of /dev/zero (no newline in it) whole in memory. */
const ALLOCATE_600M = "head -c 600m /dev/zero | tail";

interface Inspect {
  HostConfig: { Memory: number; MemorySwap: number; NanoCpus: number; PidsLimit: number };
}

function limits(container: string) {
  const { HostConfig } = (JSON.parse(docker("inspect", container)) as Inspect[])[0]!;
  return { memory: HostConfig.Memory, swap: HostConfig.MemorySwap, cpus: HostConfig.NanoCpus / 1e9, pids: HostConfig.PidsLimit };
}

describeDocker("resources: what a bottle may use of the machine", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("res");
  const tight = `${agent}-tight`;

  beforeAll(() => {
    sandbox = makeSandbox();
    chownSync(sandbox.project, 1000, 1000);
    writeFile(join(sandbox.config, "bottles", "base.yaml"), "resources:\n  cpus: 0.5\n  memory: 1g\n");
    // Per field, the later file wins: memory and pids from tight.yaml, cpus from base.yaml.
    writeFile(join(sandbox.config, "bottles", "tight.yaml"), "extends: base\nresources:\n  memory: 256m\n  pids: 128\n");
    writeFile(join(sandbox.config, "bottles", "huge.yaml"), "resources:\n  memory: 100000g\n");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: resources test agent\n---\n");
    writeFile(join(sandbox.config, "agents", `${tight}.md`), "---\nbottle: tight\n---\n");
  });

  afterAll(() => removeLabelled(`bottle.agent=${agent}`, `bottle.agent=${tight}`));

  test("a bottle that sets none gets all of the engine's CPUs, half its memory and 4096 processes: the plan says so, and where from", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--dry-run", "--json"]);
    expect(out.exitCode).toBe(0);
    const { resources } = JSON.parse(out.stdout) as { resources: Record<string, { value: number; from: string }> };
    const [ncpu, memTotal] = docker("info", "--format", "{{.NCPU}} {{.MemTotal}}").split(" ").map(Number);
    expect(resources.cpus).toEqual({ value: ncpu!, from: "default: all of the Docker engine's" });
    expect(resources.memory!.value).toBe(Math.floor(memTotal! / 2 / MiB) * MiB);
    expect(resources.memory!.from).toStartWith("default: half of the Docker engine's");
    expect(resources.pids).toEqual({ value: DEFAULT_PIDS, from: "default" });
  });

  test("more memory than the engine has is one error with the engine's figure, the file's line and the fix; nothing is created", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--bottle", "huge", "--yes", "--", "true"]);
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toMatch(/~\/\.config\/bottle\/bottles\/huge\.yaml:2:11: resources\.memory: 97\.7 TiB is more memory than the Docker engine has \([\d.]+ GiB\) — use less/);
    expect(out.stderr).toContain("fix: lower it, or give the Docker engine more");
    expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
  });

  test(
    "a detached bottle: docker inspect shows its limits and the gate's own; a fork bomb stops at the pids limit; an allocation past the memory limit is reported at `bottle down`",
    async () => {
      // A command of its own in the session: Claude Code would take much of 256 MiB (and be killed first).
      const up = await runBottle(sandbox, ["up", tight, "--yes", "--detach", "--", "sleep", "infinity"]);
      expect(up.stderr.includes("bottle: ") ? up.stderr : "").toBe("");
      const name = up.stdout.trim();
      expect(up.stderr).toContain("resources  0.5 CPUs (~/.config/bottle/bottles/base.yaml), 256 MiB memory, no swap (~/.config/bottle/bottles/tight.yaml), 128 processes");
      try {
        expect(limits(name)).toEqual({ memory: 256 * MiB, swap: 256 * MiB, cpus: 0.5, pids: 128 });
        expect(limits(`${name}-gate`)).toEqual({ memory: GATE_MEMORY_BYTES, swap: GATE_MEMORY_BYTES, cpus: GATE_CPUS, pids: GATE_PIDS_LIMIT });

        // The bomb forks until the kernel refuses (dash then exits); the shell reads the cgroup's count with builtins only.
        const bomb = await runBottle(sandbox, [
          "exec",
          name,
          "--",
          "sh",
          "-c",
          'sh -c "while :; do sleep 5 & done" 2>/dev/null; echo "bomb=$?"; read cur < /sys/fs/cgroup/pids/pids.current || read cur < /sys/fs/cgroup/pids.current; echo "current=$cur"',
        ]);
        expect(bomb.stdout).toContain("bomb=2");
        const current = Number(/current=(\d+)/.exec(bomb.stdout)?.[1]);
        expect(current).toBeGreaterThan(64);
        expect(current).toBeLessThanOrEqual(128);
        // Once its sleeps end, the bottle is as usable as before.
        await Bun.sleep(6_000);
        expect((await runBottle(sandbox, ["exec", name, "--", "echo", "alive"])).stdout.trim()).toBe("alive");

        // A child of the command is killed, not the bottle: it runs on, and docker's own OOMKilled stays false.
        const grow = await runBottle(sandbox, ["exec", name, "--", "sh", "-c", ALLOCATE_600M]);
        expect(grow.exitCode).toBe(137);
        expect(docker("inspect", "--format", "{{.State.Running}} {{.State.OOMKilled}}", name)).toBe("true false");
      } finally {
        const down = await runBottle(sandbox, ["down", name]);
        expect(down.exitCode).toBe(0);
        expect(down.stderr).toContain(`${name} was OOM-killed at 256 MiB (the kernel killed 1 process in it for lack of memory) — raise resources.memory in ~/.config/bottle/bottles/tight.yaml`);
      }
    },
    300_000,
  );

  test(
    "a command that allocates past the limit: its exit code, and one warning at teardown with the limit and the fix",
    async () => {
      const out = await runBottle(sandbox, ["up", tight, "--yes", "--", "sh", "-c", ALLOCATE_600M]);
      expect(out.exitCode).toBe(137);
      const warnings = out.stderr.split("\n").filter((line) => line.includes("OOM-killed"));
      expect(warnings).toEqual([expect.stringContaining("was OOM-killed at 256 MiB (the kernel killed 1 process in it for lack of memory) — raise resources.memory in ~/.config/bottle/bottles/tight.yaml")]);
      expect(objectsWithLabel(`bottle.agent=${tight}`)).toEqual({ containers: [], networks: [] });
    },
    300_000,
  );

  test(
    "a command that stays within its memory gets no warning",
    async () => {
      const out = await runBottle(sandbox, ["up", tight, "--yes", "--", "sh", "-c", "head -c 64m /dev/zero | tail | wc -c"]);
      expect(out.exitCode).toBe(0);
      expect(out.stdout.trim()).toBe(String(64 * MiB));
      expect(out.stderr).not.toContain("OOM");
    },
    300_000,
  );
});
