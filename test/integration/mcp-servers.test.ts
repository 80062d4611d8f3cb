import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Docker } from "../../lib/docker.ts";
import { realExec } from "../../lib/exec.ts";
import { agentImageSpec, caContextFiles, ensureImage, imageRef, plannedImages } from "../../lib/images.ts";
import { API_HOST, type ApiServer, nodeImage, startApiServer } from "../helpers/api-server.ts";
import { describeDocker, docker, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { MCP_HOST, type McpServer, startMcpServer } from "../helpers/mcp-server.ts";
import { makeTestCa, type TestCa } from "../helpers/tls.ts";
import { startEchoHost } from "../helpers/world.ts";

/**
 * The two test MCP servers, proved against the real Claude Code in the agent
 * image, on an --internal network of the test's own: the HTTPS one (bearer
 * token required) as mcp.bottle.test, and the sh stdio one run inside the
 * agent's container. `claude mcp list` connects to both (and says when the
 * token is wrong); `claude -p` offers their tools to the model. No internet
 * host is ever contacted.
 */

const STDIO = join(import.meta.dir, "..", "fixtures", "mcp", "canary-stdio.sh");
const HOME = "/home/agent";
const BUNDLE = `${HOME}/ca-bundle.pem`;

/** A CONNECT-only proxy (what an HTTPS_PROXY is for TLS), logging each tunnel it opens. */
const CONNECT_PROXY = `
const http = require("node:http");
const net = require("node:net");
const proxy = http.createServer((req, res) => res.writeHead(405).end());
proxy.on("connect", (req, client, head) => {
  console.log("CONNECT " + req.url);
  const [host, port] = req.url.split(":");
  const upstream = net.connect(Number(port), host, () => {
    client.write("HTTP/1.1 200 Connection Established\\r\\n\\r\\n");
    upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on("error", () => client.destroy());
  client.on("error", () => upstream.destroy());
});
proxy.listen(3128, "0.0.0.0", () => console.log("listening"));
`;

/** The agent image as `bottle up` plans and builds it (built now when missing). */
async function agentImage(): Promise<string> {
  const client = new Docker(realExec);
  const spec = agentImageSpec(caContextFiles([], process.env), process.env);
  const { base } = await plannedImages(client, [imageRef(spec)], process.env);
  return (await ensureImage(client, { ...spec, base }, process.env)).ref.tag;
}

describeDocker("the test MCP servers, with the real Claude Code", () => {
  const id = uniqueId("mcp");
  const label = `bottle.test=${id}`;
  const network = `${id}-net`;
  const agent = `${id}-agent`;
  const token = `canary-${crypto.randomUUID()}`;
  let ca: TestCa;
  let server: McpServer;
  let stdioPath = "";

  /** Runs a shell script as the agent (uid 1000) in /workspace; stdin optional. */
  function inAgent(script: string, options: { env?: Record<string, string>; stdin?: string } = {}) {
    const env = Object.entries(options.env ?? {}).flatMap(([key, value]) => ["--env", `${key}=${value}`]);
    const out = Bun.spawnSync(["docker", "exec", "-i", ...env, agent, "sh", "-c", script], {
      stdin: new Blob([options.stdin ?? ""]),
      stdout: "pipe",
      stderr: "pipe",
    });
    return { exitCode: out.exitCode, stdout: out.stdout.toString(), stderr: out.stderr.toString() };
  }

  const writeFileIn = (path: string, content: unknown) => {
    const out = inAgent(`mkdir -p "$(dirname "${path}")" && cat > "${path}"`, { stdin: JSON.stringify(content, null, 2) });
    if (out.exitCode !== 0) throw new Error(`writing ${path}: ${out.stderr}`);
  };

  /** Both servers as Claude Code's config names them (`mcpServers`), the HTTP one with this Authorization header. */
  const servers = (authorization: string, canaryFile: string) => ({
    "canary-http": { type: "http", url: `https://${MCP_HOST}/mcp`, headers: { Authorization: authorization } },
    "canary-stdio": { type: "stdio", command: stdioPath, args: [], env: { CANARY_FILE: canaryFile } },
  });

  /** User scope: ~/.claude.json's `mcpServers` (the whole file replaced; Claude Code adds its own keys on first run). */
  const userScope = (mcpServers: object) => writeFileIn(`${HOME}/.claude.json`, { mcpServers });

  const mcpList = (env: Record<string, string> = {}) => inAgent("claude mcp list", { env });
  const lineOf = (out: string, server: string) => out.split("\n").find((line) => line.startsWith(`${server}: `)) ?? `(no line for ${server} in:\n${out})`;
  const since = (count: number) => server.requests().slice(count);

  beforeAll(async () => {
    const image = await agentImage();
    ca = makeTestCa();
    docker("network", "create", "--internal", "--label", label, network);
    server = startMcpServer(ca, label, token);
    server.join(network);
    docker("run", "-d", "--name", agent, "--label", label, "--network", network, "--user", "1000", "--env", `SSL_CERT_FILE=${BUNDLE}`, "--env", `NODE_EXTRA_CA_CERTS=${BUNDLE}`, image, "sleep", "infinity");
    // The image's own bundle plus the test CA, as bottle gives a bottle its CAs.
    const bundled = inAgent(`cat /etc/ssl/certs/ca-certificates.crt - > ${BUNDLE}`, { stdin: ca.caPem });
    if (bundled.exitCode !== 0) throw new Error(bundled.stderr);
    stdioPath = `${HOME}/canary-stdio.sh`;
    docker("cp", STDIO, `${agent}:${stdioPath}`);
  }, 600_000);

  afterAll(() => {
    removeLabelled(label);
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  test("the agent is only on the test's --internal network (nothing outside is tried)", () => {
    expect(docker("network", "inspect", "--format", "{{.Internal}}", network)).toBe("true");
    expect(Object.keys(JSON.parse(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", agent)))).toEqual([network]);
  });

  test("claude mcp list (user scope, ~/.claude.json): both ✔ Connected; the HTTP server saw the token on every request, the stdio server ran", () => {
    userScope(servers(`Bearer ${token}`, "/tmp/canary-list.log"));
    const before = server.requests().length;
    const out = mcpList();
    expect(out.exitCode).toBe(0);
    expect(lineOf(out.stdout, "canary-http")).toBe(`canary-http: https://${MCP_HOST}/mcp (HTTP) - ✔ Connected`);
    expect(lineOf(out.stdout, "canary-stdio")).toMatch(/^canary-stdio: \S+canary-stdio\.sh +- ✔ Connected$/);

    const seen = since(before);
    expect(seen.map((request) => request.rpc)).toEqual(expect.arrayContaining(["initialize", "notifications/initialized", "tools/list"]));
    for (const request of seen) expect(request.authorization).toBe(`Bearer ${token}`);
    const initialize = seen.find((request) => request.rpc === "initialize");
    expect(JSON.parse(initialize?.body ?? "{}").params?.clientInfo?.name).toBe("claude-code");

    const ran = inAgent("cat /tmp/canary-list.log").stdout.split("\n");
    expect(ran).toEqual(expect.arrayContaining(["initialize", "notifications/initialized", "tools/list"]));
  });

  test("a wrong token: the server answers 401 and logs it; mcp list says ✘ Failed to connect (and the stdio server stays connected)", () => {
    userScope(servers("Bearer not-the-token", "/tmp/canary-wrong.log"));
    const before = server.requests().length;
    const out = mcpList();
    expect(lineOf(out.stdout, "canary-http")).toStartWith(`canary-http: https://${MCP_HOST}/mcp (HTTP) - ✘ Failed to connect`);
    expect(lineOf(out.stdout, "canary-http")).toContain("HTTP 401");
    expect(lineOf(out.stdout, "canary-stdio")).toEndWith("✔ Connected");
    const seen = since(before);
    expect(seen.length).toBeGreaterThan(0);
    for (const request of seen) expect(request.authorization).toBe("Bearer not-the-token");

    // The same, asked directly: no token or a wrong one is refused, the right one answers.
    const ping = (header: string) =>
      inAgent(`curl -sS -o /dev/null -w '%{http_code}' ${header} -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' https://${MCP_HOST}/mcp`).stdout;
    expect(ping("")).toBe("401");
    expect(ping("-H 'Authorization: Bearer not-the-token'")).toBe("401");
    expect(ping(`-H 'Authorization: Bearer ${token}'`)).toBe("200");
    expect(server.requests().at(-3)?.authorization).toBeNull();
  });

  test("tools/call: each server's one tool answers its canary text; the HTTP one answers GET 405, DELETE 204", () => {
    const call = JSON.stringify({ jsonrpc: "2.0", id: "call-1", method: "tools/call", params: { name: "canary_http_tool", arguments: {} } });
    const http = inAgent(`curl -sS -H 'Authorization: Bearer ${token}' -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' --data-binary @- https://${MCP_HOST}/mcp`, { stdin: call });
    expect(JSON.parse(http.stdout)).toEqual({ jsonrpc: "2.0", id: "call-1", result: { content: [{ type: "text", text: "canary-http-result" }] } });
    // No server-initiated stream to GET (Claude Code asks for one after initialize), no session to DELETE.
    const status = (method: string) => inAgent(`curl -sS -o /dev/null -w '%{http_code}' -X ${method} -H 'Authorization: Bearer ${token}' https://${MCP_HOST}/mcp`).stdout;
    expect([status("GET"), status("DELETE")]).toEqual(["405", "204"]);

    const lines = [
      { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "canary_stdio_tool", arguments: {} } },
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", id: "s", method: "ping" },
    ];
    const stdio = inAgent(stdioPath, { stdin: lines.map((line) => JSON.stringify(line)).join("\n") });
    expect(stdio.stdout.trim().split("\n").map((line) => JSON.parse(line))).toEqual([
      { jsonrpc: "2.0", id: 7, result: { content: [{ type: "text", text: "canary-stdio-result" }] } },
      { jsonrpc: "2.0", id: "s", result: {} },
    ]);
  });

  test("project scope (.mcp.json in the cwd): ⏸ Pending approval until the user's settings approve it; mcp list has no --mcp-config", () => {
    userScope({});
    writeFileIn("/workspace/.mcp.json", { mcpServers: servers(`Bearer ${token}`, "/tmp/canary-project.log") });
    try {
      const pending = mcpList();
      expect(lineOf(pending.stdout, "canary-http")).toEndWith("⏸ Pending approval (run `claude` to approve)");
      expect(inAgent("test -e /tmp/canary-project.log").exitCode).not.toBe(0);

      writeFileIn(`${HOME}/.claude/settings.json`, { enabledMcpjsonServers: ["canary-http", "canary-stdio"] });
      const approved = mcpList();
      expect(lineOf(approved.stdout, "canary-http")).toEndWith("✔ Connected");
      expect(lineOf(approved.stdout, "canary-stdio")).toEndWith("✔ Connected");

      expect(inAgent("claude mcp list --mcp-config /workspace/.mcp.json").stderr).toContain("unknown option '--mcp-config'");
    } finally {
      inAgent(`rm -f /workspace/.mcp.json ${HOME}/.claude/settings.json`);
    }
  });

  test("HTTPS_PROXY: Claude Code tunnels to the HTTP server through the proxy (CONNECT); NO_PROXY goes direct", () => {
    userScope(servers(`Bearer ${token}`, "/tmp/canary-proxy.log"));
    const proxy = startEchoHost(nodeImage(), network, ["proxy.bottle.test"], label, { script: CONNECT_PROXY });
    const tunnels = () => docker("logs", proxy.container).split("\n").filter((line) => line.startsWith("CONNECT "));
    const proxyEnv = { HTTPS_PROXY: "http://proxy.bottle.test:3128", https_proxy: "http://proxy.bottle.test:3128" };

    const through = mcpList(proxyEnv);
    expect(lineOf(through.stdout, "canary-http")).toEndWith("✔ Connected");
    expect(tunnels()).toContain(`CONNECT ${MCP_HOST}:443`);

    const before = tunnels().length;
    const direct = mcpList({ ...proxyEnv, NO_PROXY: MCP_HOST, no_proxy: MCP_HOST });
    expect(lineOf(direct.stdout, "canary-http")).toEndWith("✔ Connected");
    expect(tunnels().length).toBe(before);
  });

  test("claude -p: --mcp-config FILE, user scope and an unapproved .mcp.json all offer both servers' tools to the model", async () => {
    const api: ApiServer = startApiServer(ca, label);
    try {
      await api.joinWhenCreated(network);
      const env = { ANTHROPIC_BASE_URL: `https://${API_HOST}`, ANTHROPIC_API_KEY: "sk-ant-api03-bottle-test-key" };
      const ask = (args: string, prompt: string) => {
        const out = inAgent(`claude -p ${args} -- '${prompt}'`, { env });
        expect(out.stdout).toContain(`bottle-test answer: ${prompt}`);
        const sent = api.requests().find((request) => request.body.includes(prompt))?.body ?? "";
        // Claude Code defers MCP tools: the model sees their names and loads a schema when it wants one.
        expect(sent).toContain("mcp__canary-http__canary_http_tool");
        expect(sent).toContain("mcp__canary-stdio__canary_stdio_tool");
      };

      userScope({});
      writeFileIn("/tmp/mcp.json", { mcpServers: servers(`Bearer ${token}`, "/tmp/canary-p.log") });
      ask("--strict-mcp-config --mcp-config /tmp/mcp.json", "with mcp-config");

      userScope(servers(`Bearer ${token}`, "/tmp/canary-p.log"));
      ask("", "with user scope");

      userScope({});
      writeFileIn("/workspace/.mcp.json", { mcpServers: servers(`Bearer ${token}`, "/tmp/canary-p.log") });
      ask("", "with dot mcp json");
      inAgent("rm -f /workspace/.mcp.json");

      // Each of the three runs started the stdio server and listed its tools.
      expect(Number(inAgent("grep -c '^tools/list$' /tmp/canary-p.log").stdout.trim())).toBeGreaterThanOrEqual(3);
    } finally {
      api.remove();
    }
  });
});
