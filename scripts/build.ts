/**
 * Compiles the single `bottle` binary. `--release` cross-compiles every
 * supported target into dist/. Version and commit are baked in via `define`.
 */
import { $ } from "bun";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };

const root = join(import.meta.dir, "..");
const release = process.argv.includes("--release");

export const RELEASE_TARGETS = [
  "linux-x64",
  "linux-x64-baseline",
  "linux-arm64",
  "darwin-x64",
  "darwin-arm64",
] as const;

async function gitCommit(): Promise<string> {
  const out = await $`git -C ${root} rev-parse --short=12 HEAD`.nothrow().quiet();
  return out.exitCode === 0 ? out.stdout.toString().trim() : "unknown";
}

await $`bun run ${join(root, "scripts/gen-assets.ts")}`;
const build = { version: process.env.BOTTLE_VERSION || pkg.version, commit: process.env.BOTTLE_COMMIT || (await gitCommit()) };

async function compile(target: string | undefined, outfile: string): Promise<void> {
  const result = await Bun.build({
    entrypoints: [join(root, "cmd/bottle.ts")],
    minify: true,
    define: { BOTTLE_BUILD: JSON.stringify(build) },
    compile: {
      ...(target ? { target: `bun-${target}` as Bun.Build.CompileTarget } : {}),
      outfile,
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
  });
  if (!result.success) {
    for (const message of result.logs) console.error(message);
    process.exit(1);
  }
  console.error(`built ${outfile}`);
}

if (release) {
  for (const target of RELEASE_TARGETS) await compile(target, join(root, "dist", `bottle-${target}`));
} else {
  await compile(undefined, join(root, "dist", "bottle"));
}
