import { accessSync, chmodSync, constants, lstatSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { BottleError, errorMessage } from "../errors.ts";
import type { Exec } from "../exec.ts";
import { expectedSum, sha256Hex, sumsMatch } from "./checksums.ts";
import { detectTarget, downloadBaseUrl, isReleaseTarget, RELEASE_TARGETS, tarballName, type ReleaseTarget } from "./platform.ts";

/**
 * `bottle update`: download SHA256SUMS and this machine's tarball from the
 * release base URL, verify the sum (fail closed), extract, check the new
 * binary runs, and swap it in atomically (temp file in the same dir, chmod
 * 755, rename). Nothing is replaced unless every step succeeded.
 */

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export interface SelfUpdateOptions {
  /** The binary to replace (default in cmd/update.ts: process.execPath). */
  target: string;
  env: Record<string, string | undefined>;
  exec: Exec;
  fetch?: Fetch;
  /** Defaults to this process's platform and arch. */
  platform?: string;
  arch?: string;
  /** Replace even when the download is byte-identical to the target. */
  force?: boolean;
}

export interface SelfUpdateResult {
  status: "updated" | "up-to-date";
  target: string;
  releaseTarget: ReleaseTarget;
  url: string;
  /** `--version` output of the binary before and after. */
  from: string;
  to: string;
}

const VERSION_TIMEOUT_MS = 30_000;
const SUMS_TIMEOUT_MS = 60_000;
const TARBALL_TIMEOUT_MS = 15 * 60_000;

const REINSTALL_FIX = "reinstall with install.sh into a directory you own (BOTTLE_INSTALL=~/.local/bin), or run the update with sudo";

/** Which release build this machine needs: BOTTLE_TARGET when set, else detected like install.sh. */
export async function machineTarget(
  exec: Exec,
  env: Record<string, string | undefined>,
  platform: string = process.platform,
  arch: string = process.arch,
): Promise<{ target: ReleaseTarget; note?: string }> {
  const forced = env.BOTTLE_TARGET?.trim();
  if (forced) {
    if (!isReleaseTarget(forced)) throw new BottleError(`BOTTLE_TARGET "${forced}" is not a release build`, { fix: `use one of: ${RELEASE_TARGETS.join(", ")}` });
    return { target: forced };
  }
  let rosetta = false;
  if (platform === "darwin" && arch === "x64") {
    const out = await exec.run(["sysctl", "-n", "sysctl.proc_translated"], { check: false }).catch(() => undefined);
    rosetta = out?.stdout.trim() === "1";
  }
  let cpuinfo: string | undefined;
  if (platform === "linux") {
    try {
      cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      cpuinfo = undefined;
    }
  }
  const detected = detectTarget({ os: platform, arch, rosetta, ...(cpuinfo === undefined ? {} : { cpuinfo }) });
  if (!detected.ok) throw new BottleError(detected.reason, { fix: "build bottle from source (see README)" });
  return { target: detected.target, ...(detected.note ? { note: detected.note } : {}) };
}

async function download(fetcher: Fetch, url: string, timeoutMs: number): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetcher(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "follow" });
  } catch (error) {
    throw new BottleError(`cannot download ${url}: ${errorMessage(error)}`, {
      fix: "check the network connection and proxy settings (HTTPS_PROXY); BOTTLE_DOWNLOAD_URL selects another mirror",
      cause: error,
    });
  }
  if (!response.ok) {
    throw new BottleError(`cannot download ${url}: HTTP ${response.status}`, {
      fix: response.status === 404 ? "check that the release exists (BOTTLE_VERSION, BOTTLE_DOWNLOAD_URL)" : "try again later",
    });
  }
  try {
    return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw new BottleError(`download of ${url} broke off: ${errorMessage(error)}`, { fix: "try again", cause: error });
  }
}

function notWritable(path: string, error?: unknown): BottleError {
  return new BottleError(`cannot replace ${path}: its directory is not writable${error ? ` (${errorMessage(error)})` : ""}`, {
    fix: REINSTALL_FIX,
    ...(error === undefined ? {} : { cause: error }),
  });
}

async function versionOf(exec: Exec, binary: string): Promise<{ ok: boolean; line: string; detail: string }> {
  try {
    const out = await exec.run([binary, "--version"], { check: false, timeoutMs: VERSION_TIMEOUT_MS });
    const line = out.stdout.trim().split("\n")[0] ?? "";
    return { ok: out.exitCode === 0 && /^bottle \S+/.test(line), line, detail: (out.stderr || out.stdout).trim() || `exit code ${out.exitCode}` };
  } catch (error) {
    return { ok: false, line: "", detail: errorMessage(error) };
  }
}

