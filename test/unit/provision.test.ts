import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { realExec } from "../../lib/exec.ts";
import { parsePlan } from "../../lib/plan.ts";
import {
  AGENT_HOME,
  claudeState,
  ENV_FILE,
  envFileContent,
  gitconfigContent,
  PROMPT_PATH,
  provisionEntries,
  shellQuote,
  workspaceEntries,
} from "../../lib/provision.ts";
import type { TarEntry } from "../../lib/tar.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

const NASTY: Record<string, string> = {
  SINGLE: "it's a 'quoted' value''",
  DOUBLE: 'say "hi" \\"there\\"',
  NEWLINES: "line one\nline two\n\nline four\n",
  SUBST: "$(touch /tmp/bottle-pwned) and ${HOME} and $HOME",
  BACKTICKS: "`id` and `touch /tmp/bottle-pwned`",
  MIXED: `'"\`$(x)\`"'\\n\\\\ ; rm -rf / #`,
  EMPTY: "",
  SPACES: "  leading and trailing  ",
  GLOB: "* ? [a-z] ~",
  UNICODE: "clé 🔑 ✓",
};

/** Source an env file with a real shell and print one variable. */
async function sourced(file: string, name: string): Promise<string> {
  const result = await realExec.run(["sh", "-c", `. "$1"; printf %s "$${name}"`, "sh", file], { env: { HOME: "/nonexistent-home" } });
  return result.stdout;
}

