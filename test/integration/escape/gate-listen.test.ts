import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Attacker,
  type Probe,
  type World,
  SETUP_TIMEOUT_MS,
  describeEscape,
  TEST_TIMEOUT_MS,
  dnsQuery,
  probe,
  probeFromHost,
  probeFromNetwork,
  startWorld,
  tearDown,
  upAttacker,
} from "../../helpers/escape-world.ts";
import { sshKeygen } from "../../helpers/world.ts";

/**
 * The gate's egress side (issue #19, item 3). The gate sits on the bottle's
 * internal network and on its egress network; the host and any container on
 * the egress network reach its egress address. Its services must answer only
 * on the internal side: a proxy reachable from the egress side would lend
 * anyone there the bottle's allowlist and its credential routes (the gate
 * injects the real token into whatever reaches the route), and its DNS
 * responder the bottle's resolver.
 *
 * The bottle here has every gate service: the proxy, DNS, Claude Code's
 * route (custody), a credential route, the git gate and the SSH gate. Each
 * port is probed from a container attached to the egress network and from
 * the host itself, and inside the gate every listening socket is checked to
 * be bound to the internal address or loopback. Controls: from the bottle
 * each port answers, and both outside vantage points do reach the world on
 * the egress network.
 */

const CLAUDE_TOKEN = `sk-ant-oat01-${crypto.randomUUID().replace(/-/g, "")}-listentest`;
const GH_TOKEN = `gh-real-${crypto.randomUUID().replace(/-/g, "")}-listentest`;

/** A socket in /proc/net/{tcp,udp}[6] that listens: TCP in LISTEN, UDP not connected to a peer. */
interface Listener {
  proto: string;
  address: string;
  port: number;
}

/** /proc/net's little-endian hex address (8 digits IPv4, 32 digits IPv6) as text. */
function procAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) => (word.match(/../g) ?? []).reverse().map((byte) => Number.parseInt(byte, 16)));
  if (bytes.length === 4) return bytes.join(".");
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16));
  return groups.join(":");
}

function gateListeners(gate: string): Listener[] {
  const listeners: Listener[] = [];
  for (const proto of ["tcp", "tcp6", "udp", "udp6"]) {
    const out = Bun.spawnSync(["docker", "exec", gate, "cat", `/proc/net/${proto}`], { stdout: "pipe", stderr: "pipe" });
    for (const line of out.stdout.toString().split("\n").slice(1)) {
      const [, local, remote, state] = line.trim().split(/\s+/);
      if (!local || !remote || !state) continue;
      const listening = proto.startsWith("tcp") ? state === "0A" : /^0+:0000$/.test(remote);
      if (!listening) continue;
      const [address = "", port = "0"] = local.split(":");
      listeners.push({ proto, address: procAddress(address), port: Number.parseInt(port, 16) });
    }
  }
  return listeners;
}

const isLoopback = (address: string) => address.startsWith("127.") || address === "0:0:0:0:0:0:0:1";

