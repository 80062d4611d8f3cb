import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { API_HOST, type ApiServer, startApiServer } from "../helpers/api-server.ts";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, dockerOk, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { MCP_HOST, type McpServer, startMcpServer } from "../helpers/mcp-server.ts";
import { makeTestCa, type TestCa } from "../helpers/tls.ts";

/**
 * The user's own Claude setup in a bottle, with the real Claude Code against
 * the test API, from a fake HOME: memory (with an import), a slash command, a
 * sub-agent, settings whose env holds a fake secret and whose hook must run
 * inside, and two MCP servers of ~/.claude.json — stdio (runs in the bottle)
 * and HTTP behind a bearer token (the gate holds it). The host's files stay
 * byte-identical.
 */

const TOKEN = `sk-ant-oat01-${crypto.randomUUID().replace(/-/g, "")}-setup`;
const MCP_TOKEN = `mcp-${crypto.randomUUID()}`;
const tag = crypto.randomUUID().slice(0, 8);
const CANARY = {
  memory: `purple-elephant-${tag}`,
  imported: `imported-note-${tag}`,
  command: `command-canary-${tag}`,
  agent: `agent-canary-${tag}`,
  secret: `fake-secret-${crypto.randomUUID()}`,
};

/** Every file under `dir` with its SHA-256: the host's Claude setup, to prove it was only read. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else out[full] = `${statSync(full).mode}:${createHash("sha256").update(readFileSync(full)).digest("hex")}`;
    }
  };
  walk(dir);
  return out;
}

describeDocker("the user's Claude setup in a bottle", () => {
  let sandbox: Sandbox;
  let ca: TestCa;
  let api: ApiServer;
  let mcp: McpServer;
  let before: Record<string, string>;
  const agent = uniqueId("setup");
  const label = `bottle.test=${agent}`;
  const name = `bottle-${agent}`;
  const bottle = (args: string[]) => runBottle(sandbox, args);
  const inBottle = async (script: string) => (await bottle(["exec", name, "--", "sh", "-c", script])).stdout;

  beforeAll(() => {
    sandbox = makeSandbox({ CLAUDE_CODE_OAUTH_TOKEN: TOKEN });
    ca = makeTestCa();
    const home = sandbox.home;
    writeFile(join(home, ".claude", "CLAUDE.md"), `# My memory\nAlways remember ${CANARY.memory}.\nMore in @notes/extra.md\n`);
    writeFile(join(home, ".claude", "notes", "extra.md"), `The imported note says ${CANARY.imported}.\n`);
    writeFile(join(home, ".claude", "commands", "canary-cmd.md"), `Reply with the command canary ${CANARY.command}.\n`);
    writeFile(join(home, ".claude", "agents", "canary-agent.md"), `---\nname: canary-agent\ndescription: Use for ${CANARY.agent} questions\n---\nYou help.\n`);
    writeFile(
      join(home, ".claude", "settings.json"),
      JSON.stringify({
        env: { FAKE_SECRET: CANARY.secret },
        hooks: { SessionStart: [{ hooks: [{ type: "command", command: "echo hook-ran-in-bottle >> /tmp/hook-canary" }] }] },
      }),
    );
    writeFile(
      join(home, ".claude.json"),
      JSON.stringify({
        mcpServers: {
          "canary-http": { type: "http", url: `https://${MCP_HOST}/mcp`, headers: { Authorization: `Bearer ${MCP_TOKEN}` } },
          "canary-stdio": { command: "/workspace/canary-stdio.sh", env: { CANARY_FILE: "/tmp/stdio-canary" } },
          "not-installed": { command: "no-such-mcp-server" },
        },
      }),
    );
    copyFileSync(join(import.meta.dir, "..", "fixtures", "mcp", "canary-stdio.sh"), join(sandbox.project, "canary-stdio.sh"));
    chmodSync(join(sandbox.project, "canary-stdio.sh"), 0o755);
    chownSync(sandbox.project, 1000, 1000);
    writeFile(
      join(sandbox.config, "bottles", "setup.yaml"),
      [
        "egress:",
        `  allow: [${MCP_HOST}]`,
        `  allow_private: [${API_HOST}, ${MCP_HOST}]`,
        "auth:",
        `  upstream: https://${API_HOST}`,
        `ca_certs: [${ca.caPath}]`,
        "claude:",
        "  settings: true",
        "  hooks: true",
        "  mcp: [canary-http, canary-stdio]",
        "",
      ].join("\n"),
    );
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: setup\n---\nBe brief.\n");
    before = { ...fingerprint(join(home, ".claude")), [join(home, ".claude.json")]: fingerprint(home)[join(home, ".claude.json")]! };
    api = startApiServer(ca, label);
    mcp = startMcpServer(ca, label, MCP_TOKEN);
  });

  afterAll(async () => {
    await bottle(["down", "--all", "--forget"]);
    removeLabelled(label, `bottle.agent=${agent}`);
  }, 120_000);

  test(
    "the preflight lists what comes in, item by item, and what was left out",
    async () => {
      const out = await bottle(["up", agent, "--dry-run"]);
      expect(out.exitCode).toBe(0);
      for (const row of [
        "claude     memory: ~/.claude/CLAUDE.md and 1 file it imports",
        "commands: 1 file from ~/.claude/commands/",
        "sub-agents: 1 file from ~/.claude/agents/",
        "settings: ~/.claude/settings.json (less 1 key(s) that carry secrets)",
        "hooks: SessionStart — they run inside the bottle, as the agent",
        "mcp canary-http: http via the gate to mcp.bottle.test, Authorization held by the gate",
        "mcp canary-stdio: stdio, runs in the bottle with 1 env value(s)",
        "note       claude.output_styles: there is no ~/.claude/output-styles/",
        "note       settings.json env left out",
      ])
        expect(out.stdout).toContain(row);
      expect(out.stdout + out.stderr).not.toContain(CANARY.secret);
      expect(out.stdout + out.stderr).not.toContain(MCP_TOKEN);
    },
    60_000,
  );

  test(
    "bottle run -p /canary-cmd: the API gets the memory (and its import) in the system prompt, the command's text, the sub-agent",
    async () => {
      const joined = Promise.all([api.joinWhenCreated(`${name}-egress`), mcp.joinWhenCreated(`${name}-egress`)]);
      const run = await bottle(["run", agent, "--yes", "-p", "/canary-cmd"]);
      await joined;
      expect(run.exitCode).toBe(0);
      const bodies = api.requests().map((request) => request.body);
      const asked = bodies.find((body) => body.includes(CANARY.command));
      expect(asked).toBeDefined();
      expect(asked).toContain(CANARY.memory);
      expect(asked).toContain(CANARY.imported);
      expect(asked).toContain(CANARY.agent);
      expect(bodies.some((body) => body.includes(CANARY.secret))).toBe(false);
    },
    300_000,
  );

  test(
    "in a running bottle: both MCP servers connected, the HTTP one saw the real token while the bottle holds a placeholder; the hook ran; the fake secret is nowhere",
    async () => {
      const joined = Promise.all([api.joinWhenCreated(`${name}-egress`), mcp.joinWhenCreated(`${name}-egress`)]);
      const up = await bottle(["up", agent, "--yes", "--detach"]);
      await joined;
      expect(up.exitCode).toBe(0);
      try {
        await runningChecks();
      } finally {
        await bottle(["down", name]);
      }
    },
    300_000,
  );

  async function runningChecks(): Promise<void> {
      const seenBefore = mcp.requests().length;
      const list = await bottle(["exec", name, "--", "claude", "mcp", "list"]);
      expect(list.stdout).toMatch(/canary-http: https:\/\/mcp\.bottle\.test\/mcp \(HTTP\) - ✔ Connected/);
      expect(list.stdout).toMatch(/canary-stdio: \/workspace\/canary-stdio\.sh\s+- ✔ Connected/);
      const seen = mcp.requests().slice(seenBefore);
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((request) => request.authorization === `Bearer ${MCP_TOKEN}`)).toBe(true);
      expect(await inBottle("cat /tmp/stdio-canary")).toContain("initialize");

      const config = await inBottle("cat ~/.claude.json");
      expect(config).toContain("bottle-placeholder-MCP_CANARY_HTTP_AUTHORIZATION");
      expect(config).not.toContain(MCP_TOKEN);
      // Claude Code's session started (its SessionStart hook ran in the bottle, as the agent).
      const deadline = Date.now() + 60_000;
      while (!(await inBottle("cat /tmp/hook-canary 2>/dev/null")).includes("hook-ran-in-bottle") && Date.now() < deadline) await Bun.sleep(500);
      expect(await inBottle("cat /tmp/hook-canary")).toContain("hook-ran-in-bottle");
      // Neither the settings' secret nor the MCP token: not in files, env or any process.
      // (The search reads it from a file outside what it searches, so no command line of its own holds it.)
      for (const secret of [CANARY.secret, MCP_TOKEN]) {
        const found = await inBottle(
          `echo ${Buffer.from(secret).toString("base64")} | base64 -d > /dev/shm/p; grep -rlsFf /dev/shm/p /home /tmp /run /etc /workspace /var /root /opt 2>/dev/null; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -cFf /dev/shm/p; rm -f /dev/shm/p; true`,
        );
        expect(found.trim()).toBe("0");
      }
      // The user's memory, commands and sub-agent are in the kept home, and the bottle's own memory imports the user's.
      const kept = await inBottle("head -n 1 ~/.claude/CLAUDE.md; ls ~/.claude/commands ~/.claude/agents");
      expect(kept).toStartWith("@/home/agent/.bottle/claude/CLAUDE.md\n");
      expect(kept).toContain("canary-cmd.md");
      expect(kept).toContain("canary-agent.md");
  }

  test(
    "a stdio server whose command is not in the image stops the launch, naming it and the fix; nothing is left",
    async () => {
      writeFile(join(sandbox.config, "agents", `${agent}-missing.md`), "---\nbottle: setup\nclaude:\n  mcp: [not-installed]\n---\n");
      const out = await bottle(["up", `${agent}-missing`, "--yes", "--detach"]);
      expect(out.exitCode).toBe(1);
      expect(out.stderr).toContain('the MCP server "not-installed" (no-such-mcp-server) cannot run: not in the bottle\'s image');
      expect(out.stderr).toContain("image: { dockerfile:");
      expect(dockerOk("container", "inspect", `bottle-${agent}-missing`)).toBe(false);
    },
    300_000,
  );

  test("an unknown MCP server or a broken settings.json stops the launch before anything exists, naming file, line and fix", async () => {
    writeFile(join(sandbox.config, "agents", `${agent}-unknown.md`), "---\nbottle: setup\nclaude:\n  mcp: [canary-htp]\n---\n");
    const unknown = await bottle(["up", `${agent}-unknown`, "--yes", "--detach"]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain(`agents/${agent}-unknown.md:4:9: claude.mcp[0]: no MCP server "canary-htp" in ~/.claude.json`);
    expect(unknown.stderr).toContain('did you mean "canary-http"');
    const settings = join(sandbox.home, ".claude", "settings.json");
    const good = readFileSync(settings, "utf8");
    writeFile(settings, '{\n  "hooks": {\n    "Stop": [\n  }\n}\n');
    try {
      const broken = await bottle(["up", agent, "--yes", "--detach"]);
      expect(broken.exitCode).toBe(1);
      expect(broken.stderr).toContain("~/.claude/settings.json:4:");
      expect(broken.stderr).toContain("is not valid JSON");
    } finally {
      writeFile(settings, good);
    }
    expect(docker("ps", "-a", "--filter", `label=bottle.agent=${agent}-unknown`, "--format", "{{.Names}}")).toBe("");
    expect(dockerOk("container", "inspect", name)).toBe(false);
  });

  test("the host's ~/.claude and ~/.claude.json are byte-identical afterwards", () => {
    const after = { ...fingerprint(join(sandbox.home, ".claude")), [join(sandbox.home, ".claude.json")]: fingerprint(sandbox.home)[join(sandbox.home, ".claude.json")]! };
    expect(after).toEqual(before);
  });
});
