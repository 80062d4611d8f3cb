import { describe, expect, test } from "bun:test";
import { expectedSum, formatSha256Sums, parseSha256Sums, sha256Hex, sumsMatch } from "../../../lib/release/checksums.ts";

const A = "a".repeat(64);
const B = "0123456789abcdef".repeat(4);

describe("SHA256SUMS", () => {
  test("parses text and binary mode lines, ignores blank lines", () => {
    const parsed = parseSha256Sums(`${A}  bottle-linux-x64.tar.gz\n\n${B.toUpperCase()} *bottle-darwin-arm64.tar.gz\r\n`);
    expect(Object.fromEntries(parsed.entries)).toEqual({ "bottle-linux-x64.tar.gz": A, "bottle-darwin-arm64.tar.gz": B });
    expect(parsed.invalid).toEqual([]);
  });

  test("reports malformed lines and never matches them", () => {
    const parsed = parseSha256Sums(`${A.slice(1)}  short.tar.gz\nnot a sum\n${A} bottle.tar.gz\n`);
    expect(parsed.entries.size).toBe(0);
    expect(parsed.invalid.map((l) => l.line)).toEqual([1, 2, 3]);
  });

  test("a name listed twice with different sums is not trusted", () => {
    const text = `${A}  bottle-linux-x64.tar.gz\n${B}  bottle-linux-x64.tar.gz\n`;
    expect(expectedSum(text, "bottle-linux-x64.tar.gz")).toBeUndefined();
    expect(expectedSum(`${A}  x\n${A}  x\n`, "x")).toBe(A);
  });

  test("looks names up exactly", () => {
    const text = `${A}  bottle-linux-x64-baseline.tar.gz\n`;
    expect(expectedSum(text, "bottle-linux-x64.tar.gz")).toBeUndefined();
    expect(expectedSum(text, "bottle-linux-x64-baseline.tar.gz")).toBe(A);
    expect(expectedSum(`${A}  ./x.tar.gz\n`, "x.tar.gz")).toBe(A);
  });

  test("formats like sha256sum: sorted, two spaces, lowercase, trailing newline", () => {
    const text = formatSha256Sums([
      { name: "b.tar.gz", sha256: B.toUpperCase() },
      { name: "a.tar.gz", sha256: A },
    ]);
    expect(text).toBe(`${A}  a.tar.gz\n${B}  b.tar.gz\n`);
    expect(Object.fromEntries(parseSha256Sums(text).entries)).toEqual({ "a.tar.gz": A, "b.tar.gz": B });
  });

  test("hashes and compares", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sumsMatch(A, A.toUpperCase())).toBe(true);
    expect(sumsMatch(A, B)).toBe(false);
  });
});
