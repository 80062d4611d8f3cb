import { describe, expect, test } from "bun:test";
import { PassThrough } from "node:stream";
import { BottleError } from "../../lib/errors.ts";
import { type Choice, pickerKey, pickerLines, pickerState, pickMany, splitKeys } from "../../lib/picker.ts";
import { caught } from "../helpers/unit.ts";

const choices: Choice[] = [
  { label: "a.test", hint: "×3" },
  { label: "10.0.0.5", disabled: "an IP address" },
  { label: "b.test" },
  { label: "c.test" },
];

describe("keys", () => {
  test("arrow keys (both modes) come whole, other bytes one by one", () => {
    expect(splitKeys("\x1b[B\x1bOA jq\r")).toEqual(["\x1b[B", "\x1bOA", " ", "j", "q", "\r"]);
  });

  test("the cursor starts on the first choice that can be picked and skips the others", () => {
    const state = pickerState([{ label: "x", disabled: "no" }, ...choices]);
    expect(state.cursor).toBe(1);
    pickerKey(state, "\x1b[B");
    expect(state.cursor).toBe(3);
    pickerKey(state, "k");
    expect(state.cursor).toBe(1);
    // At the top it stays.
    pickerKey(state, "\x1b[A");
    expect(state.cursor).toBe(1);
  });

  test("space picks and unpicks, a picks every choice that can be picked (again: none), enter ends", () => {
    const state = pickerState(choices);
    pickerKey(state, " ");
    pickerKey(state, "j");
    pickerKey(state, " ");
    expect([...state.picked]).toEqual([0, 2]);
    pickerKey(state, " ");
    expect([...state.picked]).toEqual([0]);
    pickerKey(state, "a");
    expect([...state.picked].sort()).toEqual([0, 2, 3]);
    pickerKey(state, "a");
    expect(state.picked.size).toBe(0);
    expect(pickerKey(state, "x")).toBeUndefined();
    expect(pickerKey(state, "\r")).toBe("done");
  });

  test("q, Esc, Ctrl-C and Ctrl-D cancel", () => {
    for (const key of ["q", "\x1b", "\x03", "\x04"]) expect(pickerKey(pickerState(choices), key)).toBe("cancel");
  });
});

describe("drawing", () => {
  test("the question, then each choice: pointer, box, label, hint; a choice not offered says why", () => {
    const state = pickerState(choices);
    pickerKey(state, " ");
    expect(pickerLines("Allow which?", state, 200, 24)).toEqual([
      "? Allow which?  [↑/↓ move, space pick, a all, enter done, q cancel]",
      "> [x] a.test    ×3",
      "   -  10.0.0.5  not offered: an IP address",
      "  [ ] b.test",
      "  [ ] c.test",
    ]);
  });

  test("lines are cut to the terminal's width; a long list scrolls with the cursor", () => {
    const many = Array.from({ length: 30 }, (_, index) => ({ label: `host-${index}.test` }));
    const state = pickerState(many);
    for (let i = 0; i < 20; i++) pickerKey(state, "j");
    const lines = pickerLines("Allow which of these many hosts?", state, 30, 10);
    expect(lines.length).toBe(9);
    expect(lines.every((line) => line.length <= 30)).toBe(true);
    expect(lines[0]).toEndWith("…");
    expect(lines.at(-1)).toBe("> [ ] host-20.test");
  });
});

/** A stand-in for a TTY: raw mode recorded, input fed by the test. */
function fakeTerminal() {
  const input = Object.assign(new PassThrough(), { isTTY: true, modes: [] as boolean[], setRawMode(raw: boolean) { this.modes.push(raw); } });
  const output = Object.assign(new PassThrough(), { columns: 100, rows: 20 });
  let text = "";
  output.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return { input, output, text: () => text };
}

describe("pickMany on a terminal", () => {
  test("returns the picked indexes in list order; raw mode and the cursor are given back; the answer stays as one line", async () => {
    const terminal = fakeTerminal();
    const answer = pickMany("Allow which?", choices, terminal);
    terminal.input.write("j");
    terminal.input.write(" \x1b[A ");
    terminal.input.write("\r");
    expect(await answer).toEqual([0, 2]);
    expect(terminal.input.modes).toEqual([true, false]);
    expect(terminal.text()).toContain("\x1b[?25l");
    expect(terminal.text()).toEndWith("? Allow which?  a.test, b.test\n\x1b[?25h");
  });

  test("cancelling is an error with exit code 130", async () => {
    const terminal = fakeTerminal();
    const answer = caught(pickMany("Allow which?", choices, terminal));
    terminal.input.write("q");
    const error = await answer;
    expect(error).toBeInstanceOf(BottleError);
    expect((error as BottleError).exitCode).toBe(130);
    expect(terminal.input.modes).toEqual([true, false]);
  });

  test("without a terminal it refuses at once rather than hang", async () => {
    const error = await caught(pickMany("Allow which?", choices, { input: new PassThrough(), output: new PassThrough() }));
    expect(error).toBeInstanceOf(BottleError);
    expect((error as BottleError).message).toBe("choosing needs a terminal: Allow which?");
  });
});
