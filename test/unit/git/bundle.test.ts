import { describe, expect, test } from "bun:test";
import { BundleError, parseBundle } from "../../../lib/git/bundle.ts";

const A = "a".repeat(40);
const B = "b".repeat(40);
const bytes = (text: string, pack = "PACK\x00\x00\x00\x02") => new TextEncoder().encode(text + pack);

describe("parseBundle", () => {
  test("v2: prerequisites, refs, and the pack after the blank line", () => {
    const bundle = parseBundle(bytes(`# v2 git bundle\n-${A} base commit\n${B} HEAD\n\n`));
    expect(bundle).toEqual({ objectFormat: "sha1", prerequisites: [A], refs: [{ id: B, name: "HEAD" }], pack: bytes("", "PACK\x00\x00\x00\x02") });
  });

  test("v3 with a sha256 object format", () => {
    const id = "c".repeat(64);
    expect(parseBundle(bytes(`# v3 git bundle\n@object-format=sha256\n${id} HEAD\n\n`)).objectFormat).toBe("sha256");
  });

  test("anything else is refused with the reason", () => {
    for (const [text, reason] of [
      ["# v9 git bundle\nx\n\n", "not a v2 or v3 git bundle"],
      [`# v2 git bundle\n${B} HEAD\n`, "no bundle header"],
      [`# v2 git bundle\n${B} refs/heads/a b\n\n`, "malformed bundle line"],
      [`# v3 git bundle\n@filter=blob:none\n${B} HEAD\n\n`, "unsupported bundle capability"],
      [`# v3 git bundle\n@object-format=sha256\n${B} HEAD\n\n`, "object ids do not match sha256"],
    ] as const) {
      expect(() => parseBundle(bytes(text))).toThrow(BundleError);
      expect(() => parseBundle(bytes(text))).toThrow(reason);
    }
  });
});