describe("shellQuote / envFileContent", () => {
  test("shellQuote wraps in single quotes and escapes embedded ones", () => {
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  test("envFileContent writes one export line per variable", () => {
    expect(envFileContent({ A: "1", B: "two words" })).toBe("export A='1'\nexport B='two words'\n");
    expect(envFileContent({})).toBe("");
  });

  test("nasty values survive a round trip through a real `sh`, and nothing in them runs", async () => {
    const dir = tempDir();
    const file = join(dir, "env");
    const canary = join(dir, "canary");
    const values = { ...NASTY, CANARY: `$(touch ${canary})\`touch ${canary}\`` };
    writeFileSync(file, envFileContent(values));
    for (const [name, value] of Object.entries(values)) expect(await sourced(file, name)).toBe(value);
    expect(await Bun.file(canary).exists()).toBe(false);
  });

  test("shellQuote round-trips as a single argv word", async () => {
    for (const value of Object.values(NASTY)) {
      const result = await realExec.run(["sh", "-c", `printf %s ${shellQuote(value)}`]);
      expect(result.stdout).toBe(value);
    }
  });

  test("variables are exported to children of the sourcing shell", async () => {
    const dir = tempDir();
    const file = join(dir, "env");
    writeFileSync(file, envFileContent({ BOTTLE_UNIT_CHILD: "from the env file" }));
    const result = await realExec.run(["sh", "-c", `. "$1"; sh -c 'printf %s "$BOTTLE_UNIT_CHILD"'`, "sh", file]);
    expect(result.stdout).toBe("from the env file");
  });
});

describe("claudeState", () => {
  test("answers every first-run dialog", () => {
    const state = claudeState(undefined) as Record<string, any>;
    expect(state.hasCompletedOnboarding).toBe(true);
    expect(typeof state.theme).toBe("string");
    expect(state.theme.length).toBeGreaterThan(0);
    expect(state.bypassPermissionsModeAccepted).toBe(true);
    expect(state.projects["/workspace"].hasTrustDialogAccepted).toBe(true);
    expect(state.projects["/workspace"].hasCompletedProjectOnboarding).toBe(true);
  });

  test("no customApiKeyResponses without a key (or with an empty one)", () => {
    expect(claudeState(undefined)).not.toHaveProperty("customApiKeyResponses");
    expect(claudeState("")).not.toHaveProperty("customApiKeyResponses");
  });

  test("approves the last 20 characters of the key, never the whole key", () => {
    const key = "sk-ant-api03-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const state = claudeState(key) as { customApiKeyResponses: { approved: string[]; rejected: string[] } };
    expect(state.customApiKeyResponses).toEqual({ approved: [key.slice(-20)], rejected: [] });
    expect(state.customApiKeyResponses.approved[0]).toBe("QRSTUVWXYZ0123456789");
    expect(JSON.stringify(state)).not.toContain("sk-ant-api03");
  });
});

describe("gitconfigContent", () => {
  test("always trusts /workspace; adds [user] only when known", () => {
    const bare = gitconfigContent(undefined);
    expect(bare).toContain("[safe]\n\tdirectory = /workspace\n");
    expect(bare).not.toContain("[user]");
    expect(gitconfigContent({ name: "Ada", email: "ada@example.test" })).toContain("[user]\n\tname = Ada\n\temail = ada@example.test\n");
    const emailOnly = gitconfigContent({ email: "x@example.test" });
    expect(emailOnly).toContain("[user]\n\temail = x@example.test\n");
    expect(emailOnly).not.toContain("name =");
  });
});

function byPath(entries: TarEntry[]): Map<string, TarEntry> {
  const map = new Map<string, TarEntry>();
  for (const entry of entries) {
    expect(map.has(entry.path)).toBe(false); // no duplicates
    map.set(entry.path, entry);
  }
  return map;
}

describe("provisionEntries", () => {
  const plan = makePlan({ workspace: { user: { uid: 1234, gid: 5678 } } });

  test("the helper's plan is valid for parsePlan", () => {
    expect(parsePlan(plan)).toEqual(plan);
    expect(parsePlan({ ...plan, version: 2 })).toBeUndefined();
  });

  test("env file is 0400, prompt 0600, everything owned by the workspace user", () => {
    const entries = provisionEntries({ plan, envValues: { ANTHROPIC_API_KEY: "sk-x-0123456789abcdefghij" }, prompt: "Be brief.", skillDirs: {} });
    const map = byPath(entries);
    expect(map.get(ENV_FILE)).toMatchObject({ mode: 0o400, content: "export ANTHROPIC_API_KEY='sk-x-0123456789abcdefghij'\n" });
    expect(map.get(PROMPT_PATH)).toMatchObject({ mode: 0o600, content: "Be brief." });
    expect(map.get("/run/bottle")).toMatchObject({ type: "dir", mode: 0o700 });
    expect(map.get(`${AGENT_HOME}/.claude/bottle`)).toMatchObject({ type: "dir", mode: 0o700 });
    expect(map.get(`${AGENT_HOME}/.claude.json`)?.mode).toBe(0o600);
    for (const entry of entries) expect([entry.path, entry.uid, entry.gid]).toEqual([entry.path, 1234, 5678]);
  });

  test("parents come before their children", () => {
    const entries = provisionEntries({ plan, envValues: {}, prompt: "p", skillDirs: {} });
    const index = (path: string) => entries.findIndex((e) => e.path === path);
    expect(index(AGENT_HOME)).toBeLessThan(index(`${AGENT_HOME}/.claude`));
    expect(index(`${AGENT_HOME}/.claude/bottle`)).toBeLessThan(index(PROMPT_PATH));
    expect(index("/run/bottle")).toBeLessThan(index(ENV_FILE));
  });

  test("the prompt file is written only when the prompt has text", () => {
    for (const prompt of ["", "   \n\t"]) {
      const entries = provisionEntries({ plan, envValues: {}, prompt, skillDirs: {} });
      expect(entries.some((e) => e.path === PROMPT_PATH)).toBe(false);
    }
  });

  test(".claude.json carries the API key approval from the env values", () => {
    const key = "sk-ant-api03-zzzzzzzzzzzzzzzzzzzzzzzzzzzz-LAST20CHARSxxxxxxxxx";
    const withKey = byPath(provisionEntries({ plan, envValues: { ANTHROPIC_API_KEY: key }, prompt: "", skillDirs: {} }));
    const state = JSON.parse(String(withKey.get(`${AGENT_HOME}/.claude.json`)!.content));
    expect(state.customApiKeyResponses.approved).toEqual([key.slice(-20)]);
    expect(state.hasCompletedOnboarding).toBe(true);
    const without = byPath(provisionEntries({ plan, envValues: {}, prompt: "", skillDirs: {} }));
    expect(JSON.parse(String(without.get(`${AGENT_HOME}/.claude.json`)!.content))).not.toHaveProperty("customApiKeyResponses");
  });

  test("the gitconfig follows plan.gitUser", () => {
    const withUser = makePlan({ gitUser: { name: "Ada", email: "ada@example.test" } });
    const map = byPath(provisionEntries({ plan: withUser, envValues: {}, prompt: "", skillDirs: {} }));
    expect(map.get(`${AGENT_HOME}/.gitconfig`)?.content).toBe(gitconfigContent({ name: "Ada", email: "ada@example.test" }));
  });

  test("/workspace is created unless the workspace is a mount", () => {
    const mounted = provisionEntries({ plan, envValues: {}, prompt: "", skillDirs: {} });
    expect(mounted.some((e) => e.path === "/workspace")).toBe(false);
    for (const mode of ["copy", "none"] as const) {
      const entries = provisionEntries({ plan: makePlan({ workspace: { mode, hostPath: undefined } }), envValues: {}, prompt: "", skillDirs: {} });
      expect(entries.find((e) => e.path === "/workspace")).toMatchObject({ type: "dir", uid: 1000, gid: 1000 });
    }
  });

  test("skills are copied file by file, executables 0755, others 0644", () => {
    const skill = tempDir();
    writeFileSync(join(skill, "SKILL.md"), "# skill\n");
    mkdirSync(join(skill, "scripts"));
    writeFileSync(join(skill, "scripts", "run.sh"), "#!/bin/sh\n");
    chmodSync(join(skill, "scripts", "run.sh"), 0o700);
    writeFileSync(join(skill, "private.txt"), "x");
    chmodSync(join(skill, "private.txt"), 0o600);
    const map = byPath(provisionEntries({ plan, envValues: {}, prompt: "", skillDirs: { review: skill } }));
    // Outside the kept ~/.claude (bottle-run links ~/.claude/skills here): only this launch's skills.
    const base = `${AGENT_HOME}/.bottle/skills/review`;
    expect(map.get(base)).toMatchObject({ type: "dir", mode: 0o755, uid: 1234 });
    expect(map.get(`${base}/scripts`)).toMatchObject({ type: "dir", mode: 0o755 });
    expect(map.get(`${base}/scripts/run.sh`)).toMatchObject({ mode: 0o755, uid: 1234, gid: 5678 });
    expect(map.get(`${base}/private.txt`)?.mode).toBe(0o644);
    expect(new TextDecoder().decode(map.get(`${base}/SKILL.md`)!.content as Uint8Array)).toBe("# skill\n");
  });
});

describe("workspaceEntries", () => {
  test("a project dir becomes entries under /workspace owned by the user", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src", "index.ts"), "export {};\n");
    const map = byPath(workspaceEntries(dir, 1000, 1000));
    expect(map.get("/workspace")).toMatchObject({ type: "dir", mode: 0o755, uid: 1000, gid: 1000 });
    expect(map.get("/workspace/src")).toMatchObject({ type: "dir" });
    expect(map.get("/workspace/src/index.ts")).toMatchObject({ mode: 0o644, uid: 1000 });
  });
});
