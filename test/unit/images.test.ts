import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Docker } from "../../lib/docker.ts";
import { BottleError } from "../../lib/errors.ts";
import { recordingExec } from "../helpers/exec.ts";
import {
  BASE_LABEL,
  baseImage,
  caCertFiles,
  customImageSpec,
  DEFAULT_BASE_IMAGE,
  ensureImage,
  FROM_LABEL,
  HASH_LABEL,
  imageCurrent,
  type ImageRef,
  type ImageSpec,
  imageHash,
  imageRef,
  npmRegistry,
  parseImageTag,
  plannedImages,
} from "../../lib/images.ts";
import { cleanupTempDirs, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

function spec(overrides: Partial<ImageSpec> = {}): ImageSpec {
  return {
    kind: "agent",
    dockerfile: "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY bottle-run.sh /usr/local/bin/bottle-run\n",
    files: { "bottle-run.sh": "#!/bin/sh\nexec \"$@\"\n", "ca-certs/.keep": "" },
    buildArgs: { BASE_IMAGE: "debian:trixie-slim", CLAUDE_CODE_VERSION: "1.0.0" },
    inputs: ["debian:trixie-slim@sha256:abc"],
    ...overrides,
  };
}

describe("imageHash", () => {
  const base = imageHash(spec());

  test("is a sha256 hex digest, stable for the same spec", () => {
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(imageHash(spec())).toBe(base);
  });

  test("the order of object keys does not matter", () => {
    const reordered = spec({
      files: { "ca-certs/.keep": "", "bottle-run.sh": "#!/bin/sh\nexec \"$@\"\n" },
      buildArgs: { CLAUDE_CODE_VERSION: "1.0.0", BASE_IMAGE: "debian:trixie-slim" },
    });
    expect(Object.keys(reordered.files)[0]).toBe("ca-certs/.keep");
    expect(imageHash(reordered)).toBe(base);
  });

  test("changes when anything that goes into the build changes", () => {
    const variants: Record<string, ImageSpec> = {
      kind: spec({ kind: "gate" }),
      dockerfile: spec({ dockerfile: `${spec().dockerfile}RUN true\n` }),
      "file content": spec({ files: { ...spec().files, "bottle-run.sh": "#!/bin/sh\nexec \"$@\" \n" } }),
      "file name": spec({ files: { "bottle-run2.sh": spec().files["bottle-run.sh"]!, "ca-certs/.keep": "" } }),
      "added file": spec({ files: { ...spec().files, "ca-certs/extra-000.crt": "cert" } }),
      "build arg value": spec({ buildArgs: { ...spec().buildArgs, CLAUDE_CODE_VERSION: "1.0.1" } }),
      "build arg key": spec({ buildArgs: { BASE_IMAGE: "debian:trixie-slim", CLAUDE_CODE_VERSIONS: "1.0.0" } }),
      "added build arg": spec({ buildArgs: { ...spec().buildArgs, NPM_REGISTRY: "https://registry.npmjs.org" } }),
      input: spec({ inputs: ["debian:trixie-slim@sha256:abd"] }),
      "added input": spec({ inputs: [...spec().inputs, "more"] }),
    };
    const hashes = new Map<string, string>([["base", base]]);
    for (const [what, variant] of Object.entries(variants)) {
      const hash = imageHash(variant);
      expect([what, hash]).not.toEqual([what, base]);
      hashes.set(what, hash);
    }
    // And all variants differ from each other.
    expect(new Set(hashes.values()).size).toBe(hashes.size);
  });

  test("parts cannot run into each other (content moved between file name and body)", () => {
    const a = spec({ files: { ab: "c" } });
    const b = spec({ files: { a: "bc" } });
    expect(imageHash(a)).not.toBe(imageHash(b));
  });

  test("a context dir is hashed by its files (size, mtime), ignoring .git and node_modules", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "Dockerfile"), "RUN true\n");
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "data.txt"), "one");
    const fixed = new Date("2024-01-01T00:00:00Z");
    utimesSync(join(dir, "sub", "data.txt"), fixed, fixed);
    const withContext = spec({ contextDir: dir });
    const first = imageHash(withContext);
    expect(first).not.toBe(base);
    expect(imageHash(withContext)).toBe(first);

    for (const ignored of [".git", "node_modules"]) {
      mkdirSync(join(dir, ignored), { recursive: true });
      writeFileSync(join(dir, ignored, "x"), String(Math.random()));
    }
    expect(imageHash(withContext)).toBe(first);

    writeFileSync(join(dir, "sub", "data.txt"), "two!");
    utimesSync(join(dir, "sub", "data.txt"), fixed, fixed);
    const resized = imageHash(withContext);
    expect(resized).not.toBe(first);

    utimesSync(join(dir, "sub", "data.txt"), new Date("2024-02-01T00:00:00Z"), new Date("2024-02-01T00:00:00Z"));
    expect(imageHash(withContext)).not.toBe(resized);
  });
});

