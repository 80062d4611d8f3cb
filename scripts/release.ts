/**
 * `bun run release`: cross-compiles bottle for every release target, packs
 * each binary as dist/release/bottle-<target>.tar.gz (one file, `bottle`,
 * deterministic tar + gzip), writes SHA256SUMS, BUNDLE_SHA256 (hash of the
 * JS bundle the binaries embed) and Formula/bottle.rb from the sums.
 *
 *   bun run scripts/release.ts [--targets linux-x64,darwin-arm64] [--dist DIR]
 *                              [--formula PATH | --no-formula] [--base-url URL]
 *
 * --dist     where binaries (DIR/build/<target>/bottle) and DIR/release/ go (default dist/)
 * --formula  where the formula goes (default Formula/bottle.rb); written only
 *            when every formula target was built
 * --base-url where the formula's tarballs live (default: the GitHub release v<version>)
 *
 * BOTTLE_VERSION / BOTTLE_COMMIT override the version and commit baked in.
 * See docs/RELEASING.md for the whole procedure (signing, tap, upload).
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { binaryInfo, expectedBinary } from "../lib/release/binary.ts";
import { formatSha256Sums, sha256File } from "../lib/release/checksums.ts";
import { FORMULA_TARGETS, renderFormula } from "../lib/release/formula.ts";
import { isReleaseTarget, RELEASE_TARGETS, tarballName, type ReleaseTarget } from "../lib/release/platform.ts";
import { bundleSha256, compile, generateAssets, resolveBuildInfo, ROOT } from "./build.ts";

interface Options {
  targets: ReleaseTarget[];
  dist: string;
  formula: string | undefined;
  baseUrl: string | undefined;
}

function usage(message: string): never {
  console.error(`release: ${message}`);
  console.error("usage: bun run scripts/release.ts [--targets a,b] [--dist DIR] [--formula PATH | --no-formula] [--base-url URL]");
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const options: Options = { targets: [...RELEASE_TARGETS], dist: join(ROOT, "dist"), formula: join(ROOT, "Formula", "bottle.rb"), baseUrl: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") usage(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--targets": {
        const targets = value().split(",").map((t) => t.trim()).filter(Boolean);
        const unknown = targets.filter((t) => !isReleaseTarget(t));
        if (unknown.length) usage(`unknown target(s) ${unknown.join(", ")}; known: ${RELEASE_TARGETS.join(", ")}`);
        options.targets = RELEASE_TARGETS.filter((t) => targets.includes(t));
        break;
      }
      case "--dist":
        options.dist = value();
        break;
      case "--formula":
        options.formula = value();
        break;
      case "--no-formula":
        options.formula = undefined;
        break;
      case "--base-url":
        options.baseUrl = value();
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
  return options;
}

async function run(argv: string[], options: { stdout?: string } = {}): Promise<void> {
  const proc = Bun.spawn(argv, {
    stdin: "ignore",
    stdout: options.stdout ? Bun.file(options.stdout) : "inherit",
    stderr: "inherit",
  });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit code ${code})`);
}

async function output(argv: string[]): Promise<{ code: number; text: string }> {
  try {
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [text, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    return { code, text };
  } catch {
    return { code: 127, text: "" };
  }
}

/** GNU tar (for --sort/--mtime/--owner): `tar` on Linux, `gtar` (brew install gnu-tar) on macOS. */
async function gnuTar(): Promise<string> {
  for (const candidate of ["gtar", "tar"]) {
    const out = await output([candidate, "--version"]);
    if (out.code === 0 && out.text.includes("GNU tar")) return candidate;
  }
  throw new Error("GNU tar is needed for reproducible tarballs (macOS: brew install gnu-tar)");
}

/**
 * Apple silicon runs only signed binaries; Bun writes an ad-hoc signature
 * when it cross-compiles. On a Mac the release re-signs ad hoc with
 * codesign (docs/RELEASING.md); elsewhere a missing signature is an error.
 */
async function checkDarwinSignature(path: string, target: ReleaseTarget): Promise<void> {
  if (process.platform === "darwin") {
    await run(["codesign", "--force", "--sign", "-", path]);
    await run(["codesign", "-v", path]);
    console.error(`  ${target}: ad-hoc signed with codesign`);
    return;
  }
  const info = binaryInfo(new Uint8Array(readFileSync(path)));
  if (!info.signed) {
    throw new Error(`${target}: the binary has no code signature; sign it on a Mac: codesign --force --sign - ${path} (see docs/RELEASING.md)`);
  }
  console.error(`  ${target}: carries an ad-hoc signature (written by bun build)`);
}

