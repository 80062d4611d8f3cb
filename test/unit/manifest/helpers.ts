import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, expect, spyOn } from "bun:test";
import { BottleError } from "../../../lib/errors.ts";
import { log } from "../../../lib/log.ts";
import { ManifestError, resolveBottle, type ResolvedBottle } from "../../../lib/manifest/index.ts";
import { caught } from "../../helpers/unit.ts";

/** A throwaway HOME with a config dir and a project dir; paths in messages normalise to <tmp>. */
export interface Sandbox {
  root: string;
  config: string;
  project: string;
  env: Record<string, string | undefined>;
  bottle(name: string, text: string): string;
  agent(name: string, text: string, scope?: "user" | "project"): string;
  skill(name: string): string;
  write(relative: string, text: string): string;
  normalize(text: string): string;
  cleanup(): void;
}

export function sandbox(): Sandbox {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "bottle-manifest-")));
  const config = join(root, ".config", "bottle");
  const project = join(root, "project");
  mkdirSync(project, { recursive: true });
  const write = (path: string, text: string) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return path;
  };
  return {
    root,
    config,
    project,
    env: { HOME: root, BOTTLE_CONFIG_DIR: config },
    bottle: (name, text) => write(join(config, "bottles", `${name}.yaml`), text),
    agent: (name, text, scope = "user") =>
      write(scope === "user" ? join(config, "agents", `${name}.md`) : join(project, ".bottle", "agents", `${name}.md`), text),
    skill: (name) => write(join(root, ".claude", "skills", name, "SKILL.md"), `# ${name}\n`),
    write: (relative, text) => write(join(root, relative), text),
    normalize: (text) => text.split(root).join("<tmp>"),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** The error `fn` throws (failing the test when it does not throw). */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  throw new Error("expected an error, none was thrown");
}

export async function rejected(promise: Promise<unknown>): Promise<Error> {
  const error = await caught(promise);
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

/** Every file under `dir` with its content and mtime, to prove nothing changed. */
export function treeState(dir: string): Record<string, string> {
  const state: Record<string, string> = {};
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        state[`${path}/`] = String(statSync(path).mtimeMs);
        walk(path);
      } else {
        state[path] = `${statSync(path).mtimeMs} ${readFileSync(path, "utf8")}`;
      }
    }
  };
  walk(dir);
  return state;
}

/** A small seeded PRNG (mulberry32), so fuzz cases are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Capture `log.warn` (silenced); call `restore()` when done. */
export function captureWarnings(): { messages: () => string[]; restore: () => void } {
  const spy = spyOn(log, "warn").mockImplementation((() => undefined) as unknown as typeof log.warn);
  return { messages: () => spy.mock.calls.map((call) => String(call[0])), restore: () => spy.mockRestore() };
}

/** A fresh sandbox and silenced warnings for every test of the calling file (`each.box`, `each.warnings`). */
export function sandboxEachTest(): { box: Sandbox; warnings: ReturnType<typeof captureWarnings> } {
  const each = {} as { box: Sandbox; warnings: ReturnType<typeof captureWarnings> };
  beforeEach(() => {
    each.box = sandbox();
    each.warnings = captureWarnings();
  });
  afterEach(() => {
    each.warnings.restore();
    each.box.cleanup();
  });
  return each;
}

/** Write `<name>.yaml` into the sandbox and resolve it, as a launch reads it. */
export function bottleFor(box: Sandbox, text: string, name = "dev"): ResolvedBottle {
  box.bottle(name, text);
  return resolveBottle(name, { env: box.env });
}

/** Write `dev.yaml` into the sandbox, resolve it, return the normalised error message. */
export function bottleErrorFor(box: Sandbox, text: string): string {
  box.bottle("dev", text);
  const error = thrown(() => resolveBottle("dev", { env: box.env }));
  expect(error).toBeInstanceOf(ManifestError);
  expect(error).toBeInstanceOf(BottleError);
  return box.normalize(error.message);
}