describe("imageRef", () => {
  test("tag is bottle-<kind>:<first 16 hex of the hash>", () => {
    const ref = imageRef(spec({ kind: "gate" }));
    expect(ref.kind).toBe("gate");
    expect(ref.hash).toBe(imageHash(spec({ kind: "gate" })));
    expect(ref.tag).toBe(`bottle-gate:${ref.hash.slice(0, 16)}`);
  });
});

describe("baseImage / npmRegistry", () => {
  test("environment overrides with defaults", () => {
    expect(baseImage({})).toBe(DEFAULT_BASE_IMAGE);
    expect(baseImage({ BOTTLE_BASE_IMAGE: "ubuntu:24.04" })).toBe("ubuntu:24.04");
    expect(npmRegistry({})).toBe("https://registry.npmjs.org");
    expect(npmRegistry({ npm_config_registry: "https://npm.corp" })).toBe("https://npm.corp");
    expect(npmRegistry({ npm_config_registry: "https://npm.corp", BOTTLE_NPM_REGISTRY: "https://bottle" })).toBe("https://bottle");
  });
});

describe("parseImageTag", () => {
  test("reads back the kind and hash prefix of every tag imageRef makes, and nothing else", () => {
    for (const kind of ["agent", "gate", "custom", "plumbing"] as const) {
      const ref = imageRef(spec({ kind }));
      expect(parseImageTag(ref.tag)).toEqual({ kind, hashPrefix: ref.hash.slice(0, 16) });
    }
    for (const other of ["bottle-agent:0123456789ABCDEF", "bottle-agent:0123456789abcde", "bottle-other:0123456789abcdef", "vsc-ws-1-uid:latest", "x/bottle-gate:0123456789abcdef"])
      expect(parseImageTag(other)).toBeUndefined();
  });
});

