import { BottleError } from "./errors.ts";

/** Questions on the user's terminal. Never called without a TTY (it would hang). */

function requireTerminal(what: string): void {
  if (!process.stdin.isTTY) throw new BottleError(`${what} needs a terminal`, { fix: "pass --yes, or run from a terminal" });
}

async function readLine(echo: boolean): Promise<string> {
  const stdin = process.stdin;
  stdin.setRawMode?.(!echo);
  stdin.resume();
  let line = "";
  try {
    for await (const chunk of stdin) {
      const text = String(chunk);
      for (const char of text) {
        if (char === "\r" || char === "\n") return line;
        if (char === "\u0003") throw new BottleError("cancelled", { exitCode: 130 });
        if (char === "\u007f") line = line.slice(0, -1);
        else line += char;
      }
    }
    return line;
  } finally {
    stdin.setRawMode?.(false);
    stdin.pause();
    if (!echo) process.stderr.write("\n");
  }
}

export async function askHidden(question: string): Promise<string> {
  requireTerminal("asking for a secret");
  process.stderr.write(question);
  return readLine(false);
}

export async function confirm(question: string): Promise<boolean> {
  requireTerminal("confirming");
  process.stderr.write(`${question} [y/N] `);
  const answer = await readLine(true);
  return /^y(es)?$/i.test(answer.trim());
}
