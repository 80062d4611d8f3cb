import { afterAll, beforeAll, expect, test } from "bun:test";
import { BOTTLE_PIDS_LIMIT, GATE_PIDS_LIMIT } from "../../../lib/backends/docker.ts";
import { describeDocker } from "../../helpers/docker.ts";
import { type Attacker, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, tearDown, upAttacker } from "../../helpers/escape-world.ts";

/**
 * Availability: what a bottle can do to make itself (or its gate) unusable.
 * Orphaned processes must be reaped, or their zombies use up the pids limit
 * until nothing can start — not even `bottle exec`.
 */

/** Prints `ZOMBIES=<n>`: processes in state Z. */
const COUNT_ZOMBIES = "echo ZOMBIES=$(grep -h '^State:' /proc/[0-9]*/status 2>/dev/null | grep -c 'Z' || true)";

/** `n` orphans: each `sh` starts a short sleep in the background and exits at once, so the sleep's parent is gone. */
const orphans = (n: number) => `i=0; while [ $i -lt ${n} ]; do sh -c 'sleep 0.05 &' || echo FORK-FAILED; i=$((i+1)); done`;

function zombies(stdout: string): number {
  const match = /ZOMBIES=(\d+)/.exec(stdout);
  if (!match) throw new Error(`no zombie count in:\n${stdout}`);
  return Number(match[1]);
}

describeDocker("availability: a bottle cannot exhaust its own or its gate's processes", () => {
  let attacker: Attacker;

  beforeAll(async () => {
    attacker = await upAttacker({ prefix: "esc-avail", manifest: ["egress:", "  allow: [allowed.test]"], dockerfile: null });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "orphans in the bottle are reaped: more of them than the pids limit, and `bottle exec` still works with no zombie left",
    async () => {
      // 300 first, then past the pids limit in all: without a reaper each leaves a zombie behind.
      const first = await attacker.sh(`${orphans(300)}; sleep 1; ${COUNT_ZOMBIES}`);
      expect({ exit: first.exitCode, zombies: zombies(first.stdout), failed: first.stdout.includes("FORK-FAILED") }).toEqual({ exit: 0, zombies: 0, failed: false });
      const rounds = Math.ceil(BOTTLE_PIDS_LIMIT / 300) + 1;
      const flood = await attacker.sh(`r=0; while [ $r -lt ${rounds} ]; do ${orphans(300)}; r=$((r+1)); done; echo DONE`);
      expect({ exit: flood.exitCode, done: flood.stdout.includes("DONE"), failed: flood.stdout.includes("FORK-FAILED") }).toEqual({ exit: 0, done: true, failed: false });
      await Bun.sleep(1_000);
      const after = await attacker.sh(`echo alive; ${COUNT_ZOMBIES}; echo PID1=$(tr '\\0' ' ' < /proc/1/cmdline)`);
      expect(after.exitCode).toBe(0);
      expect(after.stdout).toContain("alive");
      expect(zombies(after.stdout)).toBe(0);
      // The reaper is Docker's init, which runs the bottle's command.
      expect(after.stdout).toContain("PID1=/sbin/docker-init -- sleep infinity");
    },
    TEST_TIMEOUT_MS * 3,
  );

  test(
    "orphans in the gate are reaped by its PID 1",
    async () => {
      const gate = `${attacker.name}-gate`;
      const run = (script: string) => {
        const out = Bun.spawnSync(["docker", "exec", gate, "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
        return { exitCode: out.exitCode, stdout: out.stdout.toString(), stderr: out.stderr.toString() };
      };
      // Well under the gate's pids limit, which its daemons share.
      const count = Math.floor(GATE_PIDS_LIMIT / 2);
      const out = run(`${orphans(count)}; sleep 1; ${COUNT_ZOMBIES}`);
      expect({ exit: out.exitCode, zombies: zombies(out.stdout), failed: out.stdout.includes("FORK-FAILED") }).toEqual({ exit: 0, zombies: 0, failed: false });
      // The egress gate still runs under it, and still answers.
      expect(run("tr '\\0' ' ' < /proc/1/cmdline").stdout).toContain("docker-init");
      const check = await attacker.sh("curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://denied.test/");
      expect(check.stdout).toBe("403");
    },
    TEST_TIMEOUT_MS,
  );
});
