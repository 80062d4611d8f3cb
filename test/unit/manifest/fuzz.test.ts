import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ManifestError, loadAgentText, loadBottleText, resolveAgentAndBottle, resolveBottle } from "../../../lib/manifest/index.ts";
import { captureWarnings, prng, sandbox, type Sandbox } from "./helpers.ts";

/**
 * Property: whatever the text, the loader returns a value or throws a
 * ManifestError — never a TypeError, a RangeError or a yaml library error.
 * Inputs are valid manifests truncated and mutated by a seeded PRNG.
 */

const VALID_BOTTLE = `# yaml-language-server: $schema=../schema/bottle.json
extends: [base]
env:
  LITERAL: plain value
  FROM_HOST: \${GITHUB_TOKEN}
  ASKED: "?Password please"
  NUMBER: 3
egress:
  allow:
    - github.com
    - "*.npmjs.org"
    - registry.example.com:8443
  allow_private: [10.0.0.0/8, "fd00::/8", intranet.corp]
git:
  user: { name: "Dev Person", email: dev@example.com }
  remotes:
    origin:
      upstream: git@github.com:me/repo.git
      identity_file: ~/.ssh/id_bottle
      known_host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
ssh:
  hosts:
    - host: build.example.com
      port: 2222
      user: deploy
      identity_file: keys/deploy
      known_host_key: ssh-rsa AAAAB3NzaC1yc2E=
workspace: copy
ca_certs: [./corp.pem, ~/certs/root.pem]
image:
  dockerfile: ./Dockerfile
backend: docker
`;

const VALID_AGENT = `---
name: coder
description: "Writes code: carefully"
tools: Read, Grep
bottle: dev
skills:
  - review
  - testing
model: opus
git:
  user: { name: Agent, email: agent@example.com }
---
You write code.
---
More prompt.
`;

const NOISE = [":", "-", " ", "  ", "\n", "\t", "[", "]", "{", "}", '"', "'", "&a ", "*a", "!!str ", "!x ", "#", "|", ">", "?", ",", "%", "@", "`", "\\", "${", "}", "---\n", "...\n", "\u0000", "é", "😀", "~", "null", "[[[[", "&b [*b]", "<<: *a", "0x", "1e400", "-\n-"];

function mutate(source: string, random: () => number): string {
  let text = source;
  const steps = 1 + Math.floor(random() * 4);
  for (let step = 0; step < steps; step++) {
    const at = Math.floor(random() * (text.length + 1));
    const choice = random();
    if (choice < 0.25) text = text.slice(0, at);
    else if (choice < 0.45) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 8));
    else if (choice < 0.75) text = text.slice(0, at) + NOISE[Math.floor(random() * NOISE.length)]! + text.slice(at);
    else if (choice < 0.85) {
      const lines = text.split("\n");
      const i = Math.floor(random() * lines.length);
      const j = Math.floor(random() * lines.length);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      text = lines.join("\n");
    } else if (choice < 0.95) {
      const lines = text.split("\n");
      const i = Math.floor(random() * lines.length);
      lines.splice(i, 0, (lines[i] ?? "").replace(/^\s*/, " ".repeat(Math.floor(random() * 6))));
      text = lines.join("\n");
    } else {
      text = text.slice(0, at) + String.fromCharCode(Math.floor(random() * 0x250)) + text.slice(at);
    }
  }
  return text;
}

const CASES = Number(process.env.BOTTLE_FUZZ_CASES ?? 300);
const SEED = Number(process.env.BOTTLE_FUZZ_SEED ?? 0);
let box: Sandbox;
let warnings: ReturnType<typeof captureWarnings>;
beforeAll(() => {
  box = sandbox();
  box.bottle("base", "workspace: mount\n");
  box.skill("review");
  warnings = captureWarnings();
});
afterAll(() => {
  warnings.restore();
  box.cleanup();
});

function expectManifestErrorOrValue(run: () => unknown, text: string): "ok" | "error" {
  try {
    run();
    return "ok";
  } catch (error) {
    if (!(error instanceof ManifestError)) {
      throw new Error(`not a ManifestError for input ${JSON.stringify(text)}: ${error instanceof Error ? error.stack : String(error)}`);
    }
    expect(error.issues.length).toBeGreaterThan(0);
    for (const issue of error.issues) {
      expect(issue.message.length).toBeGreaterThan(0);
      expect(issue.line).toBeGreaterThanOrEqual(1);
      expect(issue.col).toBeGreaterThanOrEqual(1);
    }
    return "error";
  }
}

describe("fuzz: truncated and mutated manifests", () => {
  test("the valid seeds are valid", () => {
    expect(loadBottleText(VALID_BOTTLE, "/x/dev.yaml").ok).toBe(true);
    expect(loadAgentText(VALID_AGENT, "/x/coder.md").ok).toBe(true);
  });

  test(`bottles: ${CASES} cases`, () => {
    const random = prng(SEED ^ 0xb0771e);
    const outcomes = { ok: 0, error: 0 };
    for (let i = 0; i < CASES; i++) {
      const text = mutate(VALID_BOTTLE, random);
      box.bottle("dev", text);
      outcomes[expectManifestErrorOrValue(() => resolveBottle("dev", { env: box.env }), text)]++;
      // The pure loader never throws at all.
      const result = loadBottleText(text, "/x/dev.yaml");
      expect(typeof result.ok).toBe("boolean");
    }
    // Both outcomes happen, so the generator explores both sides.
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
  });

  test(`agents: ${CASES} cases`, async () => {
    const random = prng(SEED ^ 0xa9e47);
    const outcomes = { ok: 0, error: 0 };
    box.bottle("dev", "{}\n");
    for (let i = 0; i < CASES; i++) {
      const text = mutate(VALID_AGENT, random);
      box.agent("coder", text);
      try {
        await resolveAgentAndBottle({ agent: "coder", projectDir: box.project, env: box.env });
        outcomes.ok++;
      } catch (error) {
        expectManifestErrorOrValue(() => {
          throw error;
        }, text);
        outcomes.error++;
      }
      expect(typeof loadAgentText(text, "/x/coder.md").ok).toBe("boolean");
    }
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
  });

  test("every prefix of a valid bottle", () => {
    for (let end = 0; end <= VALID_BOTTLE.length; end += 3) {
      const text = VALID_BOTTLE.slice(0, end);
      box.bottle("dev", text);
      expectManifestErrorOrValue(() => resolveBottle("dev", { env: box.env }), text);
    }
  });

  test("alias bombs and deep nesting", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 12; i++) bomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(", ")}]`);
    for (const text of [bomb.join("\n"), `${"[".repeat(2000)}${"]".repeat(2000)}`, `env:\n${"  ".repeat(1)}${"{a: ".repeat(500)}1${"}".repeat(500)}\n`]) {
      box.bottle("dev", text);
      expect(expectManifestErrorOrValue(() => resolveBottle("dev", { env: box.env }), text)).toBe("error");
    }
  });
});
