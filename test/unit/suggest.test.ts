import { describe, expect, test } from "bun:test";
import { closest, didYouMean, editDistance } from "../../lib/suggest.ts";

describe("editDistance", () => {
  test("classic Levenshtein distances", () => {
    expect(editDistance("", "")).toBe(0);
    expect(editDistance("abc", "abc")).toBe(0);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("abc", "")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("flaw", "lawn")).toBe(2);
    expect(editDistance("intention", "execution")).toBe(5);
  });

  test("insertion, deletion and substitution each cost one", () => {
    expect(editDistance("logs", "logss")).toBe(1);
    expect(editDistance("logs", "lgs")).toBe(1);
    expect(editDistance("logs", "lags")).toBe(1);
    // A transposition is two edits (no Damerau).
    expect(editDistance("--nmae", "--name")).toBe(2);
  });

  test("is symmetric and case-sensitive", () => {
    for (const [a, b] of [["cleanup", "clenaup"], ["down", "dwn"], ["doctor", "docker"]] as const) {
      expect(editDistance(a, b)).toBe(editDistance(b, a));
    }
    expect(editDistance("Up", "up")).toBe(1);
  });
});

describe("closest", () => {
  const commands = ["up", "down", "ls", "logs", "exec", "attach", "cleanup", "doctor", "init"];

  test("finds a typo of a command", () => {
    expect(closest("dwon", commands)).toBe("down");
    expect(closest("clenup", commands)).toBe("cleanup");
    expect(closest("atach", commands)).toBe("attach");
    expect(closest("doctr", commands)).toBe("doctor");
  });

  test("ignores case", () => {
    expect(closest("LOGS", commands)).toBe("logs");
    expect(closest("Doctor", commands)).toBe("doctor");
  });

  test("nothing when every candidate is too far", () => {
    expect(closest("frobnicate", commands)).toBeUndefined();
    expect(closest("anything", [])).toBeUndefined();
  });

  test("the limit is max(2, a third of the input length)", () => {
    // length 9 → limit 3
    expect(closest("abcdefghi", ["abcdefxyz"])).toBe("abcdefxyz");
    expect(closest("abcdefghi", ["abcdewxyz"])).toBeUndefined();
    // short inputs still allow two edits
    expect(closest("ab", ["xy"])).toBe("xy");
    expect(closest("ab", ["xyz"])).toBeUndefined();
  });

  test("the nearest wins; on a tie the first candidate", () => {
    expect(closest("lgs", ["ls", "logs"])).toBe("ls");
    expect(closest("lgs", ["logs", "ls"])).toBe("logs");
    expect(closest("dowm", ["dawn", "down"])).toBe("down");
  });

  test("accepts any iterable", () => {
    expect(closest("--forse", new Set(["--force", "--help"]))).toBe("--force");
  });
});

describe("didYouMean", () => {
  test("formats a hint, or nothing", () => {
    expect(didYouMean("--detatch", ["--detach", "--help"])).toBe(" — did you mean --detach?");
    expect(didYouMean("lgs", ["logs"], (s) => `\`bottle ${s}\``)).toBe(" — did you mean `bottle logs`?");
    expect(didYouMean("zzzzzzzz", ["logs"])).toBe("");
  });
});
