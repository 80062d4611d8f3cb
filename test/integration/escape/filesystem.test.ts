import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeDocker, docker } from "../../helpers/docker.ts";
import { type Attacker, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, tearDown, upAttacker } from "../../helpers/escape-world.ts";

/**
 * What a bottle can read of the machinery around it: the gate's config and
 * secrets, the Docker socket, the gate's processes, another bottle's env.
 * Each is first shown to exist (from the host, with `docker exec`), then
 * searched for from inside the attacker bottle.
 */

const SECRET = `esc-${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;
const VICTIM_SECRET = `vic-${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;

describeDocker("escape into the gate's or another bottle's files", () => {
  let attacker: Attacker;
  let victim: Attacker;

  beforeAll(async () => {
    attacker = await upAttacker({
      prefix: "esc-fs",
      sandboxEnv: { ESCAPE_SECRET: SECRET, VICTIM_SECRET },
      manifest: ["egress:", "  allow: [allowed.test]", "env:", "  LEAK_ME: ${ESCAPE_SECRET}"],
    });
    victim = await upAttacker({
      prefix: "esc-fsvictim",
      sandbox: attacker.sandbox,
      manifest: ["egress:", "  allow: [allowed.test]", "env:", "  VICTIM_TOKEN: ${VICTIM_SECRET}"],
      dockerfile: null,
    });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (victim) await tearDown(victim.sandbox, [victim.name], [victim.agent]);
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "8. the gate's config and secrets exist in the gate, and nowhere in the bottle's filesystem",
    async () => {
      // Controls: they are there, in the gate.
      const gate = `${attacker.name}-gate`;
      expect(docker("exec", gate, "cat", "/etc/bottle/egress.json")).toContain('"hostAddresses"');
      expect(docker("exec", gate, "cat", "/etc/bottle/secrets.json")).toContain(SECRET);
      const out = await attacker.sh(
        [
          "ls -la /etc/bottle 2>&1",
          "cat /etc/bottle/egress.json /etc/bottle/secrets.json 2>&1",
          "find / -xdev \\( -name egress.json -o -name secrets.json -o -name egress.jsonl -o -name egress-gate.mjs \\) 2>/dev/null | sed 's/^/FOUND /'",
          // The gate config's field names, anywhere on disk.
          "grep -rlsF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev '\"hostAddresses\"' / | sed 's/^/FOUND-CONFIG /'",
          "grep -sF /var/log/bottle /proc/self/mountinfo | sed 's/^/FOUND-MOUNT /'",
          "grep -sF /.local/state/bottle /proc/self/mountinfo | sed 's/^/FOUND-STATE /'",
          "exit 0",
        ].join("; "),
      );
      expect(out.stdout).toContain("No such file or directory");
      expect(out.stdout).not.toContain("FOUND");
      expect(out.stdout).not.toContain('"allow"');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "8. no Docker socket or API: no socket file, no DOCKER_HOST, no daemon on the network",
    async () => {
      const out = await attacker.sh(
        [
          "ls -la /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock 2>&1",
          // Every socket in the bottle (its own session's tmux among them): none may answer as Docker's API.
          "find / -xdev -type s 2>/dev/null | while read -r s; do echo \"SOCKET $s\"; curl -sS --max-time 2 --unix-socket \"$s\" http://docker/version 2>/dev/null | head -c 300; echo; done",
          'env | grep -i "^DOCKER" | sed "s/^/ENV /"',
          "curl -sS --max-time 2 --unix-socket /var/run/docker.sock http://docker/version 2>&1 | head -1",
          // The daemon's TCP ports, direct and through the gate.
          "for p in 2375 2376; do curl -sS --noproxy '*' --connect-timeout 2 --max-time 3 http://gate:$p/version >/dev/null 2>&1 && echo OPEN-$p; done",
          "exit 0",
        ].join("; "),
      );
      expect(out.stdout).toContain("No such file or directory");
      // Control: the walk does find sockets (the session's), so an empty result would mean a broken probe.
      expect(out.stdout).toContain("SOCKET /run/bottle/session.sock");
      expect(out.stdout).not.toMatch(/^SOCKET .*docker|^SOCKET .*containerd/m);
      expect(out.stdout).not.toContain("ENV ");
      expect(out.stdout).not.toContain("OPEN-");
      expect(out.stdout).not.toContain("ApiVersion");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "8. /proc shows only the bottle's own processes: no gate, no other bottle",
    async () => {
      // Control: the gate runs node (under its init).
      expect(docker("exec", `${attacker.name}-gate`, "sh", "-c", "cat /proc/[0-9]*/cmdline")).toContain("egress-gate");
      const out = await attacker.sh(
        "for p in /proc/[0-9]*; do printf '%s %s\\n' \"$(cat $p/comm 2>/dev/null)\" \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\"; done; " +
          "echo PID1=$(tr '\\0' ' ' < /proc/1/cmdline); grep -h -s -o 'VICTIM_TOKEN' /proc/[0-9]*/environ | sed 's/^/ENV-LEAK /'; exit 0",
      );
      // Docker's init (it reaps orphans) runs the bottle's command.
      expect(out.stdout).toContain("PID1=/sbin/docker-init -- sleep infinity");
      expect(out.stdout).not.toContain("node");
      expect(out.stdout).not.toContain("egress-gate");
      expect(out.stdout).not.toMatch(/^ENV-LEAK /m);
      const commands = out.stdout
        .split("\n")
        .filter((line) => line && !line.startsWith("PID1="))
        .map((line) => line.split(" ")[0] ?? "");
      // The session's tmux server ("tmux: server") and its command (bottle-session) are the bottle's own.
      for (const command of commands) expect(["docker-init", "sleep", "sh", "bottle-run", "bottle-session", "tmux:", "cat", "tr", "grep", "sed"]).toContain(command);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "8. another bottle's env file and secret are unreachable: not on disk, not in /proc",
    async () => {
      // Control: the victim holds its secret in its env file.
      expect((await victim.sh("cat /run/bottle/env")).stdout).toContain(VICTIM_SECRET);
      const out = await attacker.sh(
        [
          "ls -la /run/bottle",
          // The victim's variable (its name: the value never goes on a command line), anywhere the attacker can read.
          "grep -rlsF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev VICTIM_TOKEN / | sed 's/^/FOUND /'",
          "grep -lsF VICTIM_TOKEN /proc/[0-9]*/environ | sed 's/^/FOUND-PROC /'",
          "exit 0",
        ].join("; "),
      );
      expect(out.stdout).not.toMatch(/^FOUND/m);
      // Only the attacker's own env file is there.
      expect(out.stdout.match(/ env$/gm) ?? []).toHaveLength(1);
      const own = await attacker.sh('printf %s "$LEAK_ME"');
      expect(own.stdout).toBe(SECRET);
    },
    TEST_TIMEOUT_MS,
  );
});
