/**
 * Compiles the single `bottle` binary. `--release` cross-compiles every
 * supported target into dist/. Version and commit are baked in via `define`.
 * scripts/release.ts imports `compile` and `bundleSha256` from here.
 */
import { $ } from "bun";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { RELEASE_TARGETS } from "../lib/release/platform.ts";
import pkg from "../package.json" with { type: "json" };

export { RELEASE_TARGETS };

export const ROOT = join(import.meta.dir, "..");
const ENTRY = join(ROOT, "cmd/bottle.ts");

export interface BuildInfo {
  version: string;
  commit: string;
}

async function gitCommit(): Promise<string> {
  const out = await $`git -C ${ROOT} rev-parse --short=12 HEAD`.nothrow().quiet();
  return out.exitCode === 0 ? out.stdout.toString().trim() : "unknown";
}

/** Regenerates assets/gen/ (embedded into the binary); run once before compiling. */
export async function generateAssets(): Promise<void> {
  await $`bun run ${join(ROOT, "scripts/gen-assets.ts")}`;
}

/** BOTTLE_VERSION / BOTTLE_COMMIT when set, else package.json and `git rev-parse`. */
export async function resolveBuildInfo(env: Record<string, string | undefined> = process.env): Promise<BuildInfo> {
  return { version: env.BOTTLE_VERSION || pkg.version, commit: env.BOTTLE_COMMIT || (await gitCommit()) };
}

/** What the bundle and the compiled binary share: same entry, same minify, same define. */
function bundleOptions(build: BuildInfo) {
  return {
    entrypoints: [ENTRY],
    minify: true,
    define: { BOTTLE_BUILD: JSON.stringify(build) },
  };
}

function failed(logs: ReadonlyArray<unknown>, what: string): never {
  for (const message of logs) console.error(message);
  throw new Error(`${what} failed`);
}

/** Compile one binary; `target` like "linux-x64" (undefined: this machine). */
export async function compile(target: string | undefined, outfile: string, build?: BuildInfo): Promise<void> {
  const result = await Bun.build({
    ...bundleOptions(build ?? (await resolveBuildInfo())),
    // Precompiled bytecode: startup drops from ~55 ms to ~20 ms. Safe here
    // because every asset is an `import … with { type: "text" }` (bytecode
    // breaks `--asset` files, see ENVIRONMENT.md).
    bytecode: true,
    format: "esm",
    compile: {
      ...(target ? { target: `bun-${target}` as Bun.Build.CompileTarget } : {}),
      outfile,
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
  });
  if (!result.success) failed(result.logs, `compiling ${outfile}`);
  console.error(`built ${outfile}`);
}

/**
 * SHA-256 over the JS bundle the binaries embed (built without compile, same
 * options): the same commit and build info must give the same hash.
 */
export async function bundleSha256(build: BuildInfo): Promise<string> {
  const result = await Bun.build({ ...bundleOptions(build), target: "bun", format: "esm" });
  if (!result.success) failed(result.logs, "bundling");
  const hash = createHash("sha256");
  const outputs = [...result.outputs].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const output of outputs) {
    hash.update(`${output.path}\0`);
    hash.update(new Uint8Array(await output.arrayBuffer()));
  }
  return hash.digest("hex");
}

if (import.meta.main) {
  try {
    await generateAssets();
    const build = await resolveBuildInfo();
    if (process.argv.includes("--release")) {
      for (const target of RELEASE_TARGETS) await compile(target, join(ROOT, "dist", `bottle-${target}`), build);
    } else {
      await compile(undefined, join(ROOT, "dist", "bottle"), build);
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
