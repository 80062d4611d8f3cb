/**
 * The escape suite checks itself by switching off one defence at a time in
 * the gate's bundle (test/helpers/escape-mutate.ts). Each mutation patches
 * a piece of text that must be in the bundle exactly once, or it would
 * switch off nothing (or the wrong thing).
 */
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { MUTATIONS } from "../../../helpers/escape-mutations.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";
import { bundleForNode } from "./helpers.ts";

afterAll(cleanupTempDirs);

test("every mutation of the escape suite applies to the gate's bundle, once", async () => {
  const bundle = await bundleForNode(join(import.meta.dir, "../../../../lib/gates/egress/daemon/main.ts"), tempDir("mutations-"));
  const text = await Bun.file(bundle).text();
  const counts = Object.fromEntries(Object.entries(MUTATIONS).map(([name, [from]]) => [name, text.split(from).length - 1]));
  expect(counts).toEqual(Object.fromEntries(Object.keys(MUTATIONS).map((name) => [name, 1])));
});
