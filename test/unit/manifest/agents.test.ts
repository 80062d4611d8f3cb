import { describe, expect, test } from "bun:test";
import { BottleError } from "../../../lib/errors.ts";
import { loadClaudeSetup } from "../../../lib/claude-setup/index.ts";
import { CLAUDE_CODE_HOSTS, ManifestError, listAgents, resolveAgentAndBottle } from "../../../lib/manifest/index.ts";
import { rejected, sandboxEachTest, thrown } from "./helpers.ts";

const each = sandboxEachTest();

const resolve = (agent?: string, bottle?: string) =>
  resolveAgentAndBottle({ ...(agent ? { agent } : {}), ...(bottle ? { bottle } : {}), projectDir: each.box.project, env: each.box.env });

async function errorFor(agentText: string, name = "coder"): Promise<string> {
  each.box.agent(name, agentText);
  const error = await rejected(resolve(name));
  expect(error).toBeInstanceOf(ManifestError);
  return each.box.normalize(error.message);
}

describe("the embedded default", () => {
  test("with no config at all: the default agent in the built-in default bottle", async () => {
    const { agent, bottle, gitUser } = await resolve();
    expect(agent).toMatchObject({ name: "default", source: "(built-in)", prompt: "", skills: [], bottle: "default" });
    expect(bottle).toMatchObject({
      name: "default",
      sources: ["(built-in)"],
      env: {},
      egress: { allow: [], allowPrivate: [], routes: [], limits: {} },
      auth: {},
      git: { remotes: {} },
      ssh: { hosts: [] },
      workspace: "mount",
      caCerts: [],
    });
    expect(bottle.image).toBeUndefined();
    expect(gitUser).toBeUndefined();
    expect(await listAgents({ projectDir: each.box.project, env: each.box.env })).toEqual([{ name: "default", source: "(built-in)", bottle: "default" }]);
  });

  test("Claude Code's default hosts", () => {
    expect([...CLAUDE_CODE_HOSTS]).toEqual(["api.anthropic.com", "console.anthropic.com", "claude.ai", "platform.claude.com", "statsig.anthropic.com", "sentry.io"]);
    expect(Object.isFrozen(CLAUDE_CODE_HOSTS)).toBe(true);
  });

  test("a user bottles/default.yaml overrides the built-in bottle", async () => {
    const file = each.box.bottle("default", "workspace: copy\n");
    const { bottle } = await resolve();
    expect(bottle.sources).toEqual([file]);
    expect(bottle.workspace).toBe("copy");
  });

  test("a user agents/default.md overrides the built-in agent, a project one overrides both", async () => {
    const user = each.box.agent("default", "---\ndescription: mine\n---\nUser prompt\n");
    expect((await resolve()).agent).toMatchObject({ source: user, prompt: "User prompt", description: "mine" });
    const project = each.box.agent("default", "Project prompt\n", "project");
    expect((await resolve()).agent).toMatchObject({ source: project, prompt: "Project prompt" });
  });
});

describe("agent files", () => {
  test("project first, then user config", async () => {
    each.box.agent("coder", "---\ndescription: user\n---\n");
    each.box.agent("coder", "---\ndescription: project\n---\n", "project");
    each.box.agent("writer", "---\ndescription: user writer\n---\n");
    expect((await resolve("coder")).agent.description).toBe("project");
    expect((await resolve("writer")).agent.description).toBe("user writer");
  });

  test("front matter fields; the body is the prompt; git user merges per field over the bottle's", async () => {
    each.box.bottle("dev", "git:\n  user: { name: Bottle Name, email: bottle@example.com }\n");
    each.box.skill("review");
    const file = each.box.agent(
      "coder",
      `---
# a comment
name: coder
description: Writes code
tools: Read, Grep, Bash
permissionMode: acceptEdits
bottle: dev
skills: [review]
model: opus
git:
  user:
    email: agent@example.com
---

You write code.

Carefully.
`,
    );
    const { agent, bottle, gitUser } = await resolve("coder");
    expect(agent).toEqual({
      name: "coder",
      source: file,
      description: "Writes code",
      prompt: "You write code.\n\nCarefully.",
      skills: ["review"],
      model: "opus",
      gitUser: { email: "agent@example.com" },
      bottle: "dev",
      locations: { bottle: { line: 7, col: 9 }, skills: [{ line: 8, col: 10 }] },
      session: { tools: ["Read", "Grep", "Bash"], permissionMode: "acceptEdits" },
    });
    expect(bottle.name).toBe("dev");
    expect(gitUser).toEqual({ name: "Bottle Name", email: "agent@example.com" });
    expect(loadClaudeSetup(await resolve("coder"), each.box.env).skills).toEqual(["review"]);
  });

  test("no front matter: the whole file is the prompt", async () => {
    each.box.agent("plain", "Just a prompt.\n---\nwith a rule\n");
    expect((await resolve("plain")).agent).toMatchObject({ prompt: "Just a prompt.\n---\nwith a rule", bottle: "default", skills: [] });
  });

  test("CRLF line endings", async () => {
    each.box.agent("win", "---\r\ndescription: windows\r\nbottle: default\r\n---\r\nPrompt\r\n");
    expect((await resolve("win")).agent).toMatchObject({ description: "windows", prompt: "Prompt" });
  });

  test("--bottle overrides the agent's bottle", async () => {
    each.box.bottle("other", "workspace: none\n");
    each.box.agent("coder", "---\nbottle: missing\n---\n");
    expect((await resolve("coder", "other")).bottle.workspace).toBe("none");
  });
});

