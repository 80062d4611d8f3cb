import { describe, expect, test } from "bun:test";
import { formatBytes, formatSize, parseSize } from "../../lib/bytes.ts";

describe("formatBytes", () => {
  test("binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(663 * 1024 * 1024)).toBe("663.0 MiB");
    expect(formatBytes(3 * 1024 ** 4)).toBe("3.0 TiB");
  });
});

describe("formatSize", () => {
  test("a whole number of its unit without a decimal, else one", () => {
    expect(formatSize(256 * 1024 ** 2)).toBe("256 MiB");
    expect(formatSize(4 * 1024 ** 3)).toBe("4 GiB");
    expect(formatSize(1.5 * 1024 ** 3)).toBe("1.5 GiB");
    expect(formatSize(25_275_990_016)).toBe("23.5 GiB");
    expect(formatSize(100)).toBe("100 B");
  });
});

describe("parseSize", () => {
  test("Docker's spellings and the IEC ones, every unit a power of 1024", () => {
    const cases: Array<[string, number]> = [
      ["4g", 4 * 1024 ** 3],
      ["4G", 4 * 1024 ** 3],
      ["4gb", 4 * 1024 ** 3],
      ["4GiB", 4 * 1024 ** 3],
      ["4 GiB", 4 * 1024 ** 3],
      ["512m", 512 * 1024 ** 2],
      ["512MB", 512 * 1024 ** 2],
      ["1.5g", 1.5 * 1024 ** 3],
      ["64k", 64 * 1024],
      ["1t", 1024 ** 4],
      ["1073741824", 1024 ** 3],
      ["100b", 100],
      [" 2g ", 2 * 1024 ** 3],
    ];
    for (const [text, bytes] of cases) expect([text, parseSize(text)]).toEqual([text, bytes]);
  });

  test("anything else is not a size", () => {
    for (const text of ["", "lots", "4 g b", "4x", "-1g", "g", "4.g", "1e9", "4ib", "4 GiBs"]) expect([text, parseSize(text)]).toEqual([text, undefined]);
  });
});
