import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cacheKey,
  commitCacheEntry,
  isCached,
  listSmolmachineCache,
  smolmachinePath,
  smolmachinesDir,
  stagingDirFor,
} from "../../../../lib/backends/smolmachines/cache.ts";
import { craneImage, DEFAULT_CRANE_IMAGE, DEFAULT_REGISTRY_IMAGE, registryImage } from "../../../../lib/backends/smolmachines/images.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";

afterAll(cleanupTempDirs);

const ID = `sha256:${"ab".repeat(32)}`;

describe("cacheKey", () => {
  test("the first 16 hex characters of the image ID", () => {
    expect(cacheKey(ID)).toBe("abababababababab");
    expect(cacheKey("ab".repeat(32))).toBe("abababababababab");
  });

  test("anything else is refused (never a path component from garbage)", () => {
    for (const bad of ["", "sha256:abc", `sha512:${"ab".repeat(32)}`, `sha256:${"AB".repeat(32)}`, "../../etc/passwd"]) expect(() => cacheKey(bad)).toThrow(/unexpected docker image ID/);
  });
});

describe("paths", () => {
  test("under <cache dir>/smolmachines (XDG_CACHE_HOME)", () => {
    const env = { XDG_CACHE_HOME: "/x/cache", HOME: "/home/u" };
    expect(smolmachinesDir(env)).toBe("/x/cache/bottle/smolmachines");
    expect(smolmachinePath("0123456789abcdef", env)).toBe("/x/cache/bottle/smolmachines/0123456789abcdef.smolmachine");
    expect(stagingDirFor("12-ab", env)).toBe("/x/cache/bottle/smolmachines/.staging-12-ab");
    expect(smolmachinesDir({ HOME: "/home/u" })).toBe("/home/u/.cache/bottle/smolmachines");
  });
});

describe("atomic cache writes", () => {
  test("commit renames a finished file into place; only then is it a hit", () => {
    const env = { XDG_CACHE_HOME: tempDir() };
    const staging = stagingDirFor("1-a", env);
    mkdirSync(staging, { recursive: true });
    const source = join(staging, "k.smolmachine");
    writeFileSync(source, "machine");
    expect(isCached("0123456789abcdef", env)).toBe(false);
    expect(commitCacheEntry(source, smolmachinePath("0123456789abcdef", env))).toBe(7);
    expect(existsSync(source)).toBe(false);
    expect(isCached("0123456789abcdef", env)).toBe(true);
    expect(readFileSync(smolmachinePath("0123456789abcdef", env), "utf8")).toBe("machine");
  });

  test("a replaced entry is swapped whole", () => {
    const env = { XDG_CACHE_HOME: tempDir() };
    const destination = smolmachinePath("0123456789abcdef", env);
    mkdirSync(smolmachinesDir(env), { recursive: true });
    writeFileSync(destination, "old");
    const source = join(smolmachinesDir(env), ".staging-1-a.smolmachine");
    writeFileSync(source, "new machine");
    commitCacheEntry(source, destination);
    expect(readFileSync(destination, "utf8")).toBe("new machine");
  });

  test("nothing, or an empty file, is never committed", () => {
    const env = { XDG_CACHE_HOME: tempDir() };
    const destination = smolmachinePath("0123456789abcdef", env);
    expect(() => commitCacheEntry(join(tempDir(), "missing.smolmachine"), destination)).toThrow(/did not produce/);
    const empty = join(tempDir(), "empty.smolmachine");
    writeFileSync(empty, "");
    expect(() => commitCacheEntry(empty, destination)).toThrow(/did not produce/);
    expect(existsSync(destination)).toBe(false);
  });

  test("an empty file under the final name does not count as a hit", () => {
    const env = { XDG_CACHE_HOME: tempDir() };
    mkdirSync(smolmachinesDir(env), { recursive: true });
    writeFileSync(smolmachinePath("0123456789abcdef", env), "");
    expect(isCached("0123456789abcdef", env)).toBe(false);
  });

  test("listing shows committed entries only", () => {
    const env = { XDG_CACHE_HOME: tempDir() };
    const dir = smolmachinesDir(env);
    mkdirSync(join(dir, ".staging-9-z"), { recursive: true });
    writeFileSync(join(dir, ".staging-9-z", "0123456789abcdef.smolmachine"), "partial");
    writeFileSync(join(dir, "fedcba9876543210.smolmachine"), "done");
    writeFileSync(join(dir, "notes.txt"), "x");
    expect(listSmolmachineCache(env).map((entry) => [entry.key, entry.size])).toEqual([["fedcba9876543210", 4]]);
    expect(listSmolmachineCache({ XDG_CACHE_HOME: join(tempDir(), "absent") })).toEqual([]);
  });
});

describe("helper images", () => {
  test("pinned by digest, overridable", () => {
    expect(registryImage({})).toBe(DEFAULT_REGISTRY_IMAGE);
    expect(craneImage({})).toBe(DEFAULT_CRANE_IMAGE);
    expect(DEFAULT_REGISTRY_IMAGE).toMatch(/^registry:2\.8\.3@sha256:[0-9a-f]{64}$/);
    expect(DEFAULT_CRANE_IMAGE).toMatch(/^gcr\.io\/go-containerregistry\/crane@sha256:[0-9a-f]{64}$/);
    expect(registryImage({ BOTTLE_REGISTRY_IMAGE: "mirror/registry:2" })).toBe("mirror/registry:2");
    expect(craneImage({ BOTTLE_CRANE_IMAGE: "mirror/crane:1" })).toBe("mirror/crane:1");
  });
});