describe("agent errors", () => {
  const cases: Array<[string, string]> = [
    ["unknown key with a hint", "---\nskils: [a]\n---\n"],
    ["unknown nested key", "---\ngit:\n  usr: { name: x }\n---\n"],
    ["bottle is not a name", "---\nbottle: My Bottle\n---\n"],
    ["skills is text", "---\nskills: review\n---\n"],
    ["a skill with a path", "---\nskills: [../etc]\n---\n"],
    ["model is empty", '---\nmodel: ""\n---\n'],
    ["front matter never closed", "---\ndescription: x\nbody\n"],
    ["front matter YAML syntax error (lines count from the file's first line)", "---\ndescription: x\nskills: [a\n---\n"],
    ["front matter is a list", "---\n- a\n---\n"],
    ["several problems at once", "---\nbottle: 9\nskills: [ok, ../x]\nmodle: opus\ngit:\n  user:\n    email: nope\n---\n"],
    ["a sub-agent-only key (color, maxTurns, memory, background, isolation) is an error, not ignored", "---\ncolor: blue\nmaxTurns: 3\nisolation: worktree\n---\n"],
    ["a permission mode Claude Code does not have", "---\npermissionMode: yolo\n---\n"],
    ["an MCP server of an unknown type, and one entry holding two", "---\nmcpServers:\n  - x: { type: ws, url: wss://x }\n  - { a: { command: a }, b: { command: b } }\n---\n"],
    ["hooks that are not event: [ { hooks } ]", "---\nhooks:\n  on-start: []\n  Stop: [{ matcher: x }]\n---\n"],
  ];
  for (const [name, text] of cases) {
    test(name, async () => {
      expect(await errorFor(text)).toMatchSnapshot();
    });
  }

  test("an unknown agent lists the agents there are and where it looked", async () => {
    each.box.agent("coder", "");
    each.box.agent("reviewer", "", "project");
    const error = await rejected(resolve("codr"));
    expect(error).toBeInstanceOf(BottleError);
    expect(each.box.normalize(error.message)).toMatchSnapshot();
    expect(each.box.normalize((error as BottleError).fix ?? "")).toMatchSnapshot();
  });

  test("an unknown agent mentions files skipped for their names", async () => {
    each.box.agent("My-Agent", "");
    await rejected(resolve("my-agent"));
    expect(each.warnings.messages().map(each.box.normalize)).toEqual([
      "skipping ~/.config/bottle/agents/My-Agent.md: agent file names must be lower-case letters, digits and - (starting with a letter), like my-agent.md",
    ]);
  });

  test("an invalid agent name", async () => {
    expect(each.box.normalize((await rejected(resolve("My_Agent"))).message)).toMatchSnapshot();
  });

  test("a missing bottle names the agent file:line that asked for it", async () => {
    each.box.bottle("develop", "{}\n");
    each.box.agent("coder", "---\ndescription: x\nbottle: devlop\n---\n");
    const error = await rejected(resolve("coder"));
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).issues[0]).toMatchObject({ line: 3, col: 9, path: "bottle" });
    expect(each.box.normalize(error.message)).toMatchSnapshot();
  });

  test("a missing --bottle", async () => {
    expect(each.box.normalize((await rejected(resolve(undefined, "nope"))).message)).toMatchSnapshot();
  });
});

