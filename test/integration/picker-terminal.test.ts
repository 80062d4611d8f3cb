import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { bottleArgv, makeSandbox, type Sandbox } from "../helpers/cli.ts";
import { Terminal } from "../helpers/terminal.ts";

/**
 * The multi-select picker in a real terminal (a tmux pane on the host, no
 * Docker): `bottle init` asks which egress presets the new bottle starts
 * with. `bottle allow`'s picker is the same module, driven in
 * presets.test.ts against a running bottle.
 */

const hasTmux = Bun.spawnSync(["sh", "-c", "command -v tmux"]).exitCode === 0;
if (!hasTmux) console.warn("skipping the picker's terminal tests: tmux is not installed");

(hasTmux ? describe : describe.skip)("bottle init in a terminal", () => {
  let terminal: Terminal | undefined;
  let sandbox: Sandbox | undefined;
  afterEach(() => {
    terminal?.close();
    if (sandbox) rmSync(sandbox.home, { recursive: true, force: true });
  });

  test("asks the names, then which presets: arrows and space pick, Enter writes them into the bottle", async () => {
    sandbox = makeSandbox();
    terminal = new Terminal(bottleArgv(["init"]), { env: sandbox.env, cwd: sandbox.project });
    await terminal.waitFor("Name of the agent");
    terminal.keys("Enter");
    await terminal.waitFor("Name of the bottle");
    terminal.keys("Enter");
    const screen = await terminal.waitFor("Which egress presets should the bottle start with?");
    for (const name of ["crates", "debian", "github", "go", "npm", "pypi", "rubygems"]) expect(screen).toContain(`[ ] ${name}`);
    expect(screen).toContain("The npm registry (npm, pnpm, yarn, bun)");
    // crates → debian → github: pick; → go → npm: pick; back up to go and down again changes nothing.
    terminal.keys("Down", "Down", "Space", "j", "j", "Space", "Up", "Down");
    await terminal.waitFor(/> \[x\] npm/);
    expect(terminal.screen()).toContain("[x] github");
    terminal.keys("Enter");
    expect(await terminal.waitForExit()).toBe(0);
    expect(terminal.screen()).toContain("? Which egress presets should the bottle start with?  github, npm");
    expect(readFileSync(join(sandbox.config, "bottles", "default.yaml"), "utf8")).toContain("  presets: [github, npm]\n");
  });

  test("q cancels: exit 130 and nothing is written", async () => {
    sandbox = makeSandbox();
    terminal = new Terminal(bottleArgv(["init", "--agent", "coder", "--bottle", "work"]), { env: sandbox.env, cwd: sandbox.project });
    await terminal.waitFor("Which egress presets");
    terminal.keys("Space", "q");
    expect(await terminal.waitForExit()).toBe(130);
    expect(terminal.screen()).toContain("(cancelled)");
    expect(existsSync(join(sandbox.config, "bottles", "work.yaml"))).toBe(false);
    expect(existsSync(join(sandbox.config, "agents", "coder.md"))).toBe(false);
  });

  test("--preset answers the question: none is asked", async () => {
    sandbox = makeSandbox();
    terminal = new Terminal(bottleArgv(["init", "--agent", "coder", "--bottle", "work", "--preset", "pypi"]), { env: sandbox.env, cwd: sandbox.project });
    expect(await terminal.waitForExit()).toBe(0);
    expect(terminal.screen()).not.toContain("Which egress presets");
    expect(readFileSync(join(sandbox.config, "bottles", "work.yaml"), "utf8")).toContain("  presets: [pypi]\n");
  });
});