async function pack(binary: string, tarball: string, tar: string, scratch: string): Promise<void> {
  const stage = join(scratch, "stage");
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  copyFileSync(binary, join(stage, "bottle"));
  chmodSync(join(stage, "bottle"), 0o755);
  const plain = join(scratch, "bottle.tar");
  // Same bytes for the same binary: fixed order, times, owner, mode; gzip without name and time.
  await run([
    tar,
    "--create",
    "--file",
    plain,
    "--directory",
    stage,
    "--format=ustar",
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mode=u=rwx,go=rx",
    "bottle",
  ]);
  await run(["gzip", "-n", "-c", plain], { stdout: tarball });
  rmSync(stage, { recursive: true, force: true });
  rmSync(plain, { force: true });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const out = join(options.dist, "release");
  const buildDir = join(options.dist, "build");
  const tar = await gnuTar();

  await generateAssets();
  const build = await resolveBuildInfo();
  console.error(`release: bottle ${build.version} (${build.commit}) for ${options.targets.join(", ")}`);

  // The JS bundle must come out the same twice; its hash identifies the build.
  const bundle = await bundleSha256(build);
  if ((await bundleSha256(build)) !== bundle) throw new Error("the JS bundle differs between two builds of the same tree: the build is not reproducible");
  console.log(`bundle sha256: ${bundle}`);

  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "BUNDLE_SHA256"), `${bundle}\n`);

  // Compile one after another (in-process), pack in parallel (gzip processes).
  const packing: Array<Promise<{ name: string; sha256: string }>> = [];
  for (const target of options.targets) {
    // Compiled as `bottle`: the name the user runs is the one embedded in the binary.
    const binary = join(buildDir, target, "bottle");
    mkdirSync(join(buildDir, target), { recursive: true });
    await compile(target, binary, build);
    const info = binaryInfo(new Uint8Array(readFileSync(binary)));
    const want = expectedBinary(target);
    if (info.format !== want.format || info.arch !== want.arch)
      throw new Error(`${target}: compiled a ${info.format}/${info.arch} binary, expected ${want.format}/${want.arch}`);
    if (target.startsWith("darwin-")) await checkDarwinSignature(binary, target);
    const tarball = join(out, tarballName(target));
    packing.push(
      pack(binary, tarball, tar, join(buildDir, target)).then(async () => {
        console.error(`  packed ${relative(process.cwd(), tarball)}`);
        return { name: tarballName(target), sha256: await sha256File(tarball) };
      }),
    );
  }
  const sums = await Promise.all(packing);
  const sumOf = (target: ReleaseTarget) => sums.find((s) => s.name === tarballName(target))?.sha256;
  if (sumOf("linux-x64") && sumOf("linux-x64") === sumOf("linux-x64-baseline")) {
    console.error("release: note: linux-x64 came out identical to linux-x64-baseline (the Bun runtime bun fetched for linux-x64 is the baseline one); both run everywhere, see docs/RELEASING.md");
  }

  // The installer ships next to the tarballs (…/releases/latest/download/install.sh).
  copyFileSync(join(ROOT, "install.sh"), join(out, "install.sh"));
  chmodSync(join(out, "install.sh"), 0o755);
  sums.push({ name: "install.sh", sha256: await sha256File(join(out, "install.sh")) });

  const sumsText = formatSha256Sums(sums);
  writeFileSync(join(out, "SHA256SUMS"), sumsText);
  process.stdout.write(sumsText);

  if (options.formula) {
    const built = new Set<string>(options.targets);
    const missing = FORMULA_TARGETS.filter((t) => !built.has(t));
    if (missing.length > 0) {
      console.error(`release: formula not written (not built: ${missing.join(", ")})`);
    } else {
      const formula = renderFormula({
        version: build.version,
        sums: new Map(sums.map((s) => [s.name, s.sha256])),
        ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
      });
      mkdirSync(join(options.formula, ".."), { recursive: true });
      writeFileSync(options.formula, formula);
      console.error(`release: wrote ${relative(process.cwd(), options.formula)}`);
    }
  }
  console.error(`release: artifacts in ${relative(process.cwd(), out) || "."}`);
}

try {
  await main();
} catch (error) {
  console.error(`release: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