describe("Claude Code's own keys", () => {
  test("name must be the file's name", async () => {
    expect(await errorFor("---\nname: other\n---\n")).toContain('coder.md:2:7: name: "other" is not this agent\'s name: the file names it coder');
  });

  test("mcpServers by name go with claude.mcp; written-out ones are kept with their place; hooks and initialPrompt are taken", async () => {
    each.box.agent("coder", "---\nmcpServers:\n  - docs\n  - own: { command: own-mcp, args: [--x] }\nhooks:\n  Stop: [{ hooks: [{ type: command, command: bye }] }]\ninitialPrompt: begin\n---\n");
    const { agent } = await resolve("coder");
    expect(agent.claude?.mcp?.map((entry) => [entry.value, entry.line, entry.path])).toEqual([["docs", 3, "mcpServers[0]"]]);
    expect(agent.mcpServers?.map((entry) => entry.value)).toEqual([{ name: "own", config: { type: "stdio", command: "own-mcp", args: ["--x"] } }]);
    expect(agent.hooks).toEqual({ Stop: [{ hooks: [{ type: "command", command: "bye" }] }] });
    expect(agent.session).toEqual({ initialPrompt: "begin" });
  });
});

describe("skills", () => {
  test("every missing skill is reported with the file:line of its entry", async () => {
    each.box.skill("review");
    each.box.skill("testing");
    each.box.agent("coder", "---\nskills:\n  - review\n  - tesing\n  - deploy\n---\n");
    const resolved = await resolve("coder");
    const error = thrown(() => loadClaudeSetup(resolved, each.box.env)) as ManifestError;
    expect(error).toBeInstanceOf(ManifestError);
    expect(error.issues.map((issue) => [issue.line, issue.col, issue.path])).toEqual([
      [4, 5, "skills[1]"],
      [5, 5, "skills[2]"],
    ]);
    expect(each.box.normalize(error.message)).toMatchSnapshot();
    expect(each.box.normalize(error.fix ?? "")).toMatchSnapshot();
  });

  test("a file where a skill folder should be does not count", async () => {
    each.box.write(".claude/skills/notes", "not a folder");
    each.box.agent("coder", "---\nskills: [notes]\n---\n");
    const resolved = await resolve("coder");
    expect(() => loadClaudeSetup(resolved, each.box.env)).toThrow(ManifestError);
  });

  test("the built-in agent has no skills to check", async () => {
    expect(loadClaudeSetup(await resolve(), each.box.env).skills).toEqual([]);
  });
});

describe("listing agents", () => {
  test("name, source, bottle, description; project shadows user; the built-in default is listed", async () => {
    const user = each.box.agent("coder", "---\ndescription: user coder\n---\n");
    const project = each.box.agent("coder", "---\ndescription: project coder\nbottle: dev\n---\n", "project");
    const writer = each.box.agent("writer", "Prompt only\n");
    expect(await listAgents({ projectDir: each.box.project, env: each.box.env })).toEqual([
      { name: "coder", source: project, bottle: "dev", description: "project coder" },
      { name: "default", source: "(built-in)", bottle: "default" },
      { name: "writer", source: writer, bottle: "default" },
    ]);
    expect(user).not.toBe(project);
  });

  test("listing reads no bottle file: a broken or missing bottle does not matter", async () => {
    each.box.bottle("dev", "this: is: not: yaml\n");
    each.box.agent("coder", "---\nbottle: dev\n---\n");
    each.box.agent("other", "---\nbottle: nowhere\n---\n");
    expect((await listAgents({ projectDir: each.box.project, env: each.box.env })).map((a) => a.name)).toEqual(["coder", "default", "other"]);
    expect(each.warnings.messages()).toEqual([]);
  });

  test("file names that are not agent names are skipped with a warning", async () => {
    each.box.agent("Coder_2", "");
    each.box.agent("ok", "");
    each.box.write(".config/bottle/agents/notes.txt", "");
    expect((await listAgents({ projectDir: each.box.project, env: each.box.env })).map((a) => a.name)).toEqual(["default", "ok"]);
    expect(each.warnings.messages().map(each.box.normalize)).toMatchSnapshot();
  });

  test("a broken agent file is left out with a warning naming its problems", async () => {
    each.box.agent("broken", "---\nskils: []\n---\n");
    each.box.agent("fine", "");
    expect((await listAgents({ projectDir: each.box.project, env: each.box.env })).map((a) => a.name)).toEqual(["default", "fine"]);
    expect(each.warnings.messages().map(each.box.normalize)).toMatchSnapshot();
  });
});
