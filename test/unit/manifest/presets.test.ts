import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import * as v from "valibot";
import raw from "../../../assets/egress-presets.json" with { type: "json" };
import { parseAllowEntry, Policy, normalizeHost } from "../../../lib/gates/egress/daemon/policy.ts";
import { allowEntryProblem } from "../../../lib/manifest/hosts.ts";
import { CLAUDE_CODE_HOSTS, formatInfo, infoView, resolveAgentAndBottle, resolveBottle } from "../../../lib/manifest/index.ts";
import {
  egressHosts,
  parsePresetRef,
  PRESETS,
  presetFileSchema,
  presetHosts,
  presetNames,
  presetsWithHost,
} from "../../../lib/manifest/presets.ts";
import { formatPreflight } from "../../../lib/preflight.ts";
import { makePlan } from "../../helpers/unit.ts";
import { bottleErrorFor, sandbox, type Sandbox } from "./helpers.ts";

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

describe("the embedded preset file", () => {
  test("passes its schema and has the presets the issue asks for", () => {
    expect(v.safeParse(presetFileSchema, raw).success).toBe(true);
    for (const name of ["npm", "pypi", "github", "crates", "go", "rubygems", "debian"]) expect(presetNames()).toContain(name);
  });

  test("every host is a plain host name under both allowlist grammars: no wildcard, no port, no address, lower case, once", () => {
    for (const [name, preset] of Object.entries(PRESETS)) {
      for (const entry of preset.versions) {
        const hosts = entry.hosts.map((host) => host.host);
        expect({ name, hosts: new Set(hosts).size }).toEqual({ name, hosts: hosts.length });
        for (const host of hosts) {
          expect({ host, problem: allowEntryProblem(host) }).toEqual({ host, problem: undefined });
          expect(parseAllowEntry(host)).toEqual({ entry: host, kind: "name", host, port: null });
          expect(host).toBe(host.toLowerCase());
          expect(host.includes(".")).toBe(true);
        }
        // Each host says what a client uses it for.
        for (const host of entry.hosts) expect(host.for.length).toBeGreaterThan(5);
        for (const source of entry.sources) expect(source).toStartWith("https://");
      }
    }
  });

  test("versions are whole numbers from 1, each once, in order (the last is the newest)", () => {
    for (const preset of Object.values(PRESETS)) {
      const versions = preset.versions.map((entry) => entry.version);
      expect(versions).toEqual(versions.map((_, index) => index + 1));
    }
  });

  test("no preset repeats Claude Code's own hosts (every bottle has them already)", () => {
    for (const name of presetNames()) for (const host of presetHosts({ name, version: 1 })) expect(CLAUDE_CODE_HOSTS).not.toContain(host);
  });
});

describe("preset names", () => {
  test("a name is its newest version; name@N pins one", () => {
    expect(parsePresetRef("npm")).toEqual({ name: "npm", version: 1 });
    expect(parsePresetRef("github@1")).toEqual({ name: "github", version: 1 });
  });

  test("unknown names and versions say what exists", () => {
    expect(parsePresetRef("nmp")).toEqual({ problem: 'unknown preset "nmp" (presets: crates, debian, github, go, npm, pypi, rubygems) — did you mean npm?' });
    expect(parsePresetRef("npm@2")).toEqual({ problem: "npm has no version 2 — versions: 1; write npm for the newest" });
    expect(parsePresetRef("npm@latest")).toEqual({ problem: '"npm@latest" is not a preset version — write npm (the newest) or npm@1' });
    expect(parsePresetRef("constructor")).toHaveProperty("problem");
    expect(parsePresetRef("")).toHaveProperty("problem");
  });

  test("which presets list a host", () => {
    expect(presetsWithHost("registry.npmjs.org")).toEqual(["npm"]);
    expect(presetsWithHost("evil.test")).toEqual([]);
  });
});

