import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, objectsWithLabel, uniqueId, removeLabelled } from "../helpers/docker.ts";
import { makeTestCa, type TestCa } from "../helpers/tls.ts";
import { containerIp, startEchoHost, type WorldHost } from "../helpers/world.ts";

/**
 * Credential custody on the real engine: Claude Code inside a bottle logs in
 * through the gate's route with a token that only the gate holds; a
 * credential route adds a GitHub-style token for one path prefix only; what
 * an upstream echoes back never carries the real value. The "Anthropic API"
 * and "GitHub API" are one HTTPS test server under two made-up names, with a
 * certificate from a test CA.
 */

const random = () => Math.random().toString(36).slice(2, 12);
const CLAUDE_TOKEN = `sk-ant-oat01-${random()}${random()}-custodytest`;
const GH_TOKEN = `gh-real-${random()}${random()}-custodytest`;

/**
 * The test server: the Messages API (streamed events) on POST /v1/messages,
 * and an echo of the credential headers everywhere else. Every request is
 * logged as a SEEN line (the test reads them with docker logs).
 */
const API_SERVER = `
const https = require("node:https");
https.createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY }, (req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const seen = { host: req.headers.host, method: req.method, url: req.url, authorization: req.headers.authorization || null, apiKey: req.headers["x-api-key"] || null };
    console.log("SEEN " + JSON.stringify(seen));
    if (req.method === "POST" && req.url.startsWith("/v1/messages") && !req.url.includes("count_tokens")) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      const send = (type, data) => res.write("event: " + type + "\\ndata: " + JSON.stringify(Object.assign({ type }, data)) + "\\n\\n");
      send("message_start", { message: { id: "msg_custody", type: "message", role: "assistant", model: "claude-sonnet-4-5", content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } });
      send("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
      setTimeout(() => {
        send("content_block_delta", { index: 0, delta: { type: "text_delta", text: "hi from the custody test server" } });
        send("content_block_stop", { index: 0 });
        send("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 7 } });
        send("message_stop", {});
        res.end();
      }, 50);
      return;
    }
    if (req.url.endsWith("/echo")) {
      // What an exfiltration attempt would use: the credential headers, back in the body and a header.
      res.writeHead(200, { "content-type": "application/json", "x-echo-authorization": String(req.headers.authorization || "") });
      res.end(JSON.stringify(seen) + "\\n");
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "error", error: { type: "not_found_error", message: "not here" } }));
  });
}).listen(443, "0.0.0.0", () => console.log("listening"));
`;

interface Seen {
  host: string;
  method: string;
  url: string;
  authorization: string | null;
  apiKey: string | null;
}

function seenRequests(container: string): Seen[] {
  const out = Bun.spawnSync(["docker", "logs", container], { stdout: "pipe", stderr: "pipe" });
  return out.stdout
    .toString()
    .split("\n")
    .filter((line) => line.startsWith("SEEN "))
    .map((line) => JSON.parse(line.slice(5)) as Seen);
}

/** Does the stream of `docker export` (the bottle's whole filesystem) contain `needle`? */
async function filesystemContains(container: string, needle: string): Promise<boolean> {
  const proc = Bun.spawn(["docker", "export", container], { stdout: "pipe", stderr: "ignore" });
  const target = Buffer.from(needle);
  let tail = Buffer.alloc(0);
  let found = false;
  for await (const chunk of proc.stdout) {
    const data = Buffer.concat([tail, Buffer.from(chunk)]);
    if (data.includes(target)) {
      found = true;
      proc.kill();
      break;
    }
    tail = Buffer.from(data.subarray(Math.max(0, data.length - target.length)));
  }
  await proc.exited;
  return found;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)]));
}

