import { afterAll, beforeAll, expect, test } from "bun:test";
import { bottleArgv, runBottle } from "../helpers/cli.ts";
import { describeDocker, docker } from "../helpers/docker.ts";
import {
  type Attacker,
  type World,
  COUNTED_LINE_MS,
  SETUP_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  deniedCount,
  startWorld,
  tearDown,
  upAttacker,
} from "../helpers/escape-world.ts";
import { Terminal } from "../helpers/terminal.ts";
import type { DeniedHost } from "../../lib/denied-hosts.ts";
import { SELF_TEST_HOST } from "../../lib/selftest.ts";

/**
 * Egress presets and allowing from the denial log, with the real engine and
 * the real gate, checked at the policy layer: the plan, the gate's config,
 * its DNS responder (which answers allowed names itself and never resolves
 * them) and its audit log. No connection goes to a preset's real host; the
 * one connection made after allowing goes to a made-up name served by a
 * local container.
 */

const OUTSIDE = "outside-every-preset.test";
const NPM_HOSTS = ["registry.npmjs.org", "registry.yarnpkg.com"];

describeDocker("egress presets in a running bottle", () => {
  let attacker: Attacker;
  let world: World;
  const gateAllow = () => (JSON.parse(docker("exec", `${attacker.name}-gate`, "cat", "/etc/bottle/egress.json")) as { allow: string[] }).allow;
  const deniedJson = async (): Promise<DeniedHost[]> => {
    const out = await runBottle(attacker.sandbox, ["allow", attacker.name, "--json"]);
    expect(out.exitCode).toBe(0);
    return JSON.parse(out.stdout) as DeniedHost[];
  };

  beforeAll(async () => {
    attacker = await upAttacker({
      prefix: "presets",
      // The made-up host is served by a local container (a private address) once it is allowed.
      manifest: ["egress:", "  presets: [npm]", `  allow_private: [${OUTSIDE}]`],
      dockerfile: null,
    });
    world = startWorld(attacker, [OUTSIDE]);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    world?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "bottle up --dry-run --json: the plan has the preset and its hosts, and the preflight names it",
    async () => {
      const out = await runBottle(attacker.sandbox, ["up", attacker.agent, "--dry-run", "--json"]);
      expect(out.exitCode).toBe(0);
      const plan = JSON.parse(out.stdout) as { egress: { allow: string[]; presets: unknown[] } };
      expect(plan.egress.presets).toEqual([{ name: "npm", version: 1, hosts: NPM_HOSTS }]);
      for (const host of NPM_HOSTS) expect(plan.egress.allow).toContain(host);
      expect(plan.egress.allow).not.toContain("pypi.org");
      expect(plan.egress.allow).not.toContain(OUTSIDE);
      const preflight = await runBottle(attacker.sandbox, ["up", attacker.agent, "--dry-run"]);
      expect(preflight.stderr + preflight.stdout).toMatch(/egress\s+\d+ hosts: presets npm@1; api\.anthropic\.com/);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "the gate allows the preset's hosts (its config; DNS answers them itself) and denies a host outside every preset",
    async () => {
      const allow = gateAllow();
      for (const host of NPM_HOSTS) expect(allow).toContain(host);
      // Allowed names get the gate's own address, answered in the gate, never resolved: no packet to the registry.
      const dns = await attacker.sh(`for h in ${NPM_HOSTS.join(" ")} pypi.org ${OUTSIDE}; do echo "$h=$(getent hosts $h | cut -d' ' -f1)"; done`);
      expect(dns.stdout.trim().split("\n")).toEqual([`registry.npmjs.org=${attacker.gateIp}`, `registry.yarnpkg.com=${attacker.gateIp}`, "pypi.org=", `${OUTSIDE}=`]);
      // A host outside every preset (a made-up name): the proxy denies it before resolving anything.
      const denied = await attacker.sh(`curl -sS --max-time 5 -D - -o /dev/null http://${OUTSIDE}/before | grep -i '^X-Bottle-Egress-Rule' | tr -d '\\r'`);
      expect(denied.stdout.trim()).toBe("X-Bottle-Egress-Rule: not-allowed");
      expect(await attacker.waitAudit((line) => line.host === "pypi.org" && line.rule === "dns-not-allowed")).toBeDefined();
      expect(await attacker.waitAudit((line) => line.host === OUTSIDE && line.rule === "not-allowed")).toEqual(expect.objectContaining({ decision: "deny", method: "GET" }));
      expect(world.events().filter((event) => event.host?.startsWith(OUTSIDE))).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "bottle allow NAME --json lists each denied host with its count and last time, changes nothing; the self-test's probe is not news",
    async () => {
      const before = gateAllow();
      // Two more denials: the gate counts repeats on one line, written when its interval ends.
      await attacker.sh(`for i in 1 2; do curl -s --max-time 5 -o /dev/null http://${OUTSIDE}/again; done; curl -s --max-time 5 -o /dev/null http://192.0.2.10/`);
      const lines = await attacker.waitDenials((line) => line.host === OUTSIDE && line.rule === "not-allowed", 3);
      expect(deniedCount(lines)).toBe(3);
      // Three proxy requests and the DNS lookup before (a query per address family): allowing the name lets both through, so they are one row
      // whose count is every such denial in the gate's log (read until a counted line still due has landed in both).
      const loggedDenials = () => deniedCount(attacker.audit().filter((line) => line.host === OUTSIDE && line.decision === "deny"));
      let hosts = await deniedJson();
      for (let tries = 0; tries < 30 && hosts.find((row) => row.host === OUTSIDE)?.count !== loggedDenials(); tries++) {
        await Bun.sleep(500);
        hosts = await deniedJson();
      }
      const outside = hosts.find((row) => row.host === OUTSIDE);
      const logged = loggedDenials();
      expect(logged).toBeGreaterThanOrEqual(4);
      expect(outside).toEqual({ host: OUTSIDE, allow: OUTSIDE, rules: ["dns-not-allowed", "not-allowed"], count: logged, last: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
      expect(Date.now() - Date.parse(outside!.last)).toBeLessThan(COUNTED_LINE_MS + 60_000);
      expect(hosts.find((row) => row.host === "pypi.org")).toEqual(expect.objectContaining({ allow: "pypi.org", rules: ["dns-not-allowed"], presets: ["pypi"] }));
      // Denied for being an address, not for being unlisted: shown with why, not offered.
      expect(hosts.find((row) => row.host === "192.0.2.10")).toEqual(
        expect.objectContaining({ rules: ["ip-literal"], note: "it was asked for by IP address, which the gate refuses; allow the host name it stands for" }),
      );
      expect(hosts.find((row) => row.host === "192.0.2.10")?.allow).toBeUndefined();
      expect(hosts.map((row) => row.host)).not.toContain(SELF_TEST_HOST);
      expect(gateAllow()).toEqual(before);

      // Without a terminal: the same list as a table on stdout.
      const table = await runBottle(attacker.sandbox, ["allow", attacker.name]);
      expect(table.exitCode).toBe(0);
      expect(table.stdout).toMatch(new RegExp(`^${OUTSIDE.replace(/\./g, "\\.")}\\s+×${outside!.count}\\s`, "m"));
      expect(table.stdout).toContain("not offered: it was asked for by IP address");
      expect(gateAllow()).toEqual(before);
    },
    COUNTED_LINE_MS + TEST_TIMEOUT_MS,
  );

  test(
    "bottle allow NAME on a terminal: pick a denied host; it is reachable at once and the manifest line is printed",
    async () => {
      const offered = (await deniedJson()).filter((row) => row.allow);
      const index = offered.findIndex((row) => row.host === OUTSIDE);
      expect(index).toBeGreaterThanOrEqual(0);
      const terminal = new Terminal(bottleArgv(["allow", attacker.name]), { env: attacker.sandbox.env, cwd: attacker.sandbox.project, width: 160 });
      try {
        const screen = await terminal.waitFor(`Allow which hosts for ${attacker.name}`);
        expect(screen).toMatch(/192\.0\.2\.10\s+×1, last .* \(ip-literal\) — not offered: it was asked for by IP address/);
        for (let i = 0; i < index; i++) terminal.keys("Down");
        await terminal.waitFor(new RegExp(`> \\[ \\] ${OUTSIDE.replace(/\./g, "\\.")}`));
        terminal.keys("Space", "Enter");
        expect(await terminal.waitForExit()).toBe(0);
        const after = terminal.screen();
        expect(after).toContain(`${attacker.name} may now reach ${OUTSIDE}`);
        expect(after).toContain(`  egress:\n    allow:\n      - ${OUTSIDE}`);
      } finally {
        terminal.close();
      }
      expect(gateAllow()).toContain(OUTSIDE);
      const reached = await attacker.sh(`curl -sS --max-time 5 http://${OUTSIDE}/after-pick`);
      expect(reached.stdout).toContain(`hello from ${OUTSIDE} /after-pick`);
      expect(await attacker.waitAudit((line) => line.host === OUTSIDE && line.path === "/after-pick")).toEqual(
        expect.objectContaining({ decision: "allow", rule: "allowlist", match: OUTSIDE }),
      );
      // Allowed now: listed, no longer offered.
      expect((await deniedJson()).find((row) => row.host === OUTSIDE)).toEqual(expect.objectContaining({ note: "allowed by now" }));
    },
    TEST_TIMEOUT_MS,
  );
});
