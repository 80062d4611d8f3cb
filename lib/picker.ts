import { BottleError } from "./errors.ts";

/**
 * The one multi-select on the user's terminal (`bottle init`'s presets,
 * `bottle allow`'s denied hosts): ↑/↓ (or k/j) move, space picks, a picks
 * all or none, Enter confirms, q / Esc / Ctrl-C cancel. It draws on stderr
 * (stdout carries only results) and is never called without a terminal.
 * The key handling and drawing work on a plain state (`pickerKey`,
 * `pickerLines`); only `pickMany` touches the streams.
 */

export interface Choice {
  label: string;
  /** Shown after the label. */
  hint?: string;
  /** Why it cannot be picked: shown, the cursor skips it. */
  disabled?: string;
}

export interface PickerState {
  choices: Choice[];
  cursor: number;
  picked: Set<number>;
  /** The first choice shown (a long list scrolls). */
  top: number;
}

export type PickerOutcome = "done" | "cancel" | undefined;

/** The streams it runs on: a TTY's (raw mode) in use, anything alike in tests. */
export interface PickerIO {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream & { columns?: number; rows?: number };
}

const KEYS: Record<string, string> = {
  "\x1b[A": "up",
  "\x1bOA": "up",
  k: "up",
  "\x1b[B": "down",
  "\x1bOB": "down",
  j: "down",
  " ": "toggle",
  a: "all",
  "\r": "done",
  "\n": "done",
  q: "cancel",
  "\x1b": "cancel",
  "\x03": "cancel",
  "\x04": "cancel",
};

/** The keys in a chunk of terminal input (escape sequences whole). */
export function splitKeys(chunk: string): string[] {
  return chunk.match(/\x1b\[[0-9;]*[A-Za-z~]|\x1bO[A-Za-z]|\x1b|[\s\S]/g) ?? [];
}

export function pickerState(choices: Choice[]): PickerState {
  const first = choices.findIndex((choice) => !choice.disabled);
  return { choices, cursor: Math.max(first, 0), picked: new Set(), top: 0 };
}

function move(state: PickerState, step: 1 | -1): void {
  for (let index = state.cursor + step; index >= 0 && index < state.choices.length; index += step) {
    if (!state.choices[index]!.disabled) {
      state.cursor = index;
      return;
    }
  }
}

/** Applies one key; "done" or "cancel" when the key ends the question. */
export function pickerKey(state: PickerState, key: string): PickerOutcome {
  const enabled = state.choices.flatMap((choice, index) => (choice.disabled ? [] : [index]));
  switch (KEYS[key]) {
    case "up":
      move(state, -1);
      return undefined;
    case "down":
      move(state, 1);
      return undefined;
    case "toggle":
      if (!state.choices[state.cursor] || state.choices[state.cursor]!.disabled) return undefined;
      if (state.picked.has(state.cursor)) state.picked.delete(state.cursor);
      else state.picked.add(state.cursor);
      return undefined;
    case "all":
      if (enabled.every((index) => state.picked.has(index))) state.picked.clear();
      else for (const index of enabled) state.picked.add(index);
      return undefined;
    case "done":
      return "done";
    case "cancel":
      return "cancel";
    default:
      return undefined;
  }
}

function fit(line: string, width: number): string {
  return line.length > width ? `${line.slice(0, Math.max(width - 1, 0))}…` : line;
}

/** The question and the visible choices (scrolled to keep the cursor in view), each line cut to `width`: a wrapped line would break the redraw. */
export function pickerLines(question: string, state: PickerState, width: number, height: number): string[] {
  const rows = Math.max(height - 2, 3);
  if (state.cursor < state.top) state.top = state.cursor;
  if (state.cursor >= state.top + rows) state.top = state.cursor - rows + 1;
  const labelWidth = Math.max(...state.choices.map((choice) => choice.label.length), 0);
  const shown = state.choices.slice(state.top, state.top + rows).map((choice, offset) => {
    const index = state.top + offset;
    const mark = choice.disabled ? " - " : state.picked.has(index) ? "[x]" : "[ ]";
    const pointer = index === state.cursor && !choice.disabled ? ">" : " ";
    const detail = [choice.hint, choice.disabled ? `not offered: ${choice.disabled}` : undefined].filter(Boolean).join(" — ");
    return fit(`${pointer} ${mark} ${choice.label.padEnd(labelWidth)}${detail ? `  ${detail}` : ""}`.trimEnd(), width);
  });
  const more = state.choices.length > rows ? `  (${state.cursor + 1}/${state.choices.length})` : "";
  return [fit(`? ${question}${more}  [↑/↓ move, space pick, a all, enter done, q cancel]`, width), ...shown];
}

/**
 * Asks on the terminal which of `choices` to take; their indexes, in list
 * order (none picked: empty). Cancelling is an error (exit 130).
 */
export async function pickMany(question: string, choices: Choice[], io: PickerIO = { input: process.stdin, output: process.stderr }): Promise<number[]> {
  const { input, output } = io;
  if (!input.isTTY || !input.setRawMode) throw new BottleError(`choosing needs a terminal: ${question}`, { fix: "run it from a terminal, or give the choices as arguments" });
  const state = pickerState(choices);
  let drawn = 0;
  const draw = (lines: string[]) => {
    // Back to the first line drawn, clear down, draw again.
    output.write(`${drawn ? `\x1b[${drawn}F` : ""}\x1b[J${lines.map((line) => `${line}\n`).join("")}`);
    drawn = lines.length;
  };
  const redraw = () => draw(pickerLines(question, state, (output.columns ?? 80) - 1, output.rows ?? 24));
  input.setRawMode(true);
  input.resume();
  output.write("\x1b[?25l");
  redraw();
  try {
    const outcome = await new Promise<"done" | "cancel">((resolve) => {
      const onData = (chunk: Buffer | string) => {
        for (const key of splitKeys(chunk.toString())) {
          const result = pickerKey(state, key);
          if (result) {
            input.off("data", onData);
            resolve(result);
            return;
          }
        }
        redraw();
      };
      input.on("data", onData);
    });
    const picked = [...state.picked].sort((a, b) => a - b);
    // What was chosen stays on the screen as one line.
    draw([fit(`? ${question}  ${outcome === "cancel" ? "(cancelled)" : picked.length ? picked.map((index) => choices[index]!.label).join(", ") : "(none)"}`, (output.columns ?? 80) - 1)]);
    if (outcome === "cancel") throw new BottleError("cancelled", { exitCode: 130 });
    return picked;
  } finally {
    output.write("\x1b[?25h");
    input.setRawMode(false);
    input.pause();
  }
}
