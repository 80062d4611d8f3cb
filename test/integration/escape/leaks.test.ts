import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Attacker, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, describeEscape, tearDown, upAttacker } from "../../helpers/escape-world.ts";
import { b64, b64url, everyByte, hex, jsonEveryChar, reversed } from "../../helpers/spellings.ts";
import { makeTestCa } from "../../helpers/tls.ts";
import { startEchoHost, type WorldHost } from "../../helpers/world.ts";

/**
 * Secrets through the gate in the other direction: a credential route's
 * host that reflects the injected token back to the bottle (in header names,
 * values and the body, encoded every way it can think of). The world is a
 * container under a made-up name: `reflect.test` (HTTPS, the route's host,
 * with a certificate from a test CA the bottle's manifest trusts).
 */

const TOKEN = `refl-${crypto.randomUUID().replace(/-/g, "")}`;
const PLACEHOLDER = "bottle-placeholder-REFLECT_TOKEN";

const WORLD = `
const https = require("node:https");
const ev = (o) => console.log("EV " + JSON.stringify(o));
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
}).listen(443, "0.0.0.0", () => console.log("listening"));
`;

interface WorldEvent {
  ev: string;
  url?: string;
  authorization?: string;
  forms?: Record<string, string>;
}

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

describeEscape(["docker"], "the test world sits on the docker backend's egress network", "secrets leaking through reflections", () => {
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
      sandboxEnv: { REFLECT_TOKEN: TOKEN },
      manifest: [
        "egress:",
        "  allow_private: [reflect.test]",
        "  routes:",
        "    - host: reflect.test",
        "      auth:",
        "        token: ${REFLECT_TOKEN}",
        `ca_certs: [${ca.caPath}]`,
      ],
    });
    const { cert, key } = ca.issue(["reflect.test"]);
    world = startEchoHost(attacker.gateImage, `${attacker.name}-egress`, ["reflect.test"], attacker.label, {
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
});
