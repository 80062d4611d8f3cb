import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { CLAUDE_STAGE, claudeChoice, claudeSetupEntries, loadClaudeSetup, STAGED_SETTINGS } from "../../lib/claude-setup/index.ts";
import { readMemory } from "../../lib/claude-setup/memory.ts";
import { planMcp } from "../../lib/claude-setup/mcp.ts";
import { bottleSettings, readJsonObject } from "../../lib/claude-setup/settings.ts";
import { ManifestError } from "../../lib/manifest/errors.ts";
import { builtinAgent, builtinBottle } from "../../lib/manifest/index.ts";
import type { Resolved } from "../../lib/manifest/types.ts";
import { sensitivePaths } from "../../lib/sensitive-paths.ts";
import { agentCommand } from "../../lib/session.ts";
import { caught, cleanupTempDirs, makePlan, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

function write(root: string, path: string, content: string): string {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, content);
  return full;
}

function resolved(overrides: { bottle?: Partial<Resolved["bottle"]>; agent?: Partial<Resolved["agent"]> } = {}): Resolved {
  return { bottle: { ...builtinBottle(), ...overrides.bottle }, agent: { ...builtinAgent(), ...overrides.agent } };
}

describe("memory", () => {
  const stage = "/home/agent/.bottle/claude";

  test("CLAUDE.md and what it imports (relative, ~/, absolute, nested) come in, each import pointed at its copy", () => {
    const home = tempDir();
    const claude = join(home, ".claude");
    const abs = write(tempDir(), "team.md", "team rules\n");
    write(claude, "CLAUDE.md", `# Me\nSee @notes/style.md and @~/shared.md.\nAlso @${abs}\n`);
    write(claude, "notes/style.md", "style, and @../deep.md\n");
    write(claude, "deep.md", "deep\n");
    write(home, "shared.md", "shared\n");
    const memory = readMemory(join(claude, "CLAUDE.md"), stage, home, [])!;
    const byHost = Object.fromEntries(memory.files.map((file) => [file.host.replace(home, "~"), file]));
    expect(byHost["~/.claude/CLAUDE.md"]!.bottle).toBe(`${stage}/CLAUDE.md`);
    const root = byHost["~/.claude/CLAUDE.md"]!.content;
    expect(root).toContain(`See @${stage}/imports/1-style.md and @${stage}/imports/`);
    expect(root).not.toContain(home);
    expect(byHost["~/.claude/notes/style.md"]!.content).toMatch(new RegExp(`style, and @${stage}/imports/\\d-deep.md`));
    expect(memory.files.map((file) => file.content)).toContain("team rules\n");
    expect(memory.files).toHaveLength(5);
    expect(memory.skipped).toEqual([]);
  });

  test("imports in code, e-mail addresses and missing files are left as written", () => {
    const home = tempDir();
    const text = "mail me@example.com\n`@notes.md` inline\n```\n@notes.md\n```\n@missing.md\n";
    write(home, ".claude/notes.md", "notes\n");
    write(home, ".claude/CLAUDE.md", text);
    const memory = readMemory(join(home, ".claude/CLAUDE.md"), stage, home, [])!;
    expect(memory.files).toHaveLength(1);
    expect(memory.files[0]!.content).toBe(text);
  });

  test("an import of a sensitive path (directly or through a symlink) is never copied, and said", () => {
    const home = tempDir();
    write(home, ".ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    symlinkSync(join(home, ".ssh/id_ed25519"), join(home, "innocent.md"));
    write(home, ".claude/CLAUDE.md", "@~/.ssh/id_ed25519\n@~/innocent.md\n@../.ssh/id_ed25519\n");
    const memory = readMemory(join(home, ".claude/CLAUDE.md"), stage, home, sensitivePaths({ HOME: home }))!;
    expect(memory.files).toHaveLength(1);
    expect(memory.files.some((file) => file.content.includes("PRIVATE KEY"))).toBe(false);
    expect(memory.skipped).toHaveLength(3);
    expect(memory.skipped[0]).toContain("SSH keys");
  });

  test("cycles end, and imports stop five deep as Claude Code's do", () => {
    const home = tempDir();
    write(home, ".claude/CLAUDE.md", "@a.md\n");
    write(home, ".claude/a.md", "@CLAUDE.md @b.md\n");
    for (const [from, to] of [["b", "c"], ["c", "d"], ["d", "e"], ["e", "f"], ["f", "g"]]) write(home, `.claude/${from}.md`, `@${to}.md\n`);
    write(home, ".claude/g.md", "too deep\n");
    const memory = readMemory(join(home, ".claude/CLAUDE.md"), stage, home, [])!;
    expect(memory.files.find((file) => file.host.endsWith("a.md"))!.content).toStartWith(`@${stage}/CLAUDE.md`);
    expect(memory.files.some((file) => file.host.endsWith("g.md"))).toBe(false);
    expect(memory.skipped.join("\n")).toContain("more than 5 imports deep");
  });

  test("no CLAUDE.md: nothing", () => {
    expect(readMemory(join(tempDir(), "CLAUDE.md"), stage, tempDir(), [])).toBeUndefined();
  });
});

describe("settings", () => {
  const host = {
    model: "opus",
    env: { GITHUB_TOKEN: "ghp_fake-secret-value" },
    apiKeyHelper: "/bin/get-key",
    hooks: { SessionStart: [{ hooks: [{ type: "command", command: "date" }] }] },
  };

  test("all of it less the keys that carry or fetch secrets, named with why and never their values", () => {
    const out = bottleSettings(host, { all: true, hooks: false });
    expect(out.settings).toEqual({ model: "opus" });
    expect(out.dropped.join("\n")).toContain("settings.json env left out");
    expect(out.dropped.join("\n")).toContain("settings.json apiKeyHelper left out");
    expect(out.dropped.join("\n")).toContain("hooks left out: claude.hooks is false");
    expect(JSON.stringify(out)).not.toContain("ghp_fake");
    expect(JSON.stringify(out)).not.toContain("/bin/get-key");
  });

  test("hooks alone, and an agent's added per event after the user's", () => {
    const agent = { SessionStart: [{ hooks: [{ type: "command", command: "agent" }] }], Stop: [{ hooks: [{ type: "command", command: "bye" }] }] };
    const out = bottleSettings(host, { all: false, hooks: true }, agent);
    expect(out.settings).toEqual({ hooks: { SessionStart: [...host.hooks.SessionStart, ...agent.SessionStart], Stop: agent.Stop } });
    expect(out.hookEvents).toEqual(["SessionStart", "Stop"]);
    expect(out.dropped).toEqual([]);
  });

  test("a broken settings.json is an error with the file and the position; a missing one is nothing", () => {
    const dir = tempDir();
    const path = write(dir, "settings.json", '{\n  "model": "opus",\n  "env": {\n}}}\n');
    const error = caught(Promise.resolve().then(() => readJsonObject(path, {})));
    return error.then((value) => {
      expect(value).toBeInstanceOf(ManifestError);
      expect((value as ManifestError).issues[0]).toMatchObject({ file: path, line: 4 });
      expect(readJsonObject(join(dir, "none.json"), {})).toBeUndefined();
    });
  });
});

describe("MCP servers", () => {
  const at = (value: string, index = 0) => ({ value, file: "/cfg/bottles/dev.yaml", line: 3 + index, col: 5, path: `claude.mcp[${index}]` });
  const context = { allow: ["mcp.example.test"], claudeJsonPath: "/home/me/.claude.json", env: { HOME: "/home/me" } };

  test("stdio runs in the bottle (type defaults to stdio); its env values are secrets for DLP", () => {
    const { plan, issues } = planMcp([at("files")], [], { files: { command: "mcp-files", args: ["--root", "/workspace"], env: { KEY: "sk-a-long-value" } } }, context);
    expect(issues).toEqual([]);
    expect(plan.servers).toEqual([
      {
        name: "files",
        config: { type: "stdio", command: "mcp-files", args: ["--root", "/workspace"], env: { KEY: "sk-a-long-value" } },
        describe: "stdio, runs in the bottle with 1 env value(s)",
        command: "mcp-files",
        secrets: ["sk-a-long-value"],
      },
    ]);
    expect(plan.routes).toEqual([]);
  });

  test("HTTP: each header becomes a credential route the gate holds; the bottle's config has the placeholder", () => {
    const { plan, issues } = planMcp([at("docs")], [], { docs: { type: "http", url: "https://mcp.example.test/mcp", headers: { Authorization: "Bearer real-token-123" } } }, context);
    expect(issues).toEqual([]);
    expect(plan.servers[0]!.config).toEqual({ type: "http", url: "https://mcp.example.test/mcp", headers: { Authorization: "bottle-placeholder-MCP_DOCS_AUTHORIZATION" } });
    expect(plan.routes).toEqual([
      {
        host: "mcp.example.test",
        port: 443,
        header: "Authorization",
        token: { source: { kind: "literal", value: "Bearer real-token-123" }, file: "/cfg/bottles/dev.yaml", line: 3, col: 5 },
        env: "MCP_DOCS_AUTHORIZATION",
        paths: [],
        methods: [],
      },
    ]);
    expect(JSON.stringify(plan.servers)).not.toContain("real-token");
  });

  test("every problem at once, each where it was asked: unknown name, host not allowed, a token over http, a broken entry", () => {
    const servers = {
      far: { type: "http", url: "https://far.example.test/mcp" },
      plain: { type: "sse", url: "http://mcp.example.test/sse", headers: { "X-Key": "k" } },
      broken: { type: "websocket", url: "wss://x" },
    };
    const { issues } = planMcp([at("nope"), at("far", 1), at("plain", 2), at("broken", 3)], [], servers, context);
    expect(issues.map((issue) => [issue.line, issue.path])).toEqual([
      [3, "claude.mcp[0]"],
      [4, "claude.mcp[1]"],
      [5, "claude.mcp[2]"],
      [6, "claude.mcp[3]"],
    ]);
    expect(issues[0]!.message).toContain('no MCP server "nope" in ~/.claude.json (it has: far, plain, broken)');
    expect(issues[1]!.message).toContain("add it to the bottle's egress.allow: [far.example.test]");
    expect(issues[2]!.message).toContain("only over HTTPS");
    expect(issues[3]!.message).toContain("expected stdio, http or sse");
  });

  test("servers written out in an agent file count as named ones", () => {
    const inline = [{ value: { name: "own", config: { type: "stdio" as const, command: "own-mcp" } }, file: "/a.md", line: 4, col: 3, path: "mcpServers[0].own" }];
    expect(planMcp([], inline, {}, context).plan.servers.map((server) => server.name)).toEqual(["own"]);
  });
});

describe("what a launch brings", () => {
  test("the default brings memory, commands, agents, output styles; not settings, hooks or MCP; an agent's claude: overrides", () => {
    expect(claudeChoice(resolved())).toMatchObject({ memory: true, commands: true, agents: true, outputStyles: true, settings: false, hooks: false, mcp: [] });
    const agent = claudeChoice(resolved({ agent: { claude: { memory: false, settings: true } } }));
    expect(agent).toMatchObject({ memory: false, settings: true, commands: true });
  });

  test("from a fake host: rows item by item, notes for what is absent, staged entries; the host is only read", () => {
    const home = tempDir();
    const env = { HOME: home };
    write(home, ".claude/CLAUDE.md", "remember the canary\n");
    write(home, ".claude/commands/canary-cmd.md", "say canary\n");
    write(home, ".claude/commands/ns/deep.md", "deep\n");
    write(home, ".claude/settings.json", JSON.stringify({ model: "opus", env: { A: "secret-value-xyz" } }));
    const setup = loadClaudeSetup(resolved({ bottle: { claude: { ...builtinBottle().claude, settings: true } } }), env);
    expect(setup.rows).toEqual([
      ["memory", "~/.claude/CLAUDE.md"],
      ["commands", "2 files from ~/.claude/commands/"],
      ["settings", "~/.claude/settings.json (less 1 key(s) that carry secrets)"],
    ]);
    expect(setup.notes).toContain("claude.agents: there is no ~/.claude/agents/");
    expect(setup.notes.join("\n")).toContain("settings.json env left out");
    const paths = claudeSetupEntries(setup, 1000, 1000).map((entry) => entry.path);
    expect(paths).toEqual(expect.arrayContaining([`${CLAUDE_STAGE}/CLAUDE.md`, `${CLAUDE_STAGE}/commands/canary-cmd.md`, `${CLAUDE_STAGE}/commands/ns/deep.md`, STAGED_SETTINGS]));
    expect(JSON.stringify(claudeSetupEntries(setup, 1000, 1000).map((entry) => String(entry.content ?? "")))).not.toContain("secret-value-xyz");
  });

  test("an HTTP MCP server's host may come from one of the bottle's presets", () => {
    const home = tempDir();
    write(home, ".claude.json", JSON.stringify({ mcpServers: { gh: { type: "http", url: "https://api.github.com/mcp" } } }));
    const mcp = [{ value: "gh", file: "/cfg/bottles/dev.yaml", line: 3, col: 5, path: "claude.mcp[0]" }];
    const bottle = (presets: Resolved["bottle"]["egress"]["presets"]) => ({
      egress: { ...builtinBottle().egress, presets },
      claude: { ...builtinBottle().claude, memory: false, mcp },
    });
    expect(loadClaudeSetup(resolved({ bottle: bottle([{ name: "github", version: 1 }]) }), { HOME: home }).mcp.servers.map((server) => server.name)).toEqual(["gh"]);
    expect(() => loadClaudeSetup(resolved({ bottle: bottle([{ name: "npm", version: 1 }]) }), { HOME: home })).toThrow("which this bottle does not allow — add it to the bottle's egress.allow: [api.github.com] (or take the preset that lists it: egress.presets: [github])");
  });

  test("$CLAUDE_CONFIG_DIR is where the setup is read from", () => {
    const home = tempDir();
    const config = tempDir();
    write(config, "CLAUDE.md", "from the config dir\n");
    write(home, ".claude/CLAUDE.md", "from home\n");
    const setup = loadClaudeSetup(resolved(), { HOME: home, CLAUDE_CONFIG_DIR: config });
    expect(setup.memory!.files[0]!.content).toBe("from the config dir\n");
  });
});

describe("the session's flags from an agent file", () => {
  test("tools and disallowed tools as one =-joined value each (a list option would swallow the first message), effort, a permission mode instead of skipping", () => {
    const plan = makePlan({ agent: { session: { tools: ["Read", "Grep"], disallowedTools: ["Bash"], effort: "high", permissionMode: "plan", initialPrompt: "start here" } } });
    expect(agentCommand(plan, [])).toEqual([
      "bottle-run", "claude", "--permission-mode", "plan", "--effort", "high", "--tools=Read,Grep", "--disallowedTools=Bash", "start here",
    ]); // prettier-ignore
    // A resumed conversation does not get the first message again; --prompt wins over it.
    expect(agentCommand(plan, [], { continue: true })).not.toContain("start here");
    expect(agentCommand(plan, [], { prompt: "mine" }).at(-1)).toBe("mine");
  });

  test("a settings file staged for the session is passed with --settings", () => {
    const plan = makePlan({ claudeSetup: { items: [], notes: [], settings: true } });
    expect(agentCommand(plan, [])).toEqual(["bottle-run", "claude", "--dangerously-skip-permissions", "--settings", STAGED_SETTINGS]);
  });
});
