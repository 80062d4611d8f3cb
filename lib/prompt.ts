import { BottleError } from "./errors.ts";

/** Questions on the user's terminal. Never called without a TTY (it would hang). */

function requireTerminal(what: string): void {
  if (!process.stdin.isTTY) throw new BottleError(`${what} needs a terminal`, { fix: "pass --yes, or run from a terminal" });
}

/** One echoed line (an answer to a question). */
async function readLine(): Promise<string> {
  const stdin = process.stdin;
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
    stdin.pause();
  }
}

/** One line from the terminal, not echoed (a secret asked with `?question`); ^C or ^D cancels. */
export async function askHidden(question: string, name: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new BottleError(`cannot ask for ${name}: no terminal`, { fix: `write \${${name}} in the bottle and export ${name} instead` });
  process.stderr.write(`${question} (${name}, not shown): `);
  stdin.setRawMode(true);
  stdin.resume();
  return await new Promise<string>((resolve, reject) => {
    let value = "";
    const finish = (error?: Error) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString()) {
        if (char === "\r" || char === "\n") return finish();
        if (char === "\u0003" || char === "\u0004") return finish(new BottleError(`cancelled while asking for ${name}`, { exitCode: 130 }));
        // Backspace removes one character, however many bytes it was.
        if (char === "\u007f" || char === "\b") value = Array.from(value).slice(0, -1).join("");
        else if (char >= " ") value += char;
      }
    };
    stdin.on("data", onData);
  });
}

export async function confirm(question: string): Promise<boolean> {
  requireTerminal("confirming");
  process.stderr.write(`${question} [y/N] `);
  const answer = await readLine();
  return /^y(es)?$/i.test(answer.trim());
}
