import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { docker } from "./docker.ts";
import { MUTATIONS } from "./escape-mutations.ts";

/**
 * Testing the escape suite itself: with ESCAPE_MUTATE=<names> (comma
 * separated) every attacker bottle's gate runs a copy of the egress-gate
 * bundle with one defence switched off, so the attacks on that defence must
 * now FAIL. Never set in normal runs; it only ever edits the test's own gate
 * container (the bundle in the repository is untouched).
 *
 *   ESCAPE_MUTATE=allowlist bun test test/integration/escape/proxy.test.ts
 */

/** Mutations of the Docker setup rather than the gate's code. */
export const SETUP_MUTATIONS: Record<string, (name: string) => void> = {
  /** The bottle also sits on the egress network (as if its network were not --internal). */
  "bottle-on-egress": (name) => void docker("network", "connect", `${name}-egress`, name),
};

const BUNDLE = "/opt/bottle/egress-gate.mjs";

/** Applies the requested mutations to the bottle NAME and its gate. */
export function applyMutations(name: string, names = requestedMutations()): void {
  for (const mutation of names.filter((n) => n in SETUP_MUTATIONS)) SETUP_MUTATIONS[mutation]!(name);
  mutateGate(`${name}-gate`, names.filter((n) => !(n in SETUP_MUTATIONS)));
}

export function requestedMutations(): string[] {
  return (process.env.ESCAPE_MUTATE ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
}

/** Patches the gate's bundle and restarts the gate; throws when a mutation no longer applies. */
export function mutateGate(gate: string, names: string[]): void {
  if (names.length === 0) return;
  const dir = mkdtempSync(join(tmpdir(), "bottle-mutant-"));
  const file = join(dir, "egress-gate.mjs");
  docker("cp", `${gate}:${BUNDLE}`, file);
  let text = readFileSync(file, "utf8");
  for (const name of names) {
    const mutation = MUTATIONS[name];
    if (!mutation) throw new Error(`unknown mutation ${name}; known: ${Object.keys(MUTATIONS).join(", ")}`);
    if (!text.includes(mutation[0])) throw new Error(`mutation ${name} does not apply to the gate bundle any more`);
    text = text.replace(mutation[0], mutation[1]);
  }
  writeFileSync(file, text);
  docker("cp", file, `${gate}:${BUNDLE}`);
  const readyBefore = docker("logs", gate).split("egress gate ready").length;
  docker("restart", "-t", "1", gate);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const out = Bun.spawnSync(["docker", "logs", gate], { stdout: "pipe", stderr: "pipe" });
    if (out.stdout.toString().split("egress gate ready").length > readyBefore) return;
    Bun.sleepSync(100);
  }
  throw new Error(`${gate} did not come back after mutation`);
}