describe("egress.presets in a bottle", () => {
  test("unknown preset, unknown version, a bad version and a non-name: each at its line and column, with the fix", () => {
    const message = bottleErrorFor(box, ["egress:", "  presets:", "    - nmp", '    - "npm@3"', '    - "npm@v1"', "    - 42", ""].join("\n"));
    expect(message.split("\n")).toEqual([
      '~/.config/bottle/bottles/dev.yaml:3:7: egress.presets[0]: unknown preset "nmp" (presets: crates, debian, github, go, npm, pypi, rubygems) — did you mean npm?',
      "~/.config/bottle/bottles/dev.yaml:4:7: egress.presets[1]: npm has no version 3 — versions: 1; write npm for the newest",
      '~/.config/bottle/bottles/dev.yaml:5:7: egress.presets[2]: "npm@v1" is not a preset version — write npm (the newest) or npm@1',
      "~/.config/bottle/bottles/dev.yaml:6:7: egress.presets[3]: expected a preset name (crates, debian, github, go, npm, pypi, rubygems), got a number",
    ]);
  });

  test("a preset written in allow is an error, not a one-label host", () => {
    expect(bottleErrorFor(box, "egress:\n  allow: [github.com, npm, pypi@1, Go]\n").split("\n")).toEqual([
      '~/.config/bottle/bottles/dev.yaml:2:23: egress.allow[1]: "npm" is a preset, not a host — list it under egress.presets: [npm]',
      '~/.config/bottle/bottles/dev.yaml:2:28: egress.allow[2]: "pypi@1" is a preset, not a host — list it under egress.presets: [pypi@1]',
      '~/.config/bottle/bottles/dev.yaml:2:36: egress.allow[3]: "Go" is a preset, not a host — list it under egress.presets: [go]',
    ]);
  });

  test("presets must be a list", () => {
    expect(bottleErrorFor(box, "egress:\n  presets: npm\n")).toBe("~/.config/bottle/bottles/dev.yaml:2:12: egress.presets: expected a list of preset names, got text");
  });

  test("merged across extends as a union; npm and npm@1 are the same preset, kept where first named", () => {
    const base = box.bottle("base", "egress:\n  presets: [npm, github]\n  allow: [a.example.com]\n");
    const dev = box.bottle("dev", "extends: base\negress:\n  presets: [go, npm@1]\n");
    const bottle = resolveBottle("dev", { env: box.env });
    expect(bottle.egress.presets).toEqual([
      { name: "npm", version: 1 },
      { name: "github", version: 1 },
      { name: "go", version: 1 },
    ]);
    expect(bottle.origins["egress.presets.npm@1"]).toBe(base);
    expect(bottle.origins["egress.presets.go@1"]).toBe(dev);
    // The bottle's own entries stay its own; the expansion comes after them, each host once.
    expect(bottle.egress.allow).toEqual(["a.example.com"]);
    expect(egressHosts(bottle.egress)).toEqual([
      "a.example.com",
      ...presetHosts({ name: "npm", version: 1 }),
      ...presetHosts({ name: "github", version: 1 }),
      ...presetHosts({ name: "go", version: 1 }),
    ]);
  });

  test("the expansion is what the gate's policy allows: a preset's hosts yes (proxy and DNS), a host outside every preset no", () => {
    box.bottle("dev", "egress:\n  presets: [npm]\n");
    const bottle = resolveBottle("dev", { env: box.env });
    const policy = new Policy([...CLAUDE_CODE_HOSTS, ...egressHosts(bottle.egress)], [], []);
    const at = (host: string) => normalizeHost(host)!;
    expect(policy.checkHost(at("registry.npmjs.org"), 443)).toEqual({ ok: true, entry: "registry.npmjs.org" });
    expect(policy.checkHost(at("registry.yarnpkg.com"), 80)).toEqual({ ok: true, entry: "registry.yarnpkg.com" });
    expect(policy.nameAllowed("registry.npmjs.org")).toBe(true);
    // Not a wildcard: a name under the registry's is not allowed.
    expect(policy.checkHost(at("evil.registry.npmjs.org"), 443)).toEqual({ ok: false, rule: "not-allowed" });
    expect(policy.checkHost(at("files.pythonhosted.org"), 443)).toEqual({ ok: false, rule: "not-allowed" });
    expect(policy.nameAllowed("pypi.org")).toBe(false);
  });
});