describe("customImageSpec", () => {
  const agent: ImageRef = { kind: "agent", tag: "bottle-agent:0123456789abcdef", hash: "ab".repeat(32) };

  function dockerfile(content: string): string {
    const dir = tempDir();
    const path = join(dir, "image.Dockerfile");
    writeFileSync(path, content);
    return path;
  }

  test("prepends FROM <agent tag> and returns to the agent user", () => {
    const path = dockerfile("USER root\nRUN apt-get install -y jq\n");
    const custom = customImageSpec(agent, path);
    expect(custom.kind).toBe("custom");
    expect(custom.dockerfile.startsWith(`FROM ${agent.tag}\nUSER root\nRUN apt-get install -y jq\n`)).toBe(true);
    expect(custom.dockerfile.trimEnd().endsWith("USER agent\nWORKDIR /workspace")).toBe(true);
    expect(custom.inputs).toEqual([agent.hash]);
    expect(custom.contextDir).toBe(join(path, ".."));
    // Image cleanup keeps the agent image a kept custom image was built FROM.
    expect(custom.labels).toEqual({ [FROM_LABEL]: agent.tag });
  });

  test("the custom hash follows the agent image", () => {
    const path = dockerfile("RUN true\n");
    const one = imageHash(customImageSpec(agent, path));
    const other = imageHash(customImageSpec({ ...agent, hash: "cd".repeat(32), tag: "bottle-agent:fedcba9876543210" }, path));
    expect(one).not.toBe(other);
  });

  test("a FROM line is refused with file:line and a fix", () => {
    const path = dockerfile("# extra tools\n\nRUN true\n  from debian:12\n");
    let error: unknown;
    try {
      customImageSpec(agent, path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BottleError);
    expect((error as BottleError).message).toBe(`${path}:4: image.dockerfile must not have a FROM line`);
    expect((error as BottleError).fix).toContain("remove it");
  });

  test("FROM inside a word or an argument is not a FROM line", () => {
    const path = dockerfile("RUN echo FROM here\nLABEL note=FROM\n");
    expect(() => customImageSpec(agent, path)).not.toThrow();
  });

  test("an unreadable Dockerfile is a BottleError naming it", () => {
    const path = join(tempDir(), "missing.Dockerfile");
    expect(() => customImageSpec(agent, path)).toThrow(`cannot read the bottle's image.dockerfile ${path}`);
  });
});

function fakePem(seed: string): string {
  const body = Buffer.from(seed.repeat(48)).toString("base64").replace(/(.{64})/g, "$1\n").trim();
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`;
}

describe("caCertFiles", () => {
  const one = fakePem("one");
  const two = fakePem("two");
  const three = fakePem("three");

  test("no certificates: only the placeholder that keeps the dir", () => {
    expect(caCertFiles([], {})).toEqual({ "ca-certs/.keep": "" });
  });

  test("a bundle is split into one file per certificate", () => {
    const path = join(tempDir(), "bundle.pem");
    writeFileSync(path, `# corporate roots\n${one}\n\nsome text between\n${two}\n`);
    expect(caCertFiles([path], {})).toEqual({
      "ca-certs/.keep": "",
      "ca-certs/extra-000.crt": `${one}\n`,
      "ca-certs/extra-001.crt": `${two}\n`,
    });
  });

  test("duplicates (also across files and CRLF line endings) are kept once, in order", () => {
    const dir = tempDir();
    const a = join(dir, "a.pem");
    const b = join(dir, "b.pem");
    writeFileSync(a, `${one}\n${two}\n${one}\n`);
    writeFileSync(b, `${two.replace(/\n/g, "\r\n")}\r\n${three}\n`);
    expect(caCertFiles([a, b], {})).toEqual({
      "ca-certs/.keep": "",
      "ca-certs/extra-000.crt": `${one}\n`,
      "ca-certs/extra-001.crt": `${two}\n`,
      "ca-certs/extra-002.crt": `${three}\n`,
    });
  });

  test("NODE_EXTRA_CA_CERTS / SSL_CERT_FILE bundles are added when the files exist", () => {
    const dir = tempDir();
    const extra = join(dir, "extra.pem");
    writeFileSync(extra, three);
    const own = join(dir, "own.pem");
    writeFileSync(own, one);
    const files = caCertFiles([own], { NODE_EXTRA_CA_CERTS: extra, SSL_CERT_FILE: join(dir, "missing.pem") });
    expect(Object.values(files)).toEqual(["", `${one}\n`, `${three}\n`]);
  });

  test("a file without a PEM certificate, or a missing one, is a BottleError", () => {
    const path = join(tempDir(), "not.pem");
    writeFileSync(path, "hello");
    expect(() => caCertFiles([path], {})).toThrow(BottleError);
    expect(() => caCertFiles([path], {})).toThrow(`${path} holds no PEM certificate`);
    expect(() => caCertFiles([join(tempDir(), "nope.pem")], {})).toThrow("cannot read CA certificate file");
  });
});

