import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { BottleError } from "../../../lib/errors.ts";
import { agentJsonSchema, bottleJsonSchema, initConfig, resolveAgentAndBottle } from "../../../lib/manifest/index.ts";
import { sandbox, thrown, treeState, type Sandbox } from "./helpers.ts";

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

describe("bottle init", () => {
  test("writes a starter bottle, agent and the schemas they reference", async () => {
    const result = initConfig({ agent: "default", bottle: "default", env: box.env });
    const bottleFile = join(box.config, "bottles", "default.yaml");
    const agentFile = join(box.config, "agents", "default.md");
    expect(result.written).toEqual([join(box.config, "schema", "bottle.json"), join(box.config, "schema", "agent.json"), bottleFile, agentFile]);
    for (const file of result.written) expect(existsSync(file)).toBe(true);
    expect(JSON.parse(readFileSync(join(box.config, "schema", "bottle.json"), "utf8"))).toEqual(bottleJsonSchema());
    expect(JSON.parse(readFileSync(join(box.config, "schema", "agent.json"), "utf8"))).toEqual(agentJsonSchema());

    // The modeline points at the schema file, relative to the manifest.
    const bottleText = readFileSync(bottleFile, "utf8");
    const bottleRef = /^# yaml-language-server: \$schema=(\S+)$/m.exec(bottleText.split("\n")[0]!)?.[1];
    expect(bottleRef).toBeDefined();
    expect(existsSync(resolve(dirname(bottleFile), bottleRef!))).toBe(true);
    const agentLines = readFileSync(agentFile, "utf8").split("\n");
    expect(agentLines[0]).toBe("---");
    const agentRef = /^# yaml-language-server: \$schema=(\S+)$/.exec(agentLines[1]!)?.[1];
    expect(existsSync(resolve(dirname(agentFile), agentRef!))).toBe(true);

    // Bottles may hold literal secrets: only the owner reads them.
    expect(statSync(bottleFile).mode & 0o077).toBe(0);

    // The starter files are valid as written.
    const resolved = await resolveAgentAndBottle({ projectDir: box.project, env: box.env });
    expect(resolved.agent.source).toBe(agentFile);
    expect(resolved.bottle.sources).toEqual([bottleFile]);
    expect(resolved.bottle.workspace).toBe("mount");
    expect(resolved.agent.prompt.length).toBeGreaterThan(0);
  });

  test("named agent and bottle", async () => {
    initConfig({ agent: "coder", bottle: "work", env: box.env });
    const resolved = await resolveAgentAndBottle({ agent: "coder", projectDir: box.project, env: box.env });
    expect(resolved.bottle.name).toBe("work");
    expect(resolved.agent.bottle).toBe("work");
  });

  test("refuses to overwrite an agent without --force, and writes nothing", () => {
    initConfig({ agent: "coder", bottle: "work", env: box.env });
    const agentFile = join(box.config, "agents", "coder.md");
    writeFileSync(agentFile, "my edits\n");
    const before = treeState(box.root);
    const error = thrown(() => initConfig({ agent: "coder", bottle: "other", env: box.env }));
    expect(error).toBeInstanceOf(BottleError);
    expect(box.normalize(error.message)).toMatchSnapshot();
    expect(box.normalize((error as BottleError).fix ?? "")).toMatchSnapshot();
    expect(treeState(box.root)).toEqual(before);
    expect(readFileSync(agentFile, "utf8")).toBe("my edits\n");
  });

  test("keeps an existing bottle (a new agent uses it); --force replaces both", () => {
    const bottleFile = join(box.config, "bottles", "work.yaml");
    box.bottle("work", "workspace: none\n");
    const kept = initConfig({ agent: "coder", bottle: "work", env: box.env });
    expect(kept.keptBottle).toBe(bottleFile);
    expect(kept.written).not.toContain(bottleFile);
    expect(readFileSync(bottleFile, "utf8")).toBe("workspace: none\n");

    const forced = initConfig({ agent: "coder", bottle: "work", force: true, env: box.env });
    expect(forced.written).toContain(bottleFile);
    expect(forced.keptBottle).toBeUndefined();
    expect(readFileSync(bottleFile, "utf8")).toContain("workspace: mount");
  });

  test("invalid names are refused before anything is written", () => {
    const error = thrown(() => initConfig({ agent: "My Agent", bottle: "default", env: box.env }));
    expect(box.normalize(error.message)).toMatchSnapshot();
    expect(existsSync(box.config)).toBe(false);
  });

  test("presets go into the new bottle, valid as written; unknown ones are usage errors before anything is written", async () => {
    initConfig({ agent: "default", bottle: "default", presets: ["npm", "github@1", "npm"], env: box.env });
    const text = readFileSync(join(box.config, "bottles", "default.yaml"), "utf8");
    expect(text).toContain("  presets: [npm, github@1]\n");
    const resolved = await resolveAgentAndBottle({ projectDir: box.project, env: box.env });
    expect(resolved.bottle.egress.presets).toEqual([
      { name: "npm", version: 1 },
      { name: "github", version: 1 },
    ]);

    const before = treeState(box.root);
    const error = thrown(() => initConfig({ agent: "other", bottle: "other", presets: ["nmp"], env: box.env }));
    expect(error).toBeInstanceOf(BottleError);
    expect((error as BottleError).exitCode).toBe(2);
    expect(error.message).toBe('--preset nmp: unknown preset "nmp" (presets: crates, debian, github, go, npm, pypi, rubygems) — did you mean npm?');
    expect(treeState(box.root)).toEqual(before);
  });

  test("without presets the starter lists them, empty; --preset for a bottle that exists is refused (it would be ignored)", () => {
    initConfig({ agent: "default", bottle: "work", env: box.env });
    const text = readFileSync(join(box.config, "bottles", "work.yaml"), "utf8");
    expect(text).toContain("  # Host lists shipped with bottle: crates, debian, github, go, npm, pypi, rubygems.\n");
    expect(text).toContain("  presets: []\n");
    const before = treeState(box.root);
    const error = thrown(() => initConfig({ agent: "coder", bottle: "work", presets: ["npm"], env: box.env }));
    expect(error.message).toBe("~/.config/bottle/bottles/work.yaml already exists; --preset would not change it");
    expect((error as BottleError).fix).toBe("add egress.presets: [npm] to it yourself, or pass --force to replace it");
    expect(treeState(box.root)).toEqual(before);
  });
});
