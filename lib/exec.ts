import { constants } from "node:os";
import { BottleError } from "./errors.ts";
import { log } from "./log.ts";

/**
 * The only place that spawns processes. Always argv arrays, never a shell
 * string. Unit tests swap in a recorder (test/helpers/exec.ts).
 */
export interface RunOptions {
  cwd?: string;
  /** Extra variables on top of the current environment. */
  env?: Record<string, string | undefined>;
  /**
   * Written to the child's stdin, then closed. A promise is written once it
   * settles (the child starts meanwhile); when it rejects or gives undefined,
   * stdin is only closed.
   */
  stdin?: Stdin;
  /** Throw a CommandError on a non-zero exit (default true). */
  check?: boolean;
  /** Kill the child after this many ms. */
  timeoutMs?: number;
  /** Write stdout (binary) to this file instead of capturing it; `stdout` is then "". */
  stdoutFile?: string;
}

export type Stdin = string | Uint8Array | Promise<string | Uint8Array | undefined>;

/** The input a Stdin settles to; undefined when it rejects (stdin is then just closed). */
export async function stdinInput(stdin: Stdin | undefined): Promise<string | Uint8Array | undefined> {
  return Promise.resolve(stdin).catch(() => undefined);
}

export interface RunResult {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** What `waitForOutput` saw. */
export interface OutputWait {
  /** The first line holding the pattern; undefined when the process ended or the time ran out first. */
  line?: string;
  /** The tail of what it printed on either stream (for an error message). */
  output: string;
  /** The time ran out (rather than the process ending without the pattern). */
  timedOut?: boolean;
}

export interface InteractiveOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
}

export interface Exec {
  /** Run to completion, capturing stdout and stderr. */
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  /** Run on the user's terminal; resolves with the exit code (128+signal when killed). */
  interactive(argv: string[], options?: InteractiveOptions): Promise<number>;
  /** Whether stdin and stdout are both terminals (decides `docker -t`). */
  isTerminal(): boolean;
  /**
   * Run until a line of its output contains `pattern`, then stop it (SIGKILL).
   * `stdin` is written, then closed, as with `run`.
   */
  waitForOutput(argv: string[], pattern: string, timeoutMs: number, options?: { stdin?: Stdin }): Promise<OutputWait>;
}

/** A failed command: names the command and shows the tail of its stderr. */
export class CommandError extends BottleError {
  readonly result: RunResult;
  constructor(result: RunResult) {
    const tail = stderrTail(result.stderr || result.stdout);
    super(`${describeArgv(result.argv)} failed (exit code: ${result.exitCode})${tail ? `\n${tail}` : ""}`, {
      exitCode: 1,
    });
    this.name = "CommandError";
    this.result = result;
  }
}

export function describeArgv(argv: string[], max = 6): string {
  const shown = argv.slice(0, max).map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg)));
  return shown.join(" ") + (argv.length > max ? " …" : "");
}

export function stderrTail(text: string, lines = 12): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** 128+N for a signal name or number, as shells report it. */
export function signalExitCode(signal: string | number | null | undefined): number | undefined {
  if (signal === null || signal === undefined) return undefined;
  if (typeof signal === "number") return 128 + signal;
  const number = (constants.signals as Record<string, number>)[signal];
  return number === undefined ? 1 : 128 + number;
}

/** Write the input once it settles, then close; a child that exits without reading it is not an error here. */
async function feedStdin(sink: { write(chunk: string | Uint8Array): unknown; end(): unknown }, stdin: Stdin): Promise<void> {
  const input = await stdinInput(stdin);
  try {
    if (input !== undefined) sink.write(input);
    await sink.end();
  } catch {
    // The child exited without reading it: its exit code or output tells what happened.
  }
}

function childEnv(extra?: Record<string, string | undefined>): Record<string, string | undefined> | undefined {
  return extra ? { ...process.env, ...extra } : undefined;
}

