import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import { binaryInfo, expectedBinary } from "../../lib/release/binary.ts";
import { parseSha256Sums, sha256Hex } from "../../lib/release/checksums.ts";
import { FORMULA_TARGETS } from "../../lib/release/formula.ts";
import { cpuinfoHasAvx2, detectTarget, RELEASE_TARGETS, tarballName, type ReleaseTarget } from "../../lib/release/platform.ts";

/**
 * The release as users get it: `bun run release` builds every target, a
 * local HTTP server on 127.0.0.1 plays the GitHub release, install.sh
 * installs from it, and `bottle update` replaces a binary from it. Nothing
 * outside this machine is contacted.
 */

const ROOT = join(import.meta.dir, "..", "..");
const CI = process.env.CI === "true";
const missingTools = ["tar", "sh", "gzip"].filter((tool) => Bun.which(tool) === null);
if (missingTools.length > 0 && CI) throw new Error(`the distribution test needs ${missingTools.join(", ")} in CI`);
const describeRelease = missingTools.length > 0 ? describe.skip : describe;
if (missingTools.length > 0) console.log(`distribution test skipped: ${missingTools.join(", ")} not installed`);

/** This machine's build, picked by the same rules as install.sh. */
function hostTarget(): ReleaseTarget {
  let cpuinfo: string | undefined;
  try {
    cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    cpuinfo = undefined;
  }
  const detected = detectTarget({ os: process.platform, arch: process.arch, ...(cpuinfo === undefined ? {} : { cpuinfo }) });
  if (!detected.ok) throw new Error(detected.reason);
  return detected.target;
}

interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], options: { env?: Record<string, string>; cwd?: string; stdin?: Blob } = {}): Promise<Ran> {
  const proc = Bun.spawn(argv, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? cleanEnv(),
    stdin: options.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, stdout, stderr };
}

