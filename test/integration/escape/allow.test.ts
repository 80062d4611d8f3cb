import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { runBottle } from "../../helpers/cli.ts";
import { describeDocker, docker } from "../../helpers/docker.ts";
import { type Attacker, type World, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, startWorld, tearDown, upAttacker } from "../../helpers/escape-world.ts";

/**
 * The policy of a running bottle changes only from the host: `bottle allow`
 * rewrites the gate's root-only config and signals a reload. From inside, no
 * request, DNS message or file write changes what the gate lets through.
 */

describeDocker("changing a running bottle's policy", () => {
  let attacker: Attacker;
  let world: World;
  const gateConfig = () => docker("exec", `${attacker.name}-gate`, "cat", "/etc/bottle/egress.json");
  const deniedCheck = "curl -sS --connect-timeout 2 --max-time 5 -D - -o /dev/null http://denied.test/check | grep -i '^X-Bottle-Egress-Rule' | tr -d '\\r'; getent hosts denied.test || echo no-address";

  beforeAll(async () => {
    attacker = await upAttacker({
      prefix: "esc-allow",
      // denied.test may resolve to a private address once it is allowed (the test world is local).
      manifest: ["egress:", "  allow: [allowed.test]", "  allow_private: [allowed.test, denied.test]"],
    });
    world = startWorld(attacker, ["allowed.test", "denied.test"]);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    world?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "the bottle itself cannot change the policy: requests to the gate, DNS UPDATE and file writes change nothing",
    async () => {
      const before = gateConfig();
      expect((await attacker.sh(deniedCheck)).stdout.trim().split("\n")).toEqual(["X-Bottle-Egress-Rule: not-allowed", "no-address"]);
      const attempts = [
        "curl -sS --connect-timeout 2 --max-time 4 -X PUT --data denied.test http://gate:3128/allow",
        "curl -sS --connect-timeout 2 --max-time 4 -X POST -H 'Content-Type: application/json' --data '{\"allow\":[\"denied.test\"]}' http://gate:3128/etc/bottle/egress.json",
        "curl -sS --noproxy '*' --connect-timeout 2 --max-time 4 -X PUT --data denied.test http://gate:3128/allow",
        "curl -sS --noproxy '*' --connect-timeout 2 --max-time 4 -X POST http://gate:3128/reload",
        "printf 'server gate\\nzone allowed.test\\nupdate add denied.test 60 A 192.0.2.1\\nsend\\n' | timeout 5 nsupdate -t 2",
        "mkdir -p /etc/bottle && echo '{\"allow\":[\"denied.test\"]}' > /etc/bottle/egress.json",
        "echo '127.0.0.1 denied.test' >> /etc/hosts",
        "mkdir -p ~/.config/bottle/bottles && printf 'egress:\\n  allow: [denied.test]\\n' > ~/.config/bottle/bottles/default.yaml",
      ];
      await attacker.sh(`${attempts.map((a) => `(${a}) >/dev/null 2>&1`).join("; ")}; exit 0`);
      expect((await attacker.sh(deniedCheck)).stdout.trim().split("\n")).toEqual(["X-Bottle-Egress-Rule: not-allowed", "no-address"]);
      expect(gateConfig()).toBe(before);
      expect(world.events().filter((e) => e.host?.startsWith("denied.test"))).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "bottle allow NAME HOST: reachable at once, the manifest line printed, and audited as allowed",
    async () => {
      const allow = await runBottle(attacker.sandbox, ["allow", attacker.name, "denied.test"]);
      expect(allow.exitCode).toBe(0);
      expect(allow.stderr).toContain(`${attacker.name} may now reach denied.test`);
      const bottleName = attacker.agent.replace(/[^a-z0-9]/g, "");
      expect(allow.stderr).toContain(`to keep it, add to the bottle "${bottleName}" (${join(attacker.sandbox.config, "bottles", `${bottleName}.yaml`)}):`);
      expect(allow.stderr).toContain("  egress:\n    allow:\n      - denied.test");
      expect(JSON.parse(gateConfig()).allow).toContain("denied.test");

      const out = await attacker.sh("curl -sS --connect-timeout 2 --max-time 5 http://denied.test/after-allow; getent hosts denied.test");
      expect(out.stdout).toContain("hello from denied.test /after-allow");
      // The name now resolves in the bottle (to the gate: the proxy resolves it for real).
      expect(out.stdout).toContain(attacker.gateIp);
      expect(await attacker.waitAudit((l) => l.host === "denied.test" && l.path === "/after-allow")).toEqual(
        expect.objectContaining({ decision: "allow", rule: "allowlist", match: "denied.test" }),
      );

      const again = await runBottle(attacker.sandbox, ["allow", attacker.name, "denied.test"]);
      expect(again.exitCode).toBe(0);
      expect(again.stderr).toContain(`${attacker.name} already allows denied.test`);
    },
    TEST_TIMEOUT_MS,
  );
});
