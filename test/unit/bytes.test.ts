import { describe, expect, test } from "bun:test";
import { formatBytes } from "../../lib/bytes.ts";

describe("formatBytes", () => {
  test("binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(663 * 1024 * 1024)).toBe("663.0 MiB");
    expect(formatBytes(3 * 1024 ** 4)).toBe("3.0 TiB");
  });
});