/** Ad-hoc sign on macOS when the binary carries no valid signature (Apple silicon will not run it otherwise). */
async function adHocSign(exec: Exec, path: string, platform: string): Promise<void> {
  if (platform !== "darwin") return;
  try {
    const verify = await exec.run(["codesign", "-v", path], { check: false });
    if (verify.exitCode !== 0) await exec.run(["codesign", "--force", "--sign", "-", path]);
  } catch (error) {
    throw new BottleError(`cannot sign the new binary: ${errorMessage(error)}`, { fix: "install the Xcode command line tools (xcode-select --install)", cause: error });
  }
}

export async function selfUpdate(options: SelfUpdateOptions): Promise<SelfUpdateResult> {
  const fetcher: Fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const platform = options.platform ?? process.platform;

  // 1. What gets replaced, and may we?
  let target: string;
  try {
    target = realpathSync(options.target);
  } catch (error) {
    throw new BottleError(`${options.target} does not exist`, { fix: "pass the installed binary with --target, or reinstall with install.sh", cause: error });
  }
  if (!statSync(target).isFile()) throw new BottleError(`${target} is not a file`, { fix: "pass the installed binary with --target" });
  if (/\/Cellar\//.test(target))
    throw new BottleError(`${target} is managed by Homebrew`, { fix: "update it with `brew upgrade bottle`" });
  const dir = dirname(target);
  try {
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw notWritable(target, error);
  }

  // 2. Which build, from where.
  const { target: releaseTarget } = await machineTarget(options.exec, options.env, platform, options.arch ?? process.arch);
  const base = downloadBaseUrl(options.env);
  const name = tarballName(releaseTarget);
  const sumsUrl = `${base}/SHA256SUMS`;
  const url = `${base}/${name}`;

  // 3. Download and verify; nothing is written before the sum matches.
  const sums = new TextDecoder().decode(await download(fetcher, sumsUrl, SUMS_TIMEOUT_MS));
  const expected = expectedSum(sums, name);
  if (!expected)
    throw new BottleError(`${sumsUrl} lists no checksum for ${name}; refusing to update`, {
      fix: "the release is incomplete or was changed; try again later or reinstall with install.sh",
    });
  const tarball = await download(fetcher, url, TARBALL_TIMEOUT_MS);
  const actual = sha256Hex(tarball);
  if (!sumsMatch(expected, actual))
    throw new BottleError(`checksum mismatch for ${name}: expected ${expected}, got ${actual}; refusing to update`, {
      fix: "try again; if it keeps failing the download is corrupted or tampered with: report it",
    });

  // 4. Extract, stage next to the target, check it runs, swap.
  const work = mkdtempSync(join(tmpdir(), "bottle-update-"));
  const staged = join(dir, `.${basename(target)}.update-${process.pid}-${Date.now().toString(36)}`);
  let renamed = false;
  try {
    const archive = join(work, name);
    writeFileSync(archive, tarball);
    await options.exec.run(["tar", "-xzf", archive, "-C", work, "bottle"]).catch((error: unknown) => {
      throw new BottleError(`${name} does not hold a bottle binary: ${errorMessage(error)}`, { fix: "report the broken release", cause: error });
    });
    const extracted = join(work, "bottle");
    if (!lstatSync(extracted).isFile()) throw new BottleError(`${name} holds no regular file named bottle`, { fix: "report the broken release" });
    const bytes = readFileSync(extracted);
    const current = readFileSync(target);
    const from = await versionOf(options.exec, target);
    if (!options.force && Buffer.compare(bytes, current) === 0) {
      return { status: "up-to-date", target, releaseTarget, url, from: from.line, to: from.line };
    }
    try {
      writeFileSync(staged, bytes, { mode: 0o755 });
      chmodSync(staged, 0o755);
    } catch (error) {
      throw notWritable(target, error);
    }
    await adHocSign(options.exec, staged, platform);
    const to = await versionOf(options.exec, staged);
    if (!to.ok)
      throw new BottleError(`the downloaded bottle does not run on this machine: ${to.detail}`, {
        fix: `nothing was replaced; BOTTLE_TARGET picks another build (${RELEASE_TARGETS.join(", ")})`,
      });
    try {
      renameSync(staged, target);
      renamed = true;
    } catch (error) {
      throw notWritable(target, error);
    }
    return { status: "updated", target, releaseTarget, url, from: from.line, to: to.line };
  } finally {
    if (!renamed) rmSync(staged, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
}