describe("bottle info and the preflight", () => {
  test("info lists each preset's hosts as allowed by it, and the preset with what each host is for", async () => {
    box.bottle("dev", "egress:\n  presets: [go, npm]\n  allow: [registry.npmjs.org]\n");
    const resolved = await resolveAgentAndBottle({ bottle: "dev", projectDir: box.project, env: box.env });
    const view = infoView(resolved, box.env);
    expect(view.bottle.egress.allow.filter((entry) => !entry.default)).toEqual([
      // Listed by the bottle itself: shown as its own, once.
      { host: "registry.npmjs.org", default: false, from: "~/.config/bottle/bottles/dev.yaml" },
      { host: "proxy.golang.org", default: false, preset: "go@1", from: "~/.config/bottle/bottles/dev.yaml" },
      { host: "sum.golang.org", default: false, preset: "go@1", from: "~/.config/bottle/bottles/dev.yaml" },
      { host: "storage.googleapis.com", default: false, preset: "go@1", from: "~/.config/bottle/bottles/dev.yaml" },
      { host: "registry.yarnpkg.com", default: false, preset: "npm@1", from: "~/.config/bottle/bottles/dev.yaml" },
    ]);
    expect(view.bottle.egress.presets.map((preset) => [preset.name, preset.version, preset.hosts.map((host) => host.host)])).toEqual([
      ["go", 1, ["proxy.golang.org", "sum.golang.org", "storage.googleapis.com"]],
      ["npm", 1, ["registry.npmjs.org", "registry.yarnpkg.com"]],
    ]);
    expect(view.bottle.egress.presets[0]!.notes).toEqual(["storage.googleapis.com serves every Google Cloud Storage bucket, not only the Go mirror's"]);
    const text = formatInfo(view);
    expect(text).toContain("  registry.yarnpkg.com    preset npm@1\n");
    expect(text).toContain("egress presets (host lists shipped with bottle)\n  go@1  The Go module mirror and checksum database (go get, go mod download)  ~/.config/bottle/bottles/dev.yaml\n");
    expect(text).toContain("    storage.googleapis.com  module zips: the mirror redirects their downloads here\n");
    expect(text).toContain("    note: storage.googleapis.com serves every Google Cloud Storage bucket");
  });

  test("without presets, info has no presets section", async () => {
    box.bottle("dev", "egress:\n  allow: [a.example.com]\n");
    const view = infoView(await resolveAgentAndBottle({ bottle: "dev", projectDir: box.project, env: box.env }), box.env);
    expect(view.bottle.egress.presets).toEqual([]);
    expect(formatInfo(view)).not.toContain("egress presets");
  });

  test("the preflight names presets, not their hosts", () => {
    const npm = presetHosts({ name: "npm", version: 1 });
    const github = presetHosts({ name: "github", version: 1 });
    const plan = makePlan({
      egress: {
        allow: ["api.anthropic.com", "a.example.com", ...npm, ...github],
        presets: [
          { name: "npm", version: 1, hosts: npm },
          { name: "github", version: 1, hosts: github },
        ],
      },
    });
    const row = formatPreflight(plan, []).split("\n").find((line) => line.trimStart().startsWith("egress"));
    expect(row).toBe(`  egress     ${2 + npm.length + github.length} hosts: presets npm@1, github@1; api.anthropic.com, a.example.com`);
    expect(formatPreflight(makePlan(), []).split("\n").find((line) => line.trimStart().startsWith("egress"))).toBe("  egress     1 hosts: api.anthropic.com");
  });
});