describe("imageCurrent / ensureImage: the base is a label, not part of the tag", () => {
  const BASE = "debian:trixie-slim@sha256:abc";
  /** A docker whose only image is `tag`, labelled with `base` (or unlabelled). */
  function dockerWithImage(tag: string, base?: string) {
    const exec = recordingExec((argv) => {
      if (argv[1] === "image" && argv[2] === "inspect")
        return argv.at(-1) === tag ? { stdout: JSON.stringify({ Id: "sha256:img", Config: { Labels: base ? { [BASE_LABEL]: base } : null } }) } : { exitCode: 1, stderr: "Error: No such image" };
      return { exitCode: 0 };
    });
    return { exec, docker: new Docker(exec, "docker") };
  }

  test("the base does not change the tag", () => {
    expect(imageRef({ ...spec(), base: BASE }).tag).toBe(imageRef({ ...spec(), base: "debian:trixie-slim@sha256:other" }).tag);
  });

  test("current: present and built on the expected base; a missing image or another base is not", async () => {
    const ref = imageRef(spec());
    expect(await imageCurrent(dockerWithImage(ref.tag, BASE).docker, ref, BASE)).toBe(true);
    expect(await imageCurrent(dockerWithImage(ref.tag, BASE).docker, ref, Promise.resolve(BASE))).toBe(true);
    expect(await imageCurrent(dockerWithImage(ref.tag, "debian:trixie-slim@sha256:old").docker, ref, BASE)).toBe(false);
    expect(await imageCurrent(dockerWithImage(ref.tag).docker, ref, BASE)).toBe(false);
    expect(await imageCurrent(dockerWithImage("bottle-agent:other").docker, ref, BASE)).toBe(false);
    // Images without a base (plumbing) only need to exist.
    expect(await imageCurrent(dockerWithImage(ref.tag).docker, ref, undefined)).toBe(true);
  });

  test("a spec's own labels go on the build, beside (never over) bottle's", async () => {
    const state = tempDir();
    const s = { ...spec(), base: BASE, labels: { [FROM_LABEL]: "bottle-agent:0123456789abcdef", [HASH_LABEL]: "forged" } };
    const { exec, docker } = dockerWithImage("none");
    const { ref } = await ensureImage(docker, s, { XDG_CACHE_HOME: state });
    const build = exec.calls.find((call) => call.argv[1] === "build")!.argv;
    expect(build).toContain(`${FROM_LABEL}=bottle-agent:0123456789abcdef`);
    expect(build).toContain(`${HASH_LABEL}=${ref.hash}`);
    expect(build).not.toContain(`${HASH_LABEL}=forged`);
  });

  test("an image built on another base is rebuilt under the same tag, labelled with the new base", async () => {
    const state = tempDir();
    const s = { ...spec(), base: BASE };
    const { exec, docker } = dockerWithImage(imageRef(s).tag, "debian:trixie-slim@sha256:old");
    const { ref, built } = await ensureImage(docker, s, { XDG_CACHE_HOME: state });
    expect(built).toBe(true);
    const build = exec.calls.find((call) => call.argv[1] === "build")!.argv;
    expect(build).toContain(`${BASE_LABEL}=${BASE}`);
    expect(build[build.indexOf("--tag") + 1]).toBe(ref.tag);
    expect(build).toContain(`${HASH_LABEL}=${ref.hash}`);
    // The old image, now untagged, is removed without --force (a running bottle or another tag keeps it).
    expect(exec.calls.at(-1)!.argv).toEqual(["docker", "image", "rm", "sha256:img"]);
  });
});

describe("plannedImages: planning's image questions in one docker call", () => {
  const env = { BOTTLE_BASE_IMAGE: "debian:trixie-slim" };
  const agent: ImageRef = { kind: "agent", tag: "bottle-agent:aaa", hash: "aaa" };
  const gate: ImageRef = { kind: "gate", tag: "bottle-gate:ggg", hash: "ggg" };
  /** A docker holding `images` (tag → base label), answering a multi-ref inspect as the CLI does. */
  function engine(images: Record<string, string | undefined>) {
    const exec = recordingExec((argv) => {
      if (argv[1] !== "image" || argv[2] !== "inspect") return undefined;
      const refs = argv.slice(5);
      const found = refs.filter((ref) => ref in images);
      const lines = found.map((ref) => JSON.stringify({ Id: `sha256:${ref}`, Config: { Labels: images[ref] ? { [BASE_LABEL]: images[ref] } : null } }));
      const missing = refs.filter((ref) => !(ref in images));
      return { stdout: lines.map((line) => `${line}\n`).join(""), stderr: missing.map((ref) => `Error: No such image: ${ref}\n`).join(""), exitCode: missing.length ? 1 : 0 };
    });
    return { exec, docker: new Docker(exec, "docker") };
  }

  test("all present and current: one call, the base with its id, nothing missing", async () => {
    const base = "debian:trixie-slim@sha256:debian:trixie-slim";
    const { exec, docker } = engine({ "debian:trixie-slim": undefined, [agent.tag]: base, [gate.tag]: base });
    expect(await plannedImages(docker, [agent, gate], env)).toEqual({ base, missing: [] });
    expect(exec.calls.map((call) => call.argv)).toEqual([["docker", "image", "inspect", "--format", "{{json .}}", "debian:trixie-slim", agent.tag, gate.tag]]);
  });

  test("one missing: each is asked on its own, so the answers cannot shift onto the wrong image", async () => {
    const base = "debian:trixie-slim@sha256:debian:trixie-slim";
    const { exec, docker } = engine({ "debian:trixie-slim": undefined, [gate.tag]: base });
    expect(await plannedImages(docker, [agent, gate], env)).toEqual({ base, missing: [agent.tag] });
    expect(exec.calls).toHaveLength(4);
  });

  test("no base locally, and an image built on another base, are both rebuilt", async () => {
    const { docker } = engine({ [agent.tag]: "debian:trixie-slim@sha256:old", [gate.tag]: "debian:trixie-slim@remote" });
    expect(await plannedImages(docker, [agent, gate], env)).toEqual({ base: "debian:trixie-slim@remote", missing: [agent.tag] });
  });
});
