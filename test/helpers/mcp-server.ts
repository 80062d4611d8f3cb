import { joinNetwork, joinWhenCreated } from "./docker.ts";
import { loggedRequests, startTlsNodeServer } from "./api-server.ts";
import type { TestCa } from "./tls.ts";

/**
 * A user's remote MCP server, as real Claude Code connects to it: the
 * streamable HTTP transport (JSON-RPC 2.0 POSTed to /mcp, answered with
 * application/json) over HTTPS under a made-up name, with a certificate from
 * a test CA. It demands `Authorization: Bearer <token>` on every request
 * (401 otherwise) and offers one tool, `canary_http_tool`, whose call returns
 * "canary-http-result". Every request is logged, refused ones included, so
 * tests can see what the client sent.
 */

export const MCP_HOST = "mcp.bottle.test";

const SERVER = `
const https = require("node:https");
const bearer = "Bearer " + process.env.MCP_TOKEN;
const versions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const tool = { name: "canary_http_tool", description: "Answers canary-http-result.", inputSchema: { type: "object", properties: {} } };
const results = {
  initialize: (p) => ({
    protocolVersion: versions.includes(p && p.protocolVersion) ? p.protocolVersion : versions[0],
    capabilities: { tools: {} },
    serverInfo: { name: "canary-http", version: "1.0.0" },
  }),
  ping: () => ({}),
  "tools/list": () => ({ tools: [tool] }),
  "tools/call": (p) => (p && p.name === tool.name ? { content: [{ type: "text", text: "canary-http-result" }] } : undefined),
};
// A request (it has an id) gets a response; notifications and responses get none.
function respond(m) {
  if (!m || typeof m !== "object" || m.id === undefined || typeof m.method !== "string") return undefined;
  const result = results[m.method] ? results[m.method](m.params) : undefined;
  if (result !== undefined) return { jsonrpc: "2.0", id: m.id, result };
  const error = results[m.method] ? { code: -32602, message: "unknown tool" } : { code: -32601, message: "method not found" };
  return { jsonrpc: "2.0", id: m.id, error };
}
function json(res, status, body, headers) {
  res.writeHead(status, Object.assign({ "content-type": "application/json" }, headers));
  res.end(JSON.stringify(body));
}
https.createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY }, (req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    let message;
    try { message = body ? JSON.parse(body) : undefined; } catch {}
    const rpc = Array.isArray(message) ? message.map((m) => m && m.method) : (message && message.method) || null;
    console.log("REQ " + JSON.stringify({ method: req.method, url: req.url, authorization: req.headers.authorization || null, rpc, headers: req.headers, body }));
    if (req.headers.authorization !== bearer)
      return json(res, 401, { jsonrpc: "2.0", id: null, error: { code: -32001, message: "unauthorized" } }, { "www-authenticate": 'Bearer realm="canary"' });
    if (req.url.split("?")[0] !== "/mcp") return json(res, 404, { error: "not here" });
    // No sessions, no server-initiated stream: nothing to GET, nothing to end.
    if (req.method === "GET") return json(res, 405, { error: "no event stream here" }, { allow: "POST, DELETE" });
    if (req.method === "DELETE") return res.writeHead(204).end();
    if (req.method !== "POST") return json(res, 405, { error: "POST only" }, { allow: "POST, DELETE" });
    if (message === undefined) return json(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    const answers = (Array.isArray(message) ? message : [message]).map(respond).filter(Boolean);
    if (answers.length === 0) return res.writeHead(202).end();
    json(res, 200, Array.isArray(message) ? answers : answers[0]);
  });
}).listen(443, "0.0.0.0", () => console.log("listening"));
`;

export interface McpRequest {
  /** The HTTP method. */
  method: string;
  url: string;
  authorization: string | null;
  /** The JSON-RPC method (a list for a batch; null when the body is none). */
  rpc: string | string[] | null;
  headers: Record<string, string>;
  body: string;
}

export interface McpServer {
  container: string;
  host: string;
  /** Every request so far, refused ones included, in order. */
  requests(): McpRequest[];
  /** Joins the network under `host` once it exists (a launch makes it). */
  joinWhenCreated(network: string, timeoutMs?: number): Promise<void>;
  /** Joins an existing network under `host`. */
  join(network: string): void;
  remove(): void;
}

/** Started on no network of its own; join it to the networks that should reach it as `host`. */
export function startMcpServer(ca: TestCa, label: string, token: string, host = MCP_HOST): McpServer {
  const container = startTlsNodeServer("mcp", label, ca.issue([host]), SERVER, { MCP_TOKEN: token });
  return {
    container,
    host,
    requests: () => loggedRequests<McpRequest>(container),
    joinWhenCreated: (network, timeoutMs) => joinWhenCreated(container, network, host, timeoutMs),
    join: (network) => joinNetwork(container, network, host),
    remove: () => void Bun.spawnSync(["docker", "rm", "-f", container], { stdout: "pipe", stderr: "pipe" }),
  };
}
