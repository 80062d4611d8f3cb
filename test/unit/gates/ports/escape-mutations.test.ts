/**
 * The escape suite checks its attacks on a port's relay by switching off one
 * defence of the relay's code at a time (test/helpers/escape-mutate.ts).
 * Each mutation patches text that must be in the bundle exactly once, and
 * leaves a script that still parses.
 */
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { RELAY_MUTATIONS } from "../../../helpers/escape-mutations.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";
import { bundleForNode } from "../egress/helpers.ts";

afterAll(cleanupTempDirs);

test("every relay mutation of the escape suite applies to the relay's bundle, once, and leaves valid JavaScript", async () => {
  const bundle = await bundleForNode(join(import.meta.dir, "../../../../lib/gates/ports/daemon/main.ts"), tempDir("relay-mutations-"), "port-relay.mjs");
  const text = await Bun.file(bundle).text();
  const counts = Object.fromEntries(Object.entries(RELAY_MUTATIONS).map(([name, [from]]) => [name, text.split(from).length - 1]));
  expect(counts).toEqual(Object.fromEntries(Object.keys(RELAY_MUTATIONS).map((name) => [name, 1])));
  const transpiler = new Bun.Transpiler({ loader: "js" });
  for (const [from, to] of Object.values(RELAY_MUTATIONS)) expect(() => transpiler.transformSync(text.replace(from, to))).not.toThrow();
});