/** The test runner's environment without anything that steers a build, the installer or the updater. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (["BOTTLE_VERSION", "BOTTLE_COMMIT", "BOTTLE_DOWNLOAD_URL", "BOTTLE_INSTALL", "BOTTLE_TARGET"].includes(key)) continue;
    env[key] = value;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

function check(ran: Ran, what: string): Ran {
  if (ran.exitCode !== 0) throw new Error(`${what} failed (exit ${ran.exitCode})\n${ran.stderr}\n${ran.stdout}`);
  return ran;
}

const HOST = hostTarget();
const HOST_TARBALL = tarballName(HOST);

describeRelease("distribution", () => {
  let work: string;
  let release: string; // dist/release of the 0.1.x build
  let newer: string; // dist/release of a 9.9.9 build of the host target
  let server: ReturnType<typeof Bun.serve>;
  let base: string;
  const requests: string[] = [];
  let version: string;

  /** Serves work/www/<prefix>/… ; every request is recorded. */
  function serve(www: string) {
    return Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const path = normalize(decodeURIComponent(new URL(request.url).pathname));
        requests.push(path);
        const file = join(www, path);
        if (!file.startsWith(`${www}/`) || !existsSync(file) || !statSync(file).isFile()) return new Response("not found\n", { status: 404 });
        return new Response(Bun.file(file));
      },
    });
  }

  /** A copy of a release dir under www/<name>, changed by `edit`. */
  function variant(name: string, from: string, edit: (dir: string) => void = () => {}): string {
    const dir = join(work, "www", name);
    cpSync(from, dir, { recursive: true });
    edit(dir);
    return `${base}/${name}`;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bottle-dist-"));
    const started = Date.now();
    // The full release (all five targets) plus a 9.9.9 build of this machine's target to update to.
    check(await run([process.execPath, "run", "scripts/release.ts", "--dist", join(work, "dist"), "--formula", join(work, "Formula", "bottle.rb")]), "bun run release");
    check(
      await run([process.execPath, "run", "scripts/release.ts", "--dist", join(work, "dist-new"), "--targets", HOST, "--no-formula"], { env: cleanEnv({ BOTTLE_VERSION: "9.9.9" }) }),
      "release 9.9.9",
    );
    console.log(`distribution: release builds took ${((Date.now() - started) / 1000).toFixed(1)}s`);
    release = join(work, "dist", "release");
    newer = join(work, "dist-new", "release");
    const www = join(work, "www");
    mkdirSync(www, { recursive: true });
    cpSync(release, join(www, "v1"), { recursive: true });
    cpSync(newer, join(www, "v9"), { recursive: true });
    server = serve(www);
    base = `http://127.0.0.1:${server.port}`;
    version = (await import("../../package.json", { with: { type: "json" } })).default.version;
  }, 600_000);

  afterAll(() => {
    server?.stop(true);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function sums(dir: string): Map<string, string> {
    return parseSha256Sums(readFileSync(join(dir, "SHA256SUMS"), "utf8")).entries;
  }

  /** Run install.sh (a path, or a Blob piped to `sh -s`) into a fresh prefix with a fresh HOME. */
  async function install(url: string, options: { script?: string; stdin?: Blob; env?: Record<string, string> } = {}) {
    const home = mkdtempSync(join(work, "home-"));
    const prefix = join(home, "prefix", "bin");
    const env = cleanEnv({ HOME: home, BOTTLE_DOWNLOAD_URL: url, BOTTLE_INSTALL: prefix, ...options.env });
    const argv = options.stdin ? ["sh", "-s"] : ["sh", options.script ?? join(ROOT, "install.sh")];
    const ran = await run(argv, { env, cwd: home, ...(options.stdin ? { stdin: options.stdin } : {}) });
    const installed = existsSync(prefix) ? readdirSync(prefix) : [];
    return { ...ran, home, prefix, installed, bin: join(prefix, "bottle"), env };
  }

  describe("release artifacts", () => {
    test("SHA256SUMS lists every tarball and install.sh, and the sums are right", () => {
      const listed = sums(release);
      expect([...listed.keys()].sort()).toEqual([...RELEASE_TARGETS.map(tarballName), "install.sh"].sort());
      for (const [name, sum] of listed) expect(sha256Hex(readFileSync(join(release, name)))).toBe(sum);
      expect(readFileSync(join(release, "install.sh"), "utf8")).toBe(readFileSync(join(ROOT, "install.sh"), "utf8"));
    });

    test("BUNDLE_SHA256 holds the bundle hash: a rebuild of the same tree and build info gives the same", async () => {
      const bundle = readFileSync(join(release, "BUNDLE_SHA256"), "utf8");
      expect(bundle).toMatch(/^[0-9a-f]{64}\n$/);
      // Version and commit as baked into the host binary, e.g. "bottle 0.1.0 (0123456789ab)".
      const line = check(await run([join(work, "dist", "build", HOST, "bottle"), "--version"]), "--version").stdout;
      const [, builtVersion, commit] = /^bottle (\S+) \((\S+)\)/.exec(line) ?? [];
      expect(builtVersion).toBe(version);
      const { bundleSha256 } = await import("../../scripts/build.ts");
      expect(`${await bundleSha256({ version: builtVersion!, commit: commit! })}\n`).toBe(bundle);
      // The 9.9.9 build bakes in another version, so its bundle differs.
      expect(readFileSync(join(newer, "BUNDLE_SHA256"), "utf8")).not.toBe(bundle);
    }, 60_000);

    test("each tarball holds one file, bottle, with fixed owner, mode and time", async () => {
      for (const target of RELEASE_TARGETS) {
        const listing = check(await run(["tar", "-tvzf", join(release, tarballName(target)), "--numeric-owner"]), "tar -t");
        const lines = listing.stdout.trim().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^-rwxr-xr-x 0\/0 .* 1970-01-01 00:00 bottle$/);
      }
    });

    test("binaries are ELF / Mach-O for the right CPU; darwin ones carry a signature", async () => {
      const hasFile = Bun.which("file") !== null;
      if (!hasFile && CI) throw new Error("`file` is needed in CI (Debian package: file)");
      if (!hasFile) console.log("`file` not installed: checking headers only");
      const want: Record<ReleaseTarget, RegExp> = {
        "linux-x64": /ELF 64-bit LSB .*x86-64/,
        "linux-x64-baseline": /ELF 64-bit LSB .*x86-64/,
        "linux-arm64": /ELF 64-bit LSB .*ARM aarch64/,
        "darwin-x64": /Mach-O 64-bit x86_64 executable/,
        "darwin-arm64": /Mach-O 64-bit arm64 executable/,
      };
      for (const target of RELEASE_TARGETS) {
        const dir = join(work, "unpacked", target);
        mkdirSync(dir, { recursive: true });
        check(await run(["tar", "-xzf", join(release, tarballName(target)), "-C", dir]), "tar -x");
        const binary = join(dir, "bottle");
        const info = binaryInfo(new Uint8Array(readFileSync(binary)));
        expect({ format: info.format, arch: info.arch }).toEqual(expectedBinary(target));
        if (target.startsWith("darwin-")) expect(info.signed).toBe(true);
        if (hasFile) expect(check(await run(["file", "-b", binary]), "file").stdout).toMatch(want[target]);
      }
    });

    test("the formula has every url and sum and passes ruby -c", async () => {
      const path = join(work, "Formula", "bottle.rb");
      const formula = readFileSync(path, "utf8");
      for (const target of FORMULA_TARGETS) {
        expect(formula).toContain(`/v${version}/${tarballName(target)}"`);
        expect(formula).toContain(`sha256 "${sums(release).get(tarballName(target))}"`);
      }
      if (Bun.which("ruby") === null) {
        if (CI) throw new Error("ruby is needed in CI to check the formula (Debian package: ruby)");
        return void console.log("ruby not installed: skipped `ruby -c` on the formula");
      }
      const syntax = await run(["ruby", "-c", path]);
      expect(syntax.stdout).toContain("Syntax OK");
      expect(syntax.exitCode).toBe(0);
    });
  });

  describe("install.sh", () => {
    let good: Awaited<ReturnType<typeof install>>;
    beforeAll(async () => {
      good = await install(`${base}/v1`);
    }, 120_000);

    test("installs, verifies, and ends with bottle --version", () => {
      expect(good.stderr).toContain(`installing ${HOST_TARBALL}`);
      expect(good.stderr).toContain("checksum verified");
      expect(good.exitCode).toBe(0);
      expect(good.installed).toEqual(["bottle"]);
      expect(statSync(good.bin).mode & 0o777).toBe(0o755);
      expect(good.stdout).toMatch(new RegExp(`^bottle ${version.replace(/\./g, "\\.")} \\(`));
      // PATH is not edited, only explained; no colour codes without a terminal.
      expect(good.stderr).toContain(`export PATH="${good.prefix}:$PATH"`);
      expect(good.stderr).not.toContain("\x1b[");
      expect(existsSync(join(good.home, ".bashrc"))).toBe(false);
      expect(existsSync(join(good.home, ".profile"))).toBe(false);
    });

    test("the installed binary runs: --version, doctor --json, completion", async () => {
      const env = cleanEnv({ HOME: good.home, XDG_STATE_HOME: join(good.home, "state"), XDG_CACHE_HOME: join(good.home, "cache"), BOTTLE_CONFIG_DIR: join(good.home, "config") });
      const versionOut = await run([good.bin, "--version"], { env, cwd: good.home });
      expect(versionOut.exitCode).toBe(0);
      expect(versionOut.stdout).toBe(good.stdout);
      const doctor = await run([good.bin, "doctor", "--json"], { env, cwd: good.home });
      expect([0, 1]).toContain(doctor.exitCode);
      const report = JSON.parse(doctor.stdout) as { checks: unknown[] };
      expect(Array.isArray(report.checks)).toBe(true);
      const completion = await run([good.bin, "completion", "bash"], { env, cwd: good.home });
      expect(completion.exitCode).toBe(0);
      expect(completion.stdout).toContain("complete -F _bottle bottle");
    }, 120_000);

    test("piped into sh (curl … | sh) works the same", async () => {
      const piped = await install(`${base}/v1`, { stdin: new Blob([readFileSync(join(ROOT, "install.sh"))]) });
      expect(piped.exitCode).toBe(0);
      expect(piped.installed).toEqual(["bottle"]);
    }, 120_000);

    test("works with wget when there is no curl", async () => {
      const needed = ["sh", "uname", "grep", "awk", "mktemp", "rm", "mkdir", "cp", "chmod", "mv", "tar", "gzip", "tr", "cat", "sed", "wget", "sha256sum", "shasum"];
      if (Bun.which("wget") === null) {
        if (CI) throw new Error("wget is needed in CI for the wget path (Debian package: wget)");
        return void console.log("wget not installed: skipped the wget-only install");
      }
      const tools = join(work, "wget-only-bin");
      mkdirSync(tools, { recursive: true });
      for (const tool of needed) {
        const found = Bun.which(tool);
        if (found && !existsSync(join(tools, tool))) symlinkSync(found, join(tools, tool));
      }
      expect(existsSync(join(tools, "curl"))).toBe(false);
      const viaWget = await install(`${base}/v1`, { env: { PATH: tools } });
      expect(viaWget.stderr).toContain("checksum verified");
      expect(viaWget.exitCode).toBe(0);
      expect(viaWget.installed).toEqual(["bottle"]);
    }, 120_000);

    test("a tarball with one byte changed is refused", async () => {
      const url = variant("corrupt", join(work, "www", "v1"), (dir) => {
        const file = join(dir, HOST_TARBALL);
        const bytes = readFileSync(file);
        const at = Math.floor(bytes.length / 2);
        bytes[at] = bytes[at]! ^ 0xff;
        writeFileSync(file, bytes);
      });
      const bad = await install(url);
      expect(bad.exitCode).not.toBe(0);
      expect(bad.stderr).toContain("checksum mismatch");
      expect(bad.stderr).toContain("refusing to install");
      expect(bad.installed).toEqual([]);
    }, 120_000);

    test("a tarball missing from SHA256SUMS is refused", async () => {
      const url = variant("unlisted", join(work, "www", "v1"), (dir) => {
        const text = readFileSync(join(dir, "SHA256SUMS"), "utf8");
        writeFileSync(join(dir, "SHA256SUMS"), text.split("\n").filter((line) => !line.endsWith(`  ${HOST_TARBALL}`)).join("\n"));
      });
      const bad = await install(url);
      expect(bad.exitCode).not.toBe(0);
      expect(bad.stderr).toContain(`no checksum for ${HOST_TARBALL}`);
      expect(bad.installed).toEqual([]);
    }, 120_000);

    test("no SHA256SUMS at all is refused", async () => {
      const url = variant("nosums", join(work, "www", "v1"), (dir) => rmSync(join(dir, "SHA256SUMS")));
      const bad = await install(url);
      expect(bad.exitCode).not.toBe(0);
      expect(bad.stderr).toContain("SHA256SUMS");
      expect(bad.installed).toEqual([]);
    }, 120_000);

    test("a truncated install.sh does nothing: no download, no install", async () => {
      const script = readFileSync(join(ROOT, "install.sh"), "utf8");
      const lines = script.split("\n");
      const cuts = {
        half: script.slice(0, Math.floor(script.length / 2)),
        quarter: script.slice(0, Math.floor(script.length / 4)),
        "three quarters": script.slice(0, Math.floor((script.length * 3) / 4)),
        "all but the last line": lines.slice(0, lines.lastIndexOf('main "$@"')).join("\n"),
      };
      for (const [name, text] of Object.entries(cuts)) {
        const file = join(work, `install-${name.replace(/ /g, "-")}.sh`);
        writeFileSync(file, text);
        const before = requests.length;
        const cut = await install(`${base}/v1`, { script: file });
        expect({ name, installed: cut.installed, requests: requests.length - before }).toEqual({ name, installed: [], requests: 0 });
        // The same through a pipe.
        const piped = await install(`${base}/v1`, { stdin: new Blob([text]) });
        expect({ name, installed: piped.installed, requests: requests.length - before }).toEqual({ name, installed: [], requests: 0 });
      }
    }, 120_000);
  });

  describe("install.sh platform rules (fake uname, sysctl, codesign)", () => {
    test("parses as POSIX sh, and passes shellcheck when it is installed", async () => {
      expect((await run(["sh", "-n", join(ROOT, "install.sh")])).exitCode).toBe(0);
      if (Bun.which("shellcheck") === null) return void console.log("shellcheck not installed: skipped");
      const lint = await run(["shellcheck", "-s", "sh", join(ROOT, "install.sh")]);
      expect(lint.stdout).toBe("");
      expect(lint.exitCode).toBe(0);
    });

    /** Runs install.sh's functions (everything but the `main` line) with stand-in commands first on PATH. */
    async function shFunctions(body: string, fakes: Record<string, string>, cpuinfo?: string): Promise<Ran> {
      const dir = mkdtempSync(join(work, "fakes-"));
      for (const [name, script] of Object.entries(fakes)) writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
      const script = readFileSync(join(ROOT, "install.sh"), "utf8").replace(/\nmain "\$@"\n?$/, "\n");
      expect(script).not.toContain('\nmain "$@"');
      const cpu = join(dir, "cpuinfo");
      if (cpuinfo !== undefined) writeFileSync(cpu, cpuinfo);
      const lib = join(dir, "install-functions.sh");
      writeFileSync(lib, `${script}\nsetup_colours\nCPUINFO=${cpuinfo === undefined ? "/nonexistent" : cpu}\n${body}\n`);
      return run(["sh", lib], { env: cleanEnv({ PATH: `${dir}:${process.env.PATH}`, LOG: join(dir, "log") }) });
    }

    const uname = (s: string, m: string) => `case "$1" in -s) echo ${s} ;; -m) echo ${m} ;; esac`;
    const AVX2 = "flags\t\t: fpu sse2 avx avx2\n";
    const NO_AVX2 = "flags\t\t: fpu sse2 avx\n";
    const cases: Array<{ name: string; s: string; m: string; sysctl?: string; cpuinfo?: string; want: string }> = [
      { name: "Linux x86_64 with AVX2", s: "Linux", m: "x86_64", cpuinfo: AVX2, want: "linux-x64" },
      { name: "Linux x86_64 without AVX2", s: "Linux", m: "x86_64", cpuinfo: NO_AVX2, want: "linux-x64-baseline" },
      { name: "Linux aarch64", s: "Linux", m: "aarch64", cpuinfo: "Features\t: fp asimd\n", want: "linux-arm64" },
      { name: "macOS Intel", s: "Darwin", m: "x86_64", sysctl: "0", want: "darwin-x64" },
      { name: "macOS x86_64 under Rosetta", s: "Darwin", m: "x86_64", sysctl: "1", want: "darwin-arm64" },
      { name: "macOS arm64", s: "Darwin", m: "arm64", want: "darwin-arm64" },
    ];
    for (const c of cases) {
      test(`${c.name} -> ${c.want}, like lib/release/platform.ts`, async () => {
        const fakes: Record<string, string> = { uname: uname(c.s, c.m), sysctl: c.sysctl === undefined ? "exit 1" : `echo ${c.sysctl}` };
        const out = await shFunctions("detect_target", fakes, c.cpuinfo);
        expect(out.stderr).toBe("");
        expect(out.stdout.trim()).toBe(c.want);
        const ts = detectTarget({ os: c.s, arch: c.m, rosetta: c.sysctl === "1", ...(c.cpuinfo === undefined ? {} : { cpuinfo: c.cpuinfo }) });
        expect(ts.ok ? ts.target : ts.reason).toBe(c.want);
        if (c.cpuinfo !== undefined) expect(cpuinfoHasAvx2(c.cpuinfo)).toBe(c.want === "linux-x64");
      });
    }

    test("unsupported systems are refused with a reason", async () => {
      const windows = await shFunctions("detect_target", { uname: uname("MINGW64_NT-10.0", "x86_64") });
      expect(windows.exitCode).not.toBe(0);
      expect(windows.stderr).toContain("WSL");
      const riscv = await shFunctions("detect_target", { uname: uname("Linux", "riscv64") });
      expect(riscv.exitCode).not.toBe(0);
      expect(riscv.stderr).toContain("riscv64");
    });

    test("BOTTLE_TARGET and BOTTLE_VERSION pick the build and the release", async () => {
      const forced = await shFunctions("(BOTTLE_TARGET=linux-x64-baseline detect_target); (BOTTLE_VERSION=v1.2.3 base_url); base_url", { uname: uname("Linux", "x86_64") }, AVX2);
      expect(forced.stdout.split("\n")).toEqual([
        "linux-x64-baseline",
        "https://github.com/bottle-sh/bottle/releases/download/v1.2.3",
        "https://github.com/bottle-sh/bottle/releases/latest/download",
        "",
      ]);
      const bad = await shFunctions("BOTTLE_VERSION='1.0;rm' base_url", {});
      expect(bad.exitCode).not.toBe(0);
      expect(bad.stderr).toContain("not a version");
    });

    test("macOS: unsigned binaries get an ad-hoc signature, signed ones are left alone", async () => {
      const codesign = `echo "codesign $*" >> "$LOG"; case "$1" in -v) exit "$VERIFY" ;; esac`;
      const unsigned = await shFunctions(`VERIFY=1; export VERIFY; sign_if_needed /tmp/x; cat "$LOG"`, { uname: uname("Darwin", "arm64"), codesign });
      expect(unsigned.stdout).toBe("codesign -v /tmp/x\ncodesign --force --sign - /tmp/x\n");
      const signed = await shFunctions(`VERIFY=0; export VERIFY; sign_if_needed /tmp/x; cat "$LOG"`, { uname: uname("Darwin", "arm64"), codesign });
      expect(signed.stdout).toBe("codesign -v /tmp/x\n");
      const linux = await shFunctions(`sign_if_needed /tmp/x; cat "$LOG" 2>/dev/null; echo done`, { uname: uname("Linux", "x86_64"), codesign });
      expect(linux.stdout).toBe("done\n");
    });

    test("expected_sum: exact names, binary mode, disagreeing duplicates fail", async () => {
      const a = "a".repeat(64);
      const b = "b".repeat(64);
      const sumsFile = join(work, "sums-cases");
      writeFileSync(sumsFile, `${a}  bottle-linux-x64-baseline.tar.gz\n${b.toUpperCase()} *bottle-darwin-arm64.tar.gz\n${a}  dup\n${b}  dup\n`);
      const out = await shFunctions(
        `expected_sum ${sumsFile} bottle-darwin-arm64.tar.gz; expected_sum ${sumsFile} bottle-linux-x64.tar.gz || echo none; expected_sum ${sumsFile} dup || echo ambiguous`,
        {},
      );
      expect(out.stdout).toBe(`${b}\nnone\nambiguous\n`);
    });
  });

  describe("bottle update", () => {
    let updater: string; // an installed 0.1.x binary that runs the updates
    let home: string;

    beforeAll(async () => {
      const installed = await install(`${base}/v1`);
      check(installed, "install.sh");
      updater = installed.bin;
      home = installed.home;
      const tampered = join(work, "www", "v9-tampered");
      cpSync(join(work, "www", "v9"), tampered, { recursive: true });
      const file = join(tampered, HOST_TARBALL);
      const bytes = readFileSync(file);
      bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0x01;
      writeFileSync(file, bytes);
      variant("v9-unlisted", join(work, "www", "v9"), (dir) => writeFileSync(join(dir, "SHA256SUMS"), ""));
    }, 120_000);

    function copyOfInstalled(): string {
      const dir = mkdtempSync(join(work, "update-"));
      const copy = join(dir, "bottle");
      copyFileSync(updater, copy);
      chmodSync(copy, 0o755);
      return copy;
    }

    async function update(target: string, url: string, extra: string[] = []): Promise<Ran> {
      return run([updater, "update", "--target", target, ...extra], { env: cleanEnv({ HOME: home, BOTTLE_DOWNLOAD_URL: url }), cwd: home });
    }

    test("replaces the binary with the newer build, atomically, mode 755", async () => {
      const copy = copyOfInstalled();
      const ran = await update(copy, `${base}/v9`);
      expect(ran.stderr).toContain("-> bottle 9.9.9");
      expect(ran.exitCode).toBe(0);
      const newBinary = join(work, "dist-new", "build", HOST, "bottle");
      expect(sha256Hex(readFileSync(copy))).toBe(sha256Hex(readFileSync(newBinary)));
      expect(statSync(copy).mode & 0o777).toBe(0o755);
      expect(check(await run([copy, "--version"]), "updated --version").stdout).toStartWith("bottle 9.9.9 (");
      // Only the binary is left in its directory: no temp files.
      expect(readdirSync(join(copy, ".."))).toEqual(["bottle"]);
    }, 120_000);

    test("the same build again: up to date, nothing replaced", async () => {
      const copy = copyOfInstalled();
      const inode = statSync(copy).ino;
      const ran = await update(copy, `${base}/v1`, ["--json"]);
      expect(ran.exitCode).toBe(0);
      expect((JSON.parse(ran.stdout) as { status: string }).status).toBe("up-to-date");
      expect(statSync(copy).ino).toBe(inode);
    }, 120_000);

    test("a tampered tarball is refused and the binary stays byte-identical", async () => {
      const copy = copyOfInstalled();
      const before = readFileSync(copy);
      const ran = await update(copy, `${base}/v9-tampered`);
      expect(ran.exitCode).not.toBe(0);
      expect(ran.stderr).toContain("checksum mismatch");
      expect(ran.stderr).toContain("fix:");
      expect(readFileSync(copy).equals(before)).toBe(true);
      expect(readdirSync(join(copy, ".."))).toEqual(["bottle"]);
    }, 120_000);

    test("a missing sum is refused", async () => {
      const copy = copyOfInstalled();
      const before = readFileSync(copy);
      const ran = await update(copy, `${base}/v9-unlisted`);
      expect(ran.exitCode).not.toBe(0);
      expect(ran.stderr).toContain(`no checksum for ${HOST_TARBALL}`);
      expect(readFileSync(copy).equals(before)).toBe(true);
    }, 120_000);

    test("no network: a clear error", async () => {
      const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
      const port = closed.port;
      closed.stop(true);
      const copy = copyOfInstalled();
      const ran = await update(copy, `http://127.0.0.1:${port}`);
      expect(ran.exitCode).not.toBe(0);
      expect(ran.stderr).toContain(`cannot download http://127.0.0.1:${port}/SHA256SUMS`);
      expect(ran.stderr).toContain("fix:");
    }, 120_000);

    test("a directory the user cannot write: refused before downloading", async () => {
      const copy = copyOfInstalled();
      const dir = join(copy, "..");
      const before = requests.length;
      let ran: Ran;
      if (process.getuid?.() === 0) {
        // root writes anywhere: run the update as nobody, on a root-owned dir.
        if (Bun.which("setpriv") === null) return void console.log("setpriv missing: skipped the not-writable update as root");
        for (const path of [work, home, dir]) chmodSync(path, 0o755);
        ran = await run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", updater, "update", "--target", copy], {
          env: cleanEnv({ HOME: "/nonexistent", BOTTLE_DOWNLOAD_URL: `${base}/v9` }),
          cwd: "/",
        });
      } else {
        chmodSync(dir, 0o555);
        ran = await update(copy, `${base}/v9`);
        chmodSync(dir, 0o755);
      }
      expect(ran.exitCode).not.toBe(0);
      expect(ran.stderr).toContain("not writable");
      expect(ran.stderr).toContain("fix:");
      expect(requests.length).toBe(before);
    }, 120_000);
  });
});
