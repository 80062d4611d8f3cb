import { describe, expect, test } from "bun:test";
import {
  cpuinfoHasAvx2,
  detectTarget,
  downloadBaseUrl,
  isReleaseTarget,
  normalizeArch,
  normalizeOs,
  RELEASE_TARGETS,
  tarballName,
} from "../../../lib/release/platform.ts";
import { RELEASE_TARGETS as BUILD_TARGETS } from "../../../scripts/build.ts";

const AVX2 = "processor\t: 0\nflags\t\t: fpu vme sse sse2 avx avx2 bmi2\n";
const NO_AVX2 = "processor\t: 0\nflags\t\t: fpu vme sse sse2 avx\n";

describe("release targets", () => {
  test("scripts/build.ts compiles exactly the release targets", () => {
    expect([...BUILD_TARGETS]).toEqual([...RELEASE_TARGETS]);
  });

  test("tarball names", () => {
    expect(RELEASE_TARGETS.map(tarballName)).toEqual([
      "bottle-linux-x64.tar.gz",
      "bottle-linux-x64-baseline.tar.gz",
      "bottle-linux-arm64.tar.gz",
      "bottle-darwin-x64.tar.gz",
      "bottle-darwin-arm64.tar.gz",
    ]);
    expect(isReleaseTarget("linux-x64-baseline")).toBe(true);
    expect(isReleaseTarget("windows-x64")).toBe(false);
  });
});

describe("detectTarget", () => {
  const cases: Array<[string, Parameters<typeof detectTarget>[0], string]> = [
    ["Linux x86_64 with AVX2", { os: "Linux", arch: "x86_64", cpuinfo: AVX2 }, "linux-x64"],
    ["Linux x86_64 without AVX2", { os: "Linux", arch: "x86_64", cpuinfo: NO_AVX2 }, "linux-x64-baseline"],
    ["Linux x64 (process.arch) without AVX2", { os: "linux", arch: "x64", cpuinfo: NO_AVX2 }, "linux-x64-baseline"],
    ["Linux x86_64, cpuinfo unreadable", { os: "Linux", arch: "x86_64" }, "linux-x64"],
    ["Linux amd64", { os: "linux", arch: "amd64", cpuinfo: AVX2 }, "linux-x64"],
    ["Linux aarch64 (no AVX2 is fine on ARM)", { os: "Linux", arch: "aarch64", cpuinfo: "Features\t: fp asimd\n" }, "linux-arm64"],
    ["Linux arm64", { os: "linux", arch: "arm64" }, "linux-arm64"],
    ["macOS Intel", { os: "Darwin", arch: "x86_64", rosetta: false }, "darwin-x64"],
    ["macOS x86_64 shell under Rosetta", { os: "Darwin", arch: "x86_64", rosetta: true }, "darwin-arm64"],
    ["macOS Apple silicon", { os: "Darwin", arch: "arm64" }, "darwin-arm64"],
    ["macOS process.platform", { os: "darwin", arch: "x64" }, "darwin-x64"],
  ];
  for (const [name, facts, target] of cases) {
    test(name, () => {
      const detected = detectTarget(facts);
      expect(detected.ok ? detected.target : detected.reason).toBe(target);
    });
  }

  test("Rosetta and baseline notes say why", () => {
    const rosetta = detectTarget({ os: "Darwin", arch: "x86_64", rosetta: true });
    expect(rosetta.ok && rosetta.note).toContain("Rosetta");
    const baseline = detectTarget({ os: "Linux", arch: "x86_64", cpuinfo: NO_AVX2 });
    expect(baseline.ok && baseline.note).toContain("AVX2");
  });

  test("unsupported systems and CPUs are refused with a reason", () => {
    const windows = detectTarget({ os: "Windows_NT", arch: "x86_64" });
    expect(windows.ok).toBe(false);
    expect(!windows.ok && windows.reason).toContain("WSL");
    const riscv = detectTarget({ os: "Linux", arch: "riscv64" });
    expect(!riscv.ok && riscv.reason).toContain("riscv64");
    expect(detectTarget({ os: "FreeBSD", arch: "amd64" }).ok).toBe(false);
  });

  test("normalisation and AVX2 detection", () => {
    expect(normalizeOs("DARWIN")).toBe("darwin");
    expect(normalizeOs("sunos")).toBeUndefined();
    expect(normalizeArch("armv8l")).toBe("arm64");
    expect(normalizeArch("i686")).toBeUndefined();
    expect(cpuinfoHasAvx2(AVX2)).toBe(true);
    expect(cpuinfoHasAvx2(NO_AVX2)).toBe(false);
    // avx2 only as a prefix of another flag does not count
    expect(cpuinfoHasAvx2("flags\t: avx512f avx2x\n")).toBe(false);
    expect(cpuinfoHasAvx2("model name\t: avx2 marketing\nflags\t: sse2\n")).toBe(false);
  });
});

describe("downloadBaseUrl", () => {
  test("latest by default, a tag with BOTTLE_VERSION, verbatim BOTTLE_DOWNLOAD_URL", () => {
    expect(downloadBaseUrl({})).toBe("https://github.com/bottle-sh/bottle/releases/latest/download");
    expect(downloadBaseUrl({ BOTTLE_VERSION: "1.2.3" })).toBe("https://github.com/bottle-sh/bottle/releases/download/v1.2.3");
    expect(downloadBaseUrl({ BOTTLE_VERSION: "v1.2.3" })).toBe("https://github.com/bottle-sh/bottle/releases/download/v1.2.3");
    expect(downloadBaseUrl({ BOTTLE_DOWNLOAD_URL: "http://127.0.0.1:8080/r/", BOTTLE_VERSION: "1.2.3" })).toBe("http://127.0.0.1:8080/r");
  });

  test("a BOTTLE_VERSION that is not a version is an error, not a URL", () => {
    expect(() => downloadBaseUrl({ BOTTLE_VERSION: "../../evil" })).toThrow("is not a version");
  });
});
