/**
 * A gate daemon's bundle must stand alone: every file of a daemon's folder
 * imports (statically, dynamically, or only its types) nothing but node:*,
 * its own folder, the common folder and the packages lib/gates/daemons.ts
 * lists; the common folder imports only node:* and itself.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import ts from "typescript";
import { DAEMON_COMMON_FOLDER, DAEMON_PACKAGES, GATE_DAEMONS } from "../../../lib/gates/daemons.ts";
import { cleanupTempDirs, tempDir } from "../../helpers/unit.ts";

afterAll(cleanupTempDirs);

const GATES = join(import.meta.dir, "../../../lib/gates");

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: "utf8" })
    .filter((name) => /\.[cm]?[jt]sx?$/.test(name))
    .map((name) => join(folder, name));
}

/** Every module specifier a file names: imports and re-exports (type-only too), import(), require(). */
function specifiers(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((entry) => entry.fileName);
}

function inside(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return !rel.startsWith("..") && !isAbsolute(rel);
}

/** `file: specifier` for each import of a file under `folder` that reaches outside `allowed` folders or packages. */
function strayImports(folder: string, allowed: { folders: readonly string[]; packages: readonly string[] }): string[] {
  const stray: string[] = [];
  for (const file of sourceFiles(folder)) {
    for (const specifier of specifiers(file)) {
      if (specifier.startsWith("node:")) continue;
      if (specifier.startsWith(".") || specifier.startsWith("/")) {
        const target = resolve(dirname(file), specifier);
        if (allowed.folders.some((root) => inside(target, root))) continue;
      } else if (allowed.packages.includes(specifier)) continue;
      stray.push(`${relative(GATES, file)}: ${specifier}`);
    }
  }
  return stray;
}

const common = join(GATES, DAEMON_COMMON_FOLDER);

describe("gate daemons import only their own folder", () => {
  for (const daemon of GATE_DAEMONS) {
    test(`${daemon.folder}: node:*, its folder, ${DAEMON_COMMON_FOLDER}/ and ${DAEMON_PACKAGES.join(", ")}`, () => {
      const folder = join(GATES, daemon.folder);
      expect(sourceFiles(folder)).toContain(join(folder, "main.ts"));
      expect(strayImports(folder, { folders: [folder, common], packages: DAEMON_PACKAGES })).toEqual([]);
    });
  }

  test(`${DAEMON_COMMON_FOLDER}/: node:* and its own files`, () => {
    expect(sourceFiles(common).length).toBeGreaterThan(0);
    expect(strayImports(common, { folders: [common], packages: [] })).toEqual([]);
  });

  test("the check sees every kind of import that leaves the folder", () => {
    const root = tempDir("daemon-imports-");
    const folder = join(root, "daemon");
    mkdirSync(join(folder, "sub"), { recursive: true });
    writeFileSync(join(root, "host.ts"), "export const x = 1;\n");
    writeFileSync(
      join(folder, "main.ts"),
      [
        'import { readFileSync } from "node:fs";',
        'import { y } from "./sub/y.ts";',
        'import { x } from "../host.ts";',
        'import type { T } from "../types.ts";',
        'export * from "left-pad";',
        'const lazy = await import("../lazy.ts");',
        'const fs = require("fs");',
        'import "valibot";',
      ].join("\n"),
    );
    writeFileSync(join(folder, "sub", "y.ts"), 'export { z } from "../../z.ts";\n');
    expect(strayImports(folder, { folders: [folder], packages: ["valibot"] }).map((line) => line.slice(line.lastIndexOf(": ") + 2)).sort()).toEqual(
      ["../../z.ts", "../host.ts", "../lazy.ts", "../types.ts", "fs", "left-pad"].sort(),
    );
  });
});
