import { type Exec, type InteractiveOptions, type RunOptions, type RunResult, CommandError, stdinInput } from "../../lib/exec.ts";

/**
 * The exec layer's stand-in for unit tests: records every call and answers
 * from a responder, failing like the real one.
 */

/** A recorded call, for unit tests. */
export interface RecordedCall {
  argv: string[];
  options?: RunOptions | InteractiveOptions;
  interactive: boolean;
}

export type Responder = (argv: string[]) => Partial<Omit<RunResult, "argv">> | undefined;

/**
 * An Exec that records every call and answers from `responder` (default:
 * success with empty output). Failing answers throw like the real one.
 */
export function recordingExec(responder: Responder = () => undefined, terminal = false): Exec & { calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  return {
    calls,
    async run(argv, options = {}) {
      // Recorded with the input it settled to, as the real one writes it.
      const recorded = options.stdin === undefined ? options : { ...options, stdin: await stdinInput(options.stdin) };
      calls.push({ argv, options: recorded, interactive: false });
      const answer = responder(argv) ?? {};
      const result: RunResult = {
        argv,
        exitCode: answer.exitCode ?? 0,
        stdout: answer.stdout ?? "",
        stderr: answer.stderr ?? "",
      };
      if (result.exitCode !== 0 && options.check !== false) throw new CommandError(result);
      return result;
    },
    async interactive(argv, options) {
      calls.push({ argv, options, interactive: true });
      return responder(argv)?.exitCode ?? 0;
    },
    isTerminal() {
      return terminal;
    },
    // The answer's stdout is the output; a failing answer never shows the pattern.
    async waitForOutput(argv, pattern, _timeoutMs, options = {}) {
      calls.push({ argv, options: options.stdin === undefined ? options : { stdin: await stdinInput(options.stdin) }, interactive: false });
      const answer = responder(argv) ?? {};
      const output = `${answer.stdout ?? ""}${answer.stderr ?? ""}`;
      if ((answer.exitCode ?? 0) !== 0) return { output };
      return { line: (answer.stdout ?? "").split("\n").find((line) => line.includes(pattern)) ?? pattern, output };
    },
  };
}