export const realExec: Exec = {
  async run(argv, options = {}) {
    log.debug(`$ ${describeArgv(argv, 40)}`);
    const proc = Bun.spawn(argv, {
      cwd: options.cwd,
      env: childEnv(options.env),
      stdin: options.stdin === undefined ? "ignore" : "pipe",
      stdout: options.stdoutFile ? Bun.file(options.stdoutFile) : "pipe",
      stderr: "pipe",
    });
    // Read both pipes concurrently so a chatty stderr cannot block stdout.
    const stdoutText = proc.stdout instanceof ReadableStream ? new Response(proc.stdout).text() : Promise.resolve("");
    const reading = Promise.all([stdoutText, new Response(proc.stderr).text(), proc.exited]);
    if (options.stdin !== undefined && proc.stdin) await feedStdin(proc.stdin, options.stdin);
    // On timeout stop waiting for the pipes too: a grandchild may keep them open.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      if (options.timeoutMs)
        timer = setTimeout(() => {
          proc.kill("SIGKILL");
          resolve("timeout");
        }, options.timeoutMs);
    });
    const outcome = await Promise.race([reading, timedOut]);
    const [stdout, stderr, exitCode] =
      outcome === "timeout" ? ["", `timed out after ${options.timeoutMs} ms`, await proc.exited] : outcome;
    if (timer) clearTimeout(timer);
    const result: RunResult = {
      argv,
      exitCode: signalExitCode(proc.signalCode) ?? exitCode,
      stdout,
      stderr,
    };
    if (result.exitCode !== 0 && options.check !== false) throw new CommandError(result);
    return result;
  },

  async interactive(argv, options = {}) {
    log.debug(`$ ${describeArgv(argv, 40)}`);
    const proc = Bun.spawn(argv, {
      cwd: options.cwd,
      env: childEnv(options.env),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    });
    // Forward termination signals so the child can clean up; our own
    // teardown runs after it exits. A hangup (the terminal closed) too:
    // left to its default it would end us before that teardown.
    const forwarded = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((signal) => [signal, () => proc.kill(signal)] as const);
    for (const [signal, handler] of forwarded) process.on(signal, handler);
    try {
      const code = await proc.exited;
      return signalExitCode(proc.signalCode) ?? code;
    } finally {
      for (const [signal, handler] of forwarded) process.off(signal, handler);
    }
  },

  isTerminal() {
    return Boolean(process.stdin.isTTY && process.stdout.isTTY);
  },

  async waitForOutput(argv, pattern, timeoutMs, options = {}) {
    log.debug(`$ ${describeArgv(argv, 40)}  (until "${pattern}")`);
    const proc = Bun.spawn(argv, { stdin: options.stdin === undefined ? "ignore" : "pipe", stdout: "pipe", stderr: "pipe" });
    if (options.stdin !== undefined && proc.stdin) void feedStdin(proc.stdin, options.stdin);
    let output = "";
    // The first complete line holding the pattern (or the last, unterminated one at the end).
    const watch = async (stream: ReadableStream<Uint8Array>): Promise<string | undefined> => {
      const decoder = new TextDecoder();
      let pending = "";
      for await (const chunk of stream) {
        const text = decoder.decode(chunk, { stream: true });
        output = (output + text).slice(-OUTPUT_TAIL);
        pending += text;
        for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n")) {
          const line = pending.slice(0, end);
          pending = pending.slice(end + 1);
          if (line.includes(pattern)) return line;
        }
        pending = pending.slice(-OUTPUT_TAIL);
      }
      return pending.includes(pattern) ? pending : undefined;
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // As soon as either stream shows the pattern; no line when both end without it, or on timeout.
      return await new Promise<OutputWait>((resolve) => {
        timer = setTimeout(() => resolve({ output, timedOut: true }), timeoutMs);
        let ended = 0;
        for (const stream of [proc.stdout, proc.stderr]) {
          void watch(stream).then((hit) => {
            if (hit !== undefined) resolve({ line: hit, output });
            else if (++ended === 2) resolve({ output });
          });
        }
      });
    } finally {
      clearTimeout(timer);
      proc.kill("SIGKILL");
    }
  },
};

/** How much of a waited-for process's output is kept for an error message. */
const OUTPUT_TAIL = 8192;
