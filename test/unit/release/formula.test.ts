import { describe, expect, test } from "bun:test";
import { FORMULA_TARGETS, renderFormula, rubyString } from "../../../lib/release/formula.ts";
import { tarballName } from "../../../lib/release/platform.ts";

const sums = new Map(FORMULA_TARGETS.map((target, i) => [tarballName(target), String(i + 1).repeat(64)]));

describe("Formula/bottle.rb", () => {
  const formula = renderFormula({ version: "1.2.3", sums });

  test("one url and sha256 per OS and CPU, from the v<version> release", () => {
    for (const target of FORMULA_TARGETS) {
      expect(formula).toContain(`url "https://github.com/bottle-sh/bottle/releases/download/v1.2.3/${tarballName(target)}"`);
      expect(formula).toContain(`sha256 "${sums.get(tarballName(target))}"`);
    }
    expect(formula).toContain('version "1.2.3"');
  });

  test("each sha256 follows its own url", () => {
    const lines = formula.split("\n").map((l) => l.trim());
    for (const target of FORMULA_TARGETS) {
      const at = lines.findIndex((l) => l.endsWith(`/${tarballName(target)}"`));
      expect(lines[at + 1]).toBe(`sha256 "${sums.get(tarballName(target))}"`);
    }
  });

  test("on_macos / on_linux with Hardware::CPU.arm?, AVX2 picks the non-baseline Linux build", () => {
    const macos = formula.slice(formula.indexOf("on_macos do"), formula.indexOf("on_linux do"));
    expect(macos).toContain("if Hardware::CPU.arm?");
    expect(macos.indexOf("darwin-arm64")).toBeLessThan(macos.indexOf("darwin-x64"));
    const linux = formula.slice(formula.indexOf("on_linux do"), formula.indexOf("def install"));
    expect(linux).toContain("if Hardware::CPU.arm?");
    expect(linux).toContain("elsif Hardware::CPU.avx2?");
    expect(linux.indexOf("linux-x64.tar.gz")).toBeLessThan(linux.indexOf("linux-x64-baseline.tar.gz"));
  });

  test("installs the binary, has a livecheck and a --version test", () => {
    expect(formula).toContain("class Bottle < Formula");
    expect(formula).toContain('bin.install "bottle"');
    expect(formula).toMatch(/livecheck do\n\s+url :stable\n\s+strategy :github_latest\n\s+end/);
    expect(formula).toContain('assert_match "bottle #{version}", shell_output("#{bin}/bottle --version")');
    expect(formula).toContain('generate_completions_from_executable(bin/"bottle", "completion")');
  });

  test("a custom base URL", () => {
    const custom = renderFormula({ version: "1.2.3", sums, baseUrl: "https://mirror.example/bottle/1.2.3/" });
    expect(custom).toContain('url "https://mirror.example/bottle/1.2.3/bottle-darwin-arm64.tar.gz"');
  });

  test("refuses to render without every sum, or with a bad version", () => {
    const partial = new Map(sums);
    partial.delete("bottle-linux-arm64.tar.gz");
    expect(() => renderFormula({ version: "1.2.3", sums: partial })).toThrow("bottle-linux-arm64.tar.gz");
    const bad = new Map(sums);
    bad.set("bottle-darwin-x64.tar.gz", "nothex");
    expect(() => renderFormula({ version: "1.2.3", sums: bad })).toThrow("bottle-darwin-x64.tar.gz");
    expect(() => renderFormula({ version: '1.2.3"; system "rm', sums })).toThrow("not a release version");
  });

  test("Ruby strings interpolate nothing", () => {
    expect(rubyString('a"b#{c}\\d')).toBe('"a\\"b\\#{c}\\\\d"');
  });
});
