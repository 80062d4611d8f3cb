import { BASE_IMAGE, joinWhenCreated, testImage, uniqueId } from "./docker.ts";
import type { TestCa } from "./tls.ts";
import { waitForLogLine } from "./world.ts";

/**
 * A stand-in for the Anthropic API that real Claude Code in a bottle talks
 * to through the gate (credential custody): HTTPS under a made-up name with
 * a certificate from a test CA, the Messages API's streamed events on POST
 * /v1/messages. It answers "bottle-test answer: <the last user message>", or
 * an API error when that message asks for one, and logs every request with
 * its body, so tests can see what Claude Code sent (earlier turns included).
 */

export const API_HOST = "api.anthropic.test";

const SERVER = `
const https = require("node:https");
https.createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY }, (req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    console.log("REQ " + JSON.stringify({ method: req.method, url: req.url, authorization: req.headers.authorization || null, apiKey: req.headers["x-api-key"] || null, body }));
    if (req.method !== "POST" || !req.url.startsWith("/v1/messages") || req.url.includes("count_tokens")) {
      res.writeHead(404, { "content-type": "application/json" });
      return res.end(JSON.stringify({ type: "error", error: { type: "not_found_error", message: "not here" } }));
    }
    let last = "";
    try {
      const messages = JSON.parse(body).messages || [];
      const user = messages.filter((m) => m.role === "user").pop();
      const content = user ? user.content : "";
      // Claude Code puts reminders in text parts before the user's own: the last part is what was typed.
      last = typeof content === "string" ? content : (content.filter((part) => part.type === "text").pop() || { text: "" }).text;
    } catch {}
    if (last.includes("please-fail")) {
      res.writeHead(400, { "content-type": "application/json" });
      return res.end(JSON.stringify({ type: "error", error: { type: "invalid_request_error", message: "the test API refuses this on purpose" } }));
    }
    const text = "bottle-test answer: " + last.replace(/\\s+/g, " ").trim().slice(-120);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (type, data) => res.write("event: " + type + "\\ndata: " + JSON.stringify(Object.assign({ type }, data)) + "\\n\\n");
    send("message_start", { message: { id: "msg_test", type: "message", role: "assistant", model: "claude-sonnet-4-5", content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } });
    send("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
    send("content_block_delta", { index: 0, delta: { type: "text_delta", text } });
    send("content_block_stop", { index: 0 });
    send("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 7 } });
    send("message_stop", {});
    res.end();
  });
}).listen(443, "0.0.0.0", () => console.log("listening"));
`;

/** Node.js on the test's Debian base (no registry to pull from), built once per base. */
export function nodeImage(): string {
  return testImage(
    "bottle-test-node",
    "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs >/dev/null && rm -rf /var/lib/apt/lists/*\n",
  );
}

export interface ApiRequest {
  method: string;
  url: string;
  authorization: string | null;
  apiKey: string | null;
  body: string;
}

export interface ApiServer {
  container: string;
  /** Every request so far, in order. */
  requests(): ApiRequest[];
  /** Joins the bottle's egress network as api.anthropic.test once the launch has made it. */
  joinWhenCreated(network: string, timeoutMs?: number): Promise<void>;
  remove(): void;
}

/** The bottle manifest lines that send Claude Code's API calls here (through the gate, which holds the token). */
export function apiManifest(ca: TestCa): string[] {
  return ["egress:", `  allow_private: [${API_HOST}]`, "auth:", `  upstream: https://${API_HOST}`, `ca_certs: [${ca.caPath}]`];
}

/**
 * Runs a Node.js HTTPS server script (TLS_CERT / TLS_KEY in its env, plus
 * `env`) detached, on no network of its own, and waits for it to print
 * "listening". Returns the container's name.
 */
export function startTlsNodeServer(prefix: string, label: string, tls: { cert: string; key: string }, script: string, env: Record<string, string> = {}): string {
  const container = uniqueId(prefix);
  const vars = { TLS_CERT: tls.cert, TLS_KEY: tls.key, ...env };
  // Values travel by name from this process's environment, never on the command line.
  const out = Bun.spawnSync(
    ["docker", "run", "-d", "--name", container, "--label", label, ...Object.keys(vars).flatMap((name) => ["--env", name]), "--entrypoint", "node", nodeImage(), "-e", script],
    { env: { ...process.env, ...vars }, stdout: "pipe", stderr: "pipe" },
  );
  if (out.exitCode !== 0) throw new Error(`starting ${container} failed: ${out.stderr.toString()}`);
  waitForLogLine(container, "listening");
  return container;
}

/** The JSON a server logged after "REQ " (one line per request), in order. */
export function loggedRequests<T>(container: string): T[] {
  const logs = Bun.spawnSync(["docker", "logs", container], { stdout: "pipe", stderr: "pipe" }).stdout.toString();
  return logs
    .split("\n")
    .filter((line) => line.startsWith("REQ "))
    .map((line) => JSON.parse(line.slice(4)) as T);
}

/** Started before any bottle exists (on no network of its own), so it is there when Claude Code's first call is made. */
export function startApiServer(ca: TestCa, label: string): ApiServer {
  const container = startTlsNodeServer("api", label, ca.issue([API_HOST]), SERVER);
  return {
    container,
    requests: () => loggedRequests<ApiRequest>(container),
    joinWhenCreated: (network, timeoutMs) => joinWhenCreated(container, network, API_HOST, timeoutMs),
    remove: () => void Bun.spawnSync(["docker", "rm", "-f", container], { stdout: "pipe", stderr: "pipe" }),
  };
}

export { BASE_IMAGE };