describeEscape(["docker"], "a VM's gate has no internal network: its services listen on its egress address (README, smolmachines)", "the gate answers on the bottle's side only", () => {
  let attacker: Attacker;
  let world: World;
  let keys = "";
  let ports: number[] = [];

  beforeAll(async () => {
    keys = mkdtempSync(join(tmpdir(), "bottle-listen-keys-"));
    sshKeygen(keys, "id_ed25519", "bottle-listen-test");
    sshKeygen(keys, "host_key", "bottle-listen-host");
    const hostPub = readFileSync(join(keys, "host_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    attacker = await upAttacker({
      prefix: "esc-listen",
      sandboxEnv: { CLAUDE_CODE_OAUTH_TOKEN: CLAUDE_TOKEN, GH_TOKEN },
      manifest: [
        "egress:",
        "  allow: [allowed.test]",
        "  allow_private: [allowed.test, api.github.test]",
        "  routes:",
        "    - host: api.github.test",
        "      auth: { header: Authorization, scheme: Bearer, token: \"${GH_TOKEN}\" }",
        "git:",
        "  remotes:",
        "    origin:",
        "      upstream: git@git.upstream.test:project.git",
        `      identity_file: ${join(keys, "id_ed25519")}`,
        `      known_host_key: "git.upstream.test ${hostPub}"`,
        "ssh:",
        "  hosts:",
        `    - { host: ssh.upstream.test, user: deploy, identity_file: ${join(keys, "id_ed25519")}, known_host_key: "${hostPub}" }`,
      ],
    });
    world = startWorld(attacker, ["allowed.test"]);
    const plan = JSON.parse(readFileSync(join(attacker.sandbox.state, "bottle", "bottles", attacker.name, "plan.json"), "utf8"));
    // Every port a gate service of this bottle listens on, from its plan.
    ports = [plan.egress.proxyPort, plan.egress.dnsPort, plan.custody.port, plan.git.port, plan.ssh.agentPort, ...plan.ssh.hosts.map((h: { gatePort: number }) => h.gatePort)];
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    world?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
    if (keys) rmSync(keys, { recursive: true, force: true });
  }, SETUP_TIMEOUT_MS);

  /** Every service port on `host`, TCP, plus DNS over UDP with a real query. */
  const gateProbes = (host: string, tag: string): Probe[] => [
    ...ports.map((port) => ({ id: `${tag} tcp ${port}`, proto: "tcp" as const, host, port })),
    { id: `${tag} udp 53`, proto: "udp", host, port: 53, payload: dnsQuery("allowed.test") },
  ];

  test(
    "7. the gate's egress address: from a container on the egress network and from the host, no gate port answers",
    async () => {
      expect(ports).toEqual([3128, 53, 3129, 9418, 2199, 2200]);
      // Control: from the bottle, every one of them answers on the internal address.
      const inside = await probe(attacker, gateProbes(attacker.gateIp, "inside"));
      expect(Object.values(inside)).toEqual(new Array(ports.length + 1).fill("open"));

      const worldControl: Probe = { id: "control world:80", proto: "tcp", host: world.ip, port: 80 };
      const outside = {
        egressNetwork: probeFromNetwork(attacker, `${attacker.name}-egress`, [worldControl, ...gateProbes(attacker.gateEgressIp, "egress-side")]),
        host: probeFromHost([worldControl, ...gateProbes(attacker.gateEgressIp, "egress-side")]),
      };
      for (const [where, results] of Object.entries(outside)) {
        // Control: this vantage point does reach the egress network (and every probe reported).
        expect({ where, control: results["control world:80"], probes: Object.keys(results).length }).toEqual({ where, control: "open", probes: ports.length + 2 });
      }
      const answered = Object.entries(outside).flatMap(([where, results]) =>
        Object.entries(results)
          .filter(([id, result]) => !id.startsWith("control") && !/^(timeout|error:\w+)$/.test(result))
          .map(([id, result]) => `from ${where}: ${id} ${result}`),
      );
      expect(answered).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "7. inside the gate, every listening TCP and UDP socket is bound to its internal address or loopback",
    () => {
      const listeners = gateListeners(`${attacker.name}-gate`);
      // Control: the services are there to be seen.
      for (const port of ports) expect(listeners.some((l) => l.proto.startsWith("tcp") && l.port === port)).toBe(true);
      expect(listeners.some((l) => l.proto.startsWith("udp") && l.port === 53)).toBe(true);
      const elsewhere = listeners.filter((l) => l.address !== attacker.gateIp && !isLoopback(l.address));
      expect(elsewhere).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "the bottle still works through the gate: proxy, DNS, Claude Code's route",
    async () => {
      const out = await attacker.sh(
        [
          "curl -sS --max-time 10 http://allowed.test/through-the-gate",
          "dig +tries=1 +time=2 allowed.test | grep -o -m1 'status: [A-Z]*'",
          "curl -sS -o /dev/null -w 'route %{http_code}\\n' --max-time 10 http://gate:3129/elsewhere",
        ].join("; "),
      );
      expect(out.stdout).toContain("hello from allowed.test /through-the-gate");
      expect(out.stdout).toContain("status: NOERROR");
      expect(out.stdout).toContain("route 404");
      expect(world.events()).toContainEqual(expect.objectContaining({ ev: "http", url: "/through-the-gate", from: attacker.gateEgressIp }));
    },
    TEST_TIMEOUT_MS,
  );
});
