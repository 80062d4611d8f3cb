import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { GATE_PIDS_LIMIT } from "../../../lib/backends/gate.ts";
import { DEFAULT_PIDS } from "../../../lib/resources-schema.ts";
import { runBottle } from "../../helpers/cli.ts";
import { describeDocker } from "../../helpers/docker.ts";
import { type Attacker, COUNTED_LINE_MS, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, tearDown, upAttacker } from "../../helpers/escape-world.ts";

/**
 * Availability: what a bottle can do to make itself, its gate or the host
 * unusable. Orphaned processes must be reaped, or their zombies use up the
 * pids limit until nothing can start — not even `bottle exec`. A flood of
 * denied requests must not grow the gate's audit log on the host without
 * bound (the bottle's max_log_bytes), and the log must stay readable.
 */

/**
 * The flood, from inside the bottle: argv[2] distinct names off the allowlist
 * as DNS queries over UDP straight to the gate (argv[1]), in batches, their
 * answers counted by rcode; then HTTP through the proxy, 200 requests to
 * distinct hosts and 200 to one. Prints {dns, answers, http}.
 */
const FLOOD_PY = `
import json, socket, sys, time
gate, n = sys.argv[1], int(sys.argv[2])
def query(name, qid):
    return qid.to_bytes(2, "big") + bytes([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + bytes([0, 0, 1, 0, 1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setblocking(False)
answers = {}
def drain():
    while True:
        try:
            data = udp.recv(4096)
        except BlockingIOError:
            return
        rcode = str(data[3] & 15)
        answers[rcode] = answers.get(rcode, 0) + 1
for start in range(0, n, 100):
    for i in range(start, min(n, start + 100)):
        udp.sendto(query("x%d-flood.exfil.test" % i, i & 65535), (gate, 53))
    time.sleep(0.01)
    drain()
deadline = time.time() + 2
while time.time() < deadline:
    drain(); time.sleep(0.05)
http = {}
for i in range(400):
    host = "h%d.flood.test" % i if i < 200 else "one.flood.test"
    s = socket.create_connection((gate, 3128), timeout=5)
    s.sendall(("GET http://%s/x%d HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" % (host, i, host)).encode())
    head = s.recv(64).decode("latin1")
    s.close()
    code = head.split(" ")[1] if " " in head else "none"
    http[code] = http.get(code, 0) + 1
print(json.dumps({"dns": n, "answers": answers, "http": http}))
`;

/** The bottle's cap on each gate log: the smallest a manifest may set. */
const LOG_CAP = 65536;

/** Prints `ZOMBIES=<n>`: processes in state Z. */
const COUNT_ZOMBIES = "echo ZOMBIES=$(grep -h '^State:' /proc/[0-9]*/status 2>/dev/null | grep -c 'Z' || true)";

/** `n` orphans: each `sh` starts a short sleep in the background and exits at once, so the sleep's parent is gone. */
const orphans = (n: number) => `i=0; while [ $i -lt ${n} ]; do sh -c 'sleep 0.05 &' || echo FORK-FAILED; i=$((i+1)); done`;

function zombies(stdout: string): number {
  const match = /ZOMBIES=(\d+)/.exec(stdout);
  if (!match) throw new Error(`no zombie count in:\n${stdout}`);
  return Number(match[1]);
}

describeDocker("availability: a bottle cannot exhaust its own or its gate's processes, nor the host's disk", () => {
  let attacker: Attacker;

  beforeAll(async () => {
    attacker = await upAttacker({ prefix: "esc-avail", manifest: ["egress:", "  allow: [allowed.test]", "  limits:", `    max_log_bytes: ${LOG_CAP}`] });
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
      const rounds = Math.ceil(DEFAULT_PIDS / 300) + 1;
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
  test(
    "a flood of denials (thousands of distinct DNS names over UDP, HTTP to many hosts and one): DNS past the rate is REFUSED, the audit log stays within its cap, counted and readable",
    async () => {
      const flood = await attacker.py(FLOOD_PY, attacker.gateIp, "6000");
      const sent = JSON.parse(flood.stdout.trim().split("\n").pop() ?? "{}") as { dns?: number; answers?: Record<string, number>; http?: Record<string, number> };
      expect({ exit: flood.exitCode, dns: sent.dns }).toEqual({ exit: 0, dns: 6000 });
      // Past the bottle's request rate (1200 a minute by default) DNS queries are REFUSED (rcode 5), not answered.
      expect(sent.answers?.["3"] ?? 0).toBeGreaterThan(0);
      expect(sent.answers?.["5"] ?? 0).toBeGreaterThan(1000);
      // Every HTTP request was refused by the gate (DNS has a bucket of its own).
      expect(sent.http).toEqual({ "403": 400 });
      // The lines counting what was not listed are written when their interval ends.
      await Bun.sleep(COUNTED_LINE_MS);
      const onDisk = [attacker.auditPath, `${attacker.auditPath}.1`].filter((file) => existsSync(file)).map((file) => statSync(file).size);
      expect(onDisk.reduce((sum, size) => sum + size, 0)).toBeLessThanOrEqual(LOG_CAP);
      // Denial lines carry how many denials they stand for.
      const counted = attacker.audit().filter((line) => line.decision === "deny" && (line.count ?? 1) > 1);
      expect(counted).toContainEqual(expect.objectContaining({ method: "DNS", rule: "dns-not-allowed", count: expect.any(Number) }));
      expect(counted).toContainEqual(expect.objectContaining({ method: "GET", rule: "not-allowed", count: expect.any(Number) }));
      expect(counted).toContainEqual(expect.objectContaining({ method: "DNS", rule: "rate-limit", count: expect.any(Number) }));
      // `bottle logs` still reads it, counts included.
      const logs = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress"]);
      expect(logs.exitCode).toBe(0);
      expect(logs.stdout).toMatch(/deny +DNS .*\(dns-not-allowed\)  ×\d+/);
      const json = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress", "--json"]);
      const lines = json.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { count?: number });
      expect(lines.length).toBeGreaterThan(10);
      expect(lines.some((line) => (line.count ?? 1) > 1)).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );
});
