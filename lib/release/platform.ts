import { BottleError } from "../errors.ts";

/**
 * Which release build fits a machine. The same rules as install.sh (keep the
 * two in step): Rosetta on macOS gets the arm64 build, Linux x64 without AVX2
 * gets the `-baseline` build.
 */

export const RELEASE_TARGETS = ["linux-x64", "linux-x64-baseline", "linux-arm64", "darwin-x64", "darwin-arm64"] as const;
export type ReleaseTarget = (typeof RELEASE_TARGETS)[number];

/** Where releases are downloaded from unless BOTTLE_DOWNLOAD_URL says otherwise. */
export const DEFAULT_RELEASES_URL = "https://github.com/bottle-sh/bottle/releases";

export function isReleaseTarget(value: string): value is ReleaseTarget {
  return (RELEASE_TARGETS as readonly string[]).includes(value);
}

/** `bottle-<target>.tar.gz`: the archive holding the single `bottle` binary. */
export function tarballName(target: ReleaseTarget): string {
  return `bottle-${target}.tar.gz`;
}

export interface MachineFacts {
  /** `process.platform` or `uname -s` (any case). */
  os: string;
  /** `process.arch` or `uname -m`. */
  arch: string;
  /** `sysctl -n sysctl.proc_translated` printed 1: an x64 process under Rosetta on Apple silicon. */
  rosetta?: boolean;
  /** Text of /proc/cpuinfo; undefined when unreadable (then no downgrade). */
  cpuinfo?: string;
}

export type Detection = { ok: true; target: ReleaseTarget; note?: string } | { ok: false; reason: string };

export function normalizeOs(os: string): "linux" | "darwin" | undefined {
  const lower = os.toLowerCase();
  if (lower === "linux") return "linux";
  if (lower === "darwin" || lower === "macos") return "darwin";
  return undefined;
}

export function normalizeArch(arch: string): "x64" | "arm64" | undefined {
  const lower = arch.toLowerCase();
  if (lower === "x64" || lower === "x86_64" || lower === "amd64") return "x64";
  if (lower === "arm64" || lower === "aarch64" || lower === "armv8" || lower === "armv8l") return "arm64";
  return undefined;
}

/** Whether a /proc/cpuinfo text lists the avx2 flag (x86: `flags`, some kernels: `Features`). */
export function cpuinfoHasAvx2(cpuinfo: string): boolean {
  return /^(flags|Features)\s*:.*\bavx2\b/m.test(cpuinfo);
}

export function detectTarget(facts: MachineFacts): Detection {
  const os = normalizeOs(facts.os);
  if (!os) return { ok: false, reason: `no bottle build for ${facts.os} (Linux and macOS only; on Windows use WSL)` };
  const arch = normalizeArch(facts.arch);
  if (!arch) return { ok: false, reason: `no bottle build for ${os} on ${facts.arch} (x86_64 and arm64 only)` };
  if (os === "darwin" && arch === "x64" && facts.rosetta) {
    return { ok: true, target: "darwin-arm64", note: "running under Rosetta: using the native arm64 build" };
  }
  if (os === "linux" && arch === "x64" && facts.cpuinfo !== undefined && !cpuinfoHasAvx2(facts.cpuinfo)) {
    return { ok: true, target: "linux-x64-baseline", note: "CPU without AVX2: using the baseline build" };
  }
  return { ok: true, target: `${os}-${arch}` };
}

/**
 * The base URL that holds SHA256SUMS and the tarballs: BOTTLE_DOWNLOAD_URL as
 * given, else the latest GitHub release, or `v<BOTTLE_VERSION>` when set.
 */
export function downloadBaseUrl(env: Record<string, string | undefined>): string {
  const override = env.BOTTLE_DOWNLOAD_URL?.trim();
  if (override) return override.replace(/\/+$/, "");
  const version = env.BOTTLE_VERSION?.trim().replace(/^v/, "");
  if (version) {
    if (!/^[0-9A-Za-z][0-9A-Za-z.+-]*$/.test(version))
      throw new BottleError(`BOTTLE_VERSION "${env.BOTTLE_VERSION}" is not a version`, { fix: "set it to a release such as 1.2.3, or unset it for the latest" });
    return `${DEFAULT_RELEASES_URL}/download/v${version}`;
  }
  return `${DEFAULT_RELEASES_URL}/latest/download`;
}
