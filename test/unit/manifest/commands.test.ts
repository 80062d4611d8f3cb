import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import agentsCommand from "../../../cmd/agents.ts";
import infoCommand from "../../../cmd/info.ts";
import initCommand from "../../../cmd/init.ts";
import schemaCommand from "../../../cmd/schema.ts";
import {
  agentJsonSchema,
  agentSchema,
  bottleJsonSchema,
  bottleSchema,
  formatAgentList,
  formatInfo,
  infoView,
  listAgents,
  resolveAgentAndBottle,
} from "../../../lib/manifest/index.ts";
import { sandboxEachTest } from "./helpers.ts";

const each = sandboxEachTest();

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA";

describe("command files", () => {
  test("each is a citty command with the documented flags", async () => {
    const argsOf = async (command: { args?: unknown }) => Object.keys((await command.args) as object);
    expect(agentsCommand.meta).toMatchObject({ name: "agents" });
    expect(await argsOf(agentsCommand)).toEqual(["json"]);
    expect(await argsOf(infoCommand)).toEqual(["agent", "bottle", "json"]);
    expect(await argsOf(initCommand)).toEqual(["agent", "bottle", "preset", "force", "yes"]);
    expect(await argsOf(schemaCommand)).toEqual(["kind"]);
  });
});

describe("bottle info", () => {
  test("the resolved agent and bottle, defaults marked, each value's file", async () => {
    each.box.skill("review");
    each.box.bottle(
      "base",
      `env:
  TOKEN: \${HOST_TOKEN}
egress:
  allow: [github.com]
git:
  user: { name: Base User, email: base@example.com }
  remotes:
    origin: { upstream: "git@github.com:me/repo.git", identity_file: ~/.ssh/id_git, known_host_key: ${KEY} }
resources: { cpus: 4, memory: 8g }
ports: [3000, "8080:80"]
`,
    );
    each.box.bottle(
      "dev",
      `extends: base
env:
  MODE: development
  PASSWORD: "?Password for the staging DB"
egress:
  allow: ["*.npmjs.org", api.anthropic.com]
  allow_private: [10.0.0.0/8]
ssh:
  hosts:
    - { host: build.example.com, user: deploy, identity_file: ~/.ssh/id_build, known_host_key: ${KEY} }
workspace: copy
ca_certs: [~/certs/corp.pem]
image: { dockerfile: dev.Dockerfile }
backend: docker
resources:
  memory: 2GiB
ports: ["9000:3000", 5173]
`,
    );
    each.box.agent("coder", "---\ndescription: Writes code\nbottle: dev\nskills: [review]\nmodel: opus\ngit:\n  user: { email: agent@example.com }\n---\nPrompt.\n", "project");
    const resolved = await resolveAgentAndBottle({ agent: "coder", projectDir: each.box.project, env: each.box.env });
    const view = infoView(resolved, each.box.env);
    expect(view.bottle.egress.allow.filter((entry) => entry.default).map((entry) => entry.host)).toEqual([
      "api.anthropic.com",
      "console.anthropic.com",
      "claude.ai",
      "platform.claude.com",
      "statsig.anthropic.com",
      "sentry.io",
    ]);
    expect(view.bottle.egress.allow.filter((entry) => !entry.default)).toEqual([
      { host: "github.com", default: false, from: "~/.config/bottle/bottles/base.yaml" },
      { host: "*.npmjs.org", default: false, from: "~/.config/bottle/bottles/dev.yaml" },
    ]);
    expect(view.bottle.git.remotes).toEqual([
      { name: "origin", upstream: "git@github.com:me/repo.git", via: "git gate", identityFile: "~/.ssh/id_git", from: "~/.config/bottle/bottles/base.yaml" },
    ]);
    expect(view.bottle.git.user).toEqual({
      name: "Base User",
      email: "agent@example.com",
      from: ["~/.config/bottle/bottles/base.yaml", "~/project/.bottle/agents/coder.md"],
    });
    // Ports merge by the bottle's port: dev's entry for 3000 replaces base's.
    expect(view.bottle.ports).toEqual([
      { port: 3000, hostPort: 9000, from: "~/.config/bottle/bottles/dev.yaml" },
      { port: 80, hostPort: 8080, from: "~/.config/bottle/bottles/base.yaml" },
      { port: 5173, from: "~/.config/bottle/bottles/dev.yaml" },
    ]);
    expect(each.box.normalize(JSON.stringify(view, null, 2))).toMatchSnapshot();
    expect(each.box.normalize(formatInfo(view))).toMatchSnapshot();
  });

  test("the built-in default", async () => {
    const view = infoView(await resolveAgentAndBottle({ projectDir: each.box.project, env: each.box.env }), each.box.env);
    expect(view.bottle.sources).toEqual(["(built-in)"]);
    expect(view.bottle.workspace).toEqual({ mode: "mount", from: "(built-in)" });
    expect(formatInfo(view)).toMatchSnapshot();
  });
});

describe("bottle agents", () => {
  test("table of name, bottle, source, description", async () => {
    each.box.agent("coder", "---\ndescription: Writes code\nbottle: dev\n---\n");
    each.box.agent("reviewer", "---\ndescription: Reviews code\n---\n", "project");
    const agents = await listAgents({ projectDir: each.box.project, env: each.box.env });
    expect(each.box.normalize(formatAgentList(agents, each.box.env))).toMatchSnapshot();
  });
});

describe("bottle schema", () => {
  test("JSON Schemas are generated from the valibot schemas", () => {
    const bottle = bottleJsonSchema() as { properties: Record<string, unknown>; additionalProperties: boolean; $schema: string };
    expect(bottle.$schema).toContain("json-schema.org");
    expect(bottle.additionalProperties).toBe(false);
    expect(Object.keys(bottle.properties).sort()).toEqual(Object.keys(bottleSchema.entries).sort());
    const agent = agentJsonSchema() as { properties: Record<string, unknown> };
    expect(Object.keys(agent.properties).sort()).toEqual(Object.keys(agentSchema.entries).sort());
    expect(bottleJsonSchema()).toMatchSnapshot();
    expect(agentJsonSchema()).toMatchSnapshot();
  });

  test("the schema and the JSON Schema agree on a valid manifest", () => {
    const manifest = { egress: { allow: ["github.com"] }, workspace: "copy", env: { A: "x" } };
    expect(v.safeParse(bottleSchema, manifest).success).toBe(true);
  });
});
