import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uniqueId } from "./docker.ts";

/**
 * A real terminal for the tests of what a person does (attach, detach,
 * answer a prompt): a tmux session on the host, on a server of its own, in
 * which the test runs a command and reads the screen as a person would see it.
 */

function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, "'\\''")}'`;
}

/**
 * `argv` in `cwd` with exactly `env` (and TERM); its exit status goes to
 * `statusFile`. The shell that runs it writes the status: a tmux server
 * started from Bun misses its children's exits (they stay zombies, the
 * pane's status unset), so the pane's own status cannot be trusted.
 */
function paneCommand(argv: string[], options: { env: Record<string, string>; cwd: string }, statusFile: string): string {
  const env = Object.entries({ ...options.env, TERM: "xterm-256color" }).map(([key, value]) => `${key}=${value}`);
  return `cd ${shellQuote(options.cwd)} && env -i ${env.map(shellQuote).join(" ")} ${argv.map(shellQuote).join(" ")}; echo $? > ${shellQuote(statusFile)}`;
}

export class Terminal {
  readonly socket = uniqueId("term");
  private readonly session = "t";
  private readonly statusFile = join(tmpdir(), `${this.socket}.status`);

  private tmux(args: string[]): { exitCode: number; stdout: string } {
    const out = Bun.spawnSync(["tmux", "-L", this.socket, ...args], { stdout: "pipe", stderr: "pipe" });
    return { exitCode: out.exitCode ?? -1, stdout: out.stdout.toString() };
  }

  /** Starts `argv` in a `width`×`height` terminal with exactly `env` (and TERM), in `cwd`. */
  constructor(argv: string[], options: { env: Record<string, string>; cwd: string; width?: number; height?: number }) {
    // The pane stays after the command ends, so its last screen (and exit status) can be read.
    const started = this.tmux(["new-session", "-d", "-s", this.session, "-x", String(options.width ?? 120), "-y", String(options.height ?? 40), "sh", "-c", paneCommand(argv, options, this.statusFile)]);
    if (started.exitCode !== 0) throw new Error("tmux could not start the test terminal");
    this.tmux(["set-option", "-t", this.session, "remain-on-exit", "on"]);
  }

  /** The screen as text (no colours), the scrollback too. */
  screen(): string {
    return this.tmux(["capture-pane", "-p", "-J", "-S", "-200", "-t", this.session]).stdout;
  }

  /** Types `text` (literally) and, unless told otherwise, Enter. */
  type(text: string, enter = true): void {
    this.tmux(["send-keys", "-t", this.session, "-l", text]);
    if (enter) this.tmux(["send-keys", "-t", this.session, "Enter"]);
  }

  /** Sends keys by tmux name: "C-]", "C-d", "Enter". */
  keys(...names: string[]): void {
    this.tmux(["send-keys", "-t", this.session, ...names]);
  }

  resize(width: number, height: number): void {
    this.tmux(["resize-window", "-t", this.session, "-x", String(width), "-y", String(height)]);
  }

  /** The command's exit status once it ended (128+N for a signal, as a shell says), else undefined. */
  exitStatus(): number | undefined {
    try {
      const status = readFileSync(this.statusFile, "utf8").trim();
      return status ? Number(status) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Polls the screen until `match` shows (or the time runs out: then the last screen is in the error). */
  async waitFor(match: string | RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (typeof match === "string" ? screen.includes(match) : match.test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`the terminal never showed ${String(match)}; its screen:\n${screen}`);
      await Bun.sleep(200);
    }
  }

  /**
   * Ctrl-D twice, as a person leaves Claude Code (the second press must come
   * soon after the first), again every few seconds until the command ends;
   * its exit status.
   */
  async leaveClaude(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.tmux(["send-keys", "-t", this.session, "C-d"]);
      await Bun.sleep(300);
      this.tmux(["send-keys", "-t", this.session, "C-d"]);
      const waited = Math.min(5_000, Math.max(0, deadline - Date.now()));
      try {
        return await this.waitForExit(waited);
      } catch (error) {
        if (Date.now() >= deadline) throw error;
      }
    }
  }

  /** Waits until the command has ended; its exit status. */
  async waitForExit(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = this.exitStatus();
      if (status !== undefined) {
        if (status !== 0) process.stderr.write(`the command ended with ${status}; its screen:\n${this.screen()}\n`);
        return status;
      }
      if (Date.now() > deadline) throw new Error(`the command never ended; its screen:\n${this.screen()}`);
      await Bun.sleep(200);
    }
  }

  /** Runs another command in the same terminal (after the first ended). */
  respawn(argv: string[], options: { env: Record<string, string>; cwd: string }): void {
    rmSync(this.statusFile, { force: true });
    this.tmux(["respawn-pane", "-k", "-t", this.session, "sh", "-c", paneCommand(argv, options, this.statusFile)]);
    // What the first command printed must not be mistaken for what the second shows.
    this.tmux(["clear-history", "-t", this.session]);
  }

  close(): void {
    this.tmux(["kill-server"]);
    rmSync(this.statusFile, { force: true });
    rmSync(join(`/tmp/tmux-${process.getuid?.() ?? 0}`, this.socket), { force: true });
  }
}