describeDocker("credential custody", () => {
  let sandbox: Sandbox;
  let ca: TestCa;
  const agent = uniqueId("custody");
  const label = `bottle.test=${agent}`;
  let name = "";
  let server: WorldHost | undefined;

  const inBottle = (script: string) => runBottle(sandbox, ["exec", name, "--", "sh", "-c", script]);

  beforeAll(async () => {
    sandbox = makeSandbox({ CLAUDE_CODE_OAUTH_TOKEN: CLAUDE_TOKEN, GH_TOKEN });
    ca = makeTestCa();
    writeFile(
      join(sandbox.config, "bottles", "custody.yaml"),
      [
        "egress:",
        "  allow_private: [api.anthropic.test, api.github.test]",
        "  routes:",
        "    - host: api.github.test",
        "      paths: [/repos/acme/]",
        "      auth:",
        "        token: ${GH_TOKEN}",
        "auth:",
        "  upstream: https://api.anthropic.test",
        `ca_certs: [${ca.caPath}]`,
        "",
      ].join("\n"),
    );
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: custody\n---\ncustody test agent\n");
    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    expect(up.stderr.includes("bottle: ") ? up.stderr : "").toBe("");
    name = up.stdout.trim();
    const plan = JSON.parse(readFileSync(join(sandbox.state, "bottle", "bottles", name, "plan.json"), "utf8"));
    const { cert, key } = ca.issue(["api.anthropic.test", "api.github.test"]);
    server = startEchoHost(plan.images.gate.tag, `${name}-egress`, ["api.anthropic.test", "api.github.test"], label, {
      script: API_SERVER,
      env: { TLS_CERT: cert, TLS_KEY: key },
    });
  });

  afterAll(async () => {
    server?.remove();
    if (name) await runBottle(sandbox, ["down", name]);
    removeLabelled(`bottle.agent=${agent}`);
  });

  test("real Claude Code completes `claude -p` through the gate's route; the API saw the real token, the bottle only the placeholder", async () => {
    const out = await runBottle(sandbox, ["exec", name, "--", "claude", "-p", "say hi"]);
    expect(out.stderr).toBe("");
    expect(out.stdout).toContain("hi from the custody test server");
    expect(out.exitCode).toBe(0);
    const messages = seenRequests(server!.container).filter((seen) => seen.url.startsWith("/v1/messages"));
    expect(messages.length).toBeGreaterThan(0);
    for (const seen of messages) {
      expect(seen.host).toBe("api.anthropic.test");
      expect(seen.authorization).toBe(`Bearer ${CLAUDE_TOKEN}`);
      expect(seen.apiKey).toBeNull();
    }
    // Inside, Claude Code is pointed at the gate and holds a placeholder.
    const env = await inBottle('printf "%s|%s|%s" "$ANTHROPIC_BASE_URL" "$CLAUDE_CODE_OAUTH_TOKEN" "${ANTHROPIC_API_KEY:-unset}"');
    expect(env.stdout).toBe("http://gate:3129/anthropic|bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN|unset");
  });

  test("Claude Code's route answers on the internal network only, not from the egress side", async () => {
    const inside = await inBottle("curl -sS -o /dev/null -w '%{http_code}' --max-time 10 http://gate:3129/elsewhere");
    expect(inside.stdout).toBe("404");
    const gateEgressIp = containerIp(`${name}-gate`, `${name}-egress`);
    const probe = `require("net").connect(3129, "${gateEgressIp}").on("connect", () => { console.log("OPEN"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(0); })`;
    const outside = Bun.spawnSync(["docker", "exec", server!.container, "node", "-e", probe], { stdout: "pipe", stderr: "pipe" });
    expect(outside.stdout.toString().trim()).toBe("ECONNREFUSED");
  });

  test("the real tokens are nowhere in the bottle: env, files, /proc, process list, docker inspect", async () => {
    // A long-running process with the bottle's env, so /proc has something to show.
    const probe = await inBottle(
      "sleep 30 & env; for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done; ps auxww; cat /run/bottle/env ~/.claude.json",
    );
    expect(probe.exitCode).toBe(0);
    expect(probe.stdout).toContain("bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN");
    expect(probe.stdout).toContain("bottle-placeholder-GH_TOKEN");
    for (const token of [CLAUDE_TOKEN, GH_TOKEN]) {
      expect(probe.stdout).not.toContain(token);
      expect(docker("inspect", name)).not.toContain(token);
      expect(docker("inspect", `${name}-gate`)).not.toContain(token);
      expect(await filesystemContains(name, token)).toBe(false);
    }
    // The search does see what is there: the placeholders in the env file.
    expect(await filesystemContains(name, "bottle-placeholder-GH_TOKEN")).toBe(true);
    // Not in the host's state dir either (plan, audit log).
    for (const file of walk(join(sandbox.state, "bottle"))) {
      const text = readFileSync(file, "utf8");
      expect(text).not.toContain(CLAUDE_TOKEN);
      expect(text).not.toContain(GH_TOKEN);
    }
  }, 120_000);

  test("a route injects only for its path prefix; another path on the same host goes without the credential", async () => {
    const out = await inBottle(
      'curl -sS --max-time 20 -H "Authorization: Bearer $GH_TOKEN" https://api.github.test/repos/acme/echo && curl -sS --max-time 20 -H "Authorization: Bearer $GH_TOKEN" https://api.github.test/other/echo',
    );
    expect(out.stderr).toBe("");
    expect(out.exitCode).toBe(0);
    const seen = seenRequests(server!.container).filter((request) => request.host === "api.github.test");
    const matching = seen.filter((request) => request.url === "/repos/acme/echo");
    const other = seen.filter((request) => request.url === "/other/echo");
    expect(matching.length).toBeGreaterThan(0);
    expect(other.length).toBeGreaterThan(0);
    for (const request of matching) expect(request.authorization).toBe(`Bearer ${GH_TOKEN}`);
    for (const request of other) expect(request.authorization).toBe("Bearer bottle-placeholder-GH_TOKEN");
    // The audit log says what was injected, by name.
    const logs = await runBottle(sandbox, ["logs", name, "--gate", "egress", "--json"]);
    const lines = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.some((line) => line.host === "api.github.test" && line.path === "/repos/acme/echo" && line.auth === "injected (GH_TOKEN)")).toBe(true);
    expect(lines.some((line) => line.host === "api.github.test" && line.path === "/other/echo" && line.auth === undefined)).toBe(true);
    expect(lines.some((line) => line.host === "api.anthropic.test" && line.auth === "injected (CLAUDE_CODE_OAUTH_TOKEN)")).toBe(true);
    expect(logs.stdout).not.toContain(GH_TOKEN);
    expect(logs.stdout).not.toContain(CLAUDE_TOKEN);
    const human = await runBottle(sandbox, ["logs", name, "--gate", "egress"]);
    expect(human.stdout).toMatch(/api\.github\.test:443\/repos\/acme\/echo {2}\(route\).*auth: injected \(GH_TOKEN\)/);
  });

  test("an echo of the injected header comes back with the placeholder, in the body and in headers", async () => {
    const out = await inBottle('curl -sS -i --max-time 20 -H "Authorization: Bearer $GH_TOKEN" https://api.github.test/repos/acme/echo');
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toContain('"authorization":"Bearer bottle-placeholder-GH_TOKEN"');
    expect(out.stdout.toLowerCase()).toContain("x-echo-authorization: bearer bottle-placeholder-gh_token");
    expect(out.stdout).not.toContain(GH_TOKEN);
    // The server did get the real one.
    expect(seenRequests(server!.container).some((request) => request.authorization === `Bearer ${GH_TOKEN}`)).toBe(true);
  });

  test("the bottle trusts the gate's CA (name-constrained to the route's host) only through its bundle; the CA key stays in the gate", async () => {
    const pem = docker("exec", `${name}-gate`, "cat", "/etc/bottle/tls/ca.pem");
    const inside = await inBottle('cat ~/.bottle/gate-ca.pem; echo "bundle=$SSL_CERT_FILE $NODE_EXTRA_CA_CERTS $GIT_SSL_CAINFO $CURL_CA_BUNDLE"; grep -c "BEGIN CERTIFICATE" ~/.bottle/ca-bundle.pem; grep -rl "PRIVATE KEY" ~ 2>/dev/null; true');
    expect(inside.stdout).toContain(pem.trim());
    const bundle = "/home/agent/.bottle/ca-bundle.pem";
    expect(inside.stdout).toContain(`bundle=${bundle} ${bundle} ${bundle} ${bundle}`);
    expect(inside.stdout).not.toContain("PRIVATE KEY");
    const text = Bun.spawnSync(["openssl", "x509", "-noout", "-text"], { stdin: new Blob([pem]), stdout: "pipe" }).stdout.toString();
    expect(text).toContain("X509v3 Name Constraints: critical");
    expect(text).toContain("DNS:api.github.test");
    expect(text).not.toContain("DNS:api.anthropic.test");
    // Without the bundle, curl does not trust the gate's certificate.
    const strict = await inBottle("curl -sS --max-time 20 --cacert /etc/ssl/certs/ca-certificates.crt https://api.github.test/repos/acme/echo >/dev/null 2>&1 || echo refused");
    expect(strict.stdout).toContain("refused");
  });
});

describeDocker("no Claude Code credential", () => {
  test("`bottle up` says how to make one (claude setup-token) before creating anything; `-- CMD` runs without one", async () => {
    const sandbox = makeSandbox();
    const agent = uniqueId("nocred");
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: no credential\n---\n");
    const out = await runBottle(sandbox, ["up", agent, "--yes"]);
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain("claude setup-token");
    expect(out.stderr).toContain("CLAUDE_CODE_OAUTH_TOKEN");
    expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
    const dry = await runBottle(sandbox, ["up", agent, "--dry-run"]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain("claude setup-token");
    const command = await runBottle(sandbox, ["up", agent, "--yes", "--", "sh", "-c", 'echo "key=${ANTHROPIC_API_KEY:-none} url=${ANTHROPIC_BASE_URL:-none}"']);
    expect(command.exitCode).toBe(0);
    expect(command.stdout).toContain("key=none url=none");
    expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
  }, 300_000);
});
