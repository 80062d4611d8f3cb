import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandDef } from "citty";
import { commands, main } from "../../../cmd/commands.ts";
import { completionTree, renderCompletion, SHELLS, type CompletionTree } from "../../../lib/cli/completion.ts";

const ROOT = join(import.meta.dir, "..", "..", "..");

/** Subcommand names in the lazy map of cmd/commands.ts. */
function rootCommands(): string[] {
  return Object.keys(commands);
}

function shellAvailable(shell: string): boolean {
  return Bun.which(shell) !== null;
}

function syntaxCheck(shell: string, script: string): { exitCode: number; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "bottle-completion-"));
  const file = join(dir, `completion.${shell}`);
  writeFileSync(file, script);
  const proc = Bun.spawnSync([shell, "-n", file], { stderr: "pipe", stdout: "pipe" });
  return { exitCode: proc.exitCode, stderr: proc.stderr.toString() };
}

describe("shell completions", () => {
  let tree: CompletionTree;
  const scripts: Record<string, string> = {};
  beforeAll(async () => {
    tree = await completionTree(main as CommandDef);
    for (const shell of SHELLS) scripts[shell] = renderCompletion(shell, tree);
  });

  test("every command file in cmd/ is in the command map", () => {
    const files = [...new Bun.Glob("*.ts").scanSync(join(ROOT, "cmd"))].filter((f) => !f.startsWith("_") && f !== "bottle.ts" && f !== "commands.ts");
    expect(rootCommands().sort()).toEqual(files.map((f) => f.replace(/\.ts$/, "")).sort());
  });

  test("the tree has every visible command with its flags; hidden ones are left out", () => {
    const names = tree.commands.map((c) => c.name);
    for (const name of rootCommands().filter((n) => n !== "assets")) expect(names).toContain(name);
    expect(names).not.toContain("assets");
    const up = tree.commands.find((c) => c.name === "up")!;
    expect(up.flags.map((f) => f.name)).toEqual(expect.arrayContaining(["dry-run", "backend", "workspace", "yes", "json", "detach"]));
    expect(up.flags.find((f) => f.name === "detach")?.short).toBe("d");
    expect(up.flags.find((f) => f.name === "dry-run")?.value).toBeUndefined();
    expect(up.flags.find((f) => f.name === "backend")?.value).toEqual({ kind: "choices", choices: ["docker", "smolmachines"] });
    expect(up.positional).toEqual({ name: "agent", hint: { kind: "agents" } });
    expect(tree.commands.find((c) => c.name === "info")?.positional?.hint).toEqual({ kind: "agents" });
    expect(tree.commands.find((c) => c.name === "completion")?.positional?.hint).toEqual({ kind: "choices", choices: ["bash", "zsh", "fish"] });
  });

  for (const shell of SHELLS) {
    test(`${shell}: mentions every command, up's flags, and looks agents up without jq`, () => {
      const script = scripts[shell]!;
      for (const command of tree.commands) expect(script).toContain(command.name);
      for (const flag of ["dry-run", "backend", "workspace", "detach", "json", "verbose", "quiet"]) expect(script).toContain(flag);
      expect(script).toContain("smolmachines");
      expect(script).toContain("bottle agents --json");
      expect(script).toContain("sed -n");
      expect(script).not.toContain("jq");
    });
  }

  test("bash: registers _bottle and passes bash -n", () => {
    const script = scripts.bash!;
    expect(script).toContain("complete -F _bottle bottle");
    expect(script).toContain("--dry-run");
    const check = syntaxCheck("bash", script);
    expect(check.stderr).toBe("");
    expect(check.exitCode).toBe(0);
  });

  test("bash: completes commands, flags, flag values and agent names", () => {
    const dir = mkdtempSync(join(tmpdir(), "bottle-completion-"));
    // A stand-in `bottle` on PATH answering `agents --json` the way printJson does.
    writeFileSync(
      join(dir, "bottle"),
      `#!/bin/sh\n[ "$1" = agents ] && printf '[\\n  {\\n    "name": "default",\\n    "bottle": "default"\\n  },\\n  {\\n    "name": "reviewer",\\n    "bottle": "web"\\n  }\\n]\\n'\n`,
      { mode: 0o755 },
    );
    writeFileSync(join(dir, "completion.bash"), scripts.bash!);
    const probe = `
source "${dir}/completion.bash"
t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _bottle; echo "\${COMPREPLY[*]}"; }
t bottle u
t bottle up ""
t bottle up --dr
t bottle up --backend ""
t bottle --verbose info r
t bottle up default ""
t bottle completion ""
t bottle up -- ""
`;
    const proc = Bun.spawnSync(["bash", "-c", probe], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, stdout: "pipe", stderr: "pipe" });
    expect(proc.stderr.toString()).toBe("");
    expect(proc.stdout.toString().split("\n")).toEqual([
      "up update",
      "default reviewer",
      "--dry-run",
      "docker smolmachines",
      "reviewer",
      "",
      "bash zsh fish",
      "",
      "",
    ]);
  });

  test("zsh: a #compdef file with _arguments specs", () => {
    const script = scripts.zsh!;
    expect(script.startsWith("#compdef bottle\n")).toBe(true);
    expect(script).toContain("'--dry-run[Print the plan and create nothing; exit 1 naming each unset ${VAR} the launch needs]'");
    expect(script).toContain("compdef _bottle bottle");
    if (!shellAvailable("zsh")) return void console.log("zsh not installed: skipped zsh -n");
    expect(syntaxCheck("zsh", script).exitCode).toBe(0);
  });

  test("fish: complete lines per command", () => {
    const script = scripts.fish!;
    expect(script).toContain("complete -c bottle -n '__fish_seen_subcommand_from up' -l dry-run");
    expect(script).toContain("complete -c bottle -n '__fish_seen_subcommand_from up' -a '(__bottle_agents)'");
    expect(script).toContain("complete -c bottle -n __fish_use_subcommand -a up");
    if (!shellAvailable("fish")) return void console.log("fish not installed: skipped fish -n");
    expect(syntaxCheck("fish", script).exitCode).toBe(0);
  });

  test("quotes descriptions that hold quotes and brackets", async () => {
    const tricky: CompletionTree = {
      program: "bottle",
      globalFlags: [],
      commands: [{ name: "x", description: "it's [odd] \\ \"quoted\"", flags: [{ name: "f", description: "it's [odd]" }] }],
    };
    expect(syntaxCheck("bash", renderCompletion("bash", tricky)).exitCode).toBe(0);
    expect(renderCompletion("zsh", tricky)).toContain("'--f[it'\\''s \\[odd\\]]'");
    expect(renderCompletion("fish", tricky)).toContain("-d 'it\\'s [odd]'");
  });
});
