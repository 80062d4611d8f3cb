import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { BottleError } from "../../../lib/errors.ts";
import { ManifestError, resolveAgentAndBottle, resolveBottle } from "../../../lib/manifest/index.ts";
import { captureWarnings, rejected, sandbox, thrown, type Sandbox } from "./helpers.ts";

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA";

describe("extends merges parents left to right, then the child", () => {
  test("env by key, hosts union, remotes by name, git user per field, scalars later-wins", () => {
    const base = box.bottle(
      "base",
      `env:
  SHARED: base
  BASE_ONLY: b
egress:
  allow: [github.com, a.example.com]
  allow_private: [10.0.0.0/8]
git:
  user: { name: Base, email: base@example.com }
  remotes:
    origin: { upstream: "git@github.com:base/repo.git", identity_file: base-key, known_host_key: ${KEY} }
    tools: { upstream: "git@github.com:base/tools.git", identity_file: base-key, known_host_key: ${KEY} }
ssh:
  hosts:
    - { host: build.example.com, identity_file: k1, known_host_key: ${KEY} }
workspace: copy
ca_certs: [base.pem]
backend: smolmachines
`,
    );
    const extra = box.bottle(
      "extra",
      `env:
  SHARED: extra
  EXTRA_ONLY: e
egress:
  allow: [b.example.com, github.com]
workspace: none
ca_certs: [extra.pem]
`,
    );
    const dev = box.bottle(
      "dev",
      `extends: [base, extra]
env:
  SHARED: dev
egress:
  allow: [c.example.com, a.example.com]
  allow_private: [10.0.0.0/8, 192.168.0.0/16]
git:
  user: { email: dev@example.com }
  remotes:
    origin: { upstream: "git@github.com:dev/repo.git", identity_file: dev-key, known_host_key: ${KEY} }
ssh:
  hosts:
    - { host: build.example.com, port: 2222, identity_file: k2, known_host_key: ${KEY} }
    - { host: other.example.com, identity_file: k3, known_host_key: ${KEY} }
image:
  dockerfile: Dockerfile
`,
    );
    const bottle = resolveBottle("dev", { env: box.env });
    const dir = `${box.config}/bottles`;
    expect(bottle.name).toBe("dev");
    expect(bottle.sources).toEqual([base, extra, dev]);
    expect(Object.fromEntries(Object.entries(bottle.env).map(([k, v]) => [k, [v.source, v.file]]))).toEqual({
      SHARED: [{ kind: "literal", value: "dev" }, dev],
      BASE_ONLY: [{ kind: "literal", value: "b" }, base],
      EXTRA_ONLY: [{ kind: "literal", value: "e" }, extra],
    });
    expect(bottle.egress.allow).toEqual(["github.com", "a.example.com", "b.example.com", "c.example.com"]);
    expect(bottle.egress.allowPrivate).toEqual(["10.0.0.0/8", "192.168.0.0/16"]);
    expect(bottle.git.user).toEqual({ name: "Base", email: "dev@example.com" });
    expect(bottle.git.remotes.origin?.upstream).toBe("git@github.com:dev/repo.git");
    expect(bottle.git.remotes.origin?.identityFile).toBe(`${dir}/dev-key`);
    expect(bottle.git.remotes.tools?.upstream).toBe("git@github.com:base/tools.git");
    expect(bottle.ssh.hosts.map((h) => [h.host, h.port])).toEqual([
      ["build.example.com", 2222],
      ["other.example.com", 22],
    ]);
    expect(bottle.workspace).toBe("none");
    expect(bottle.caCerts).toEqual([`${dir}/base.pem`, `${dir}/extra.pem`]);
    expect(bottle.backend).toBe("smolmachines");
    expect(bottle.image).toEqual({ dockerfile: `${dir}/Dockerfile` });
    expect(bottle.origins).toMatchObject({
      workspace: extra,
      backend: base,
      "git.user.name": base,
      "git.user.email": dev,
      "git.remotes.origin": dev,
      "egress.allow.github.com": base,
      "egress.allow.c.example.com": dev,
    });
  });

  test("a single parent name works; grandparents come first", () => {
    const a = box.bottle("a", "workspace: copy\negress: { allow: [a.com] }\n");
    const b = box.bottle("b", "extends: a\negress: { allow: [b.com] }\n");
    const c = box.bottle("c", "extends: b\n");
    const bottle = resolveBottle("c", { env: box.env });
    expect(bottle.sources).toEqual([a, b, c]);
    expect(bottle.egress.allow).toEqual(["a.com", "b.com"]);
    expect(bottle.workspace).toBe("copy");
  });

  test("a diamond reads the shared parent once, before both children", () => {
    const d = box.bottle("d", "workspace: copy\n");
    const b = box.bottle("b", "extends: d\nworkspace: none\n");
    const c = box.bottle("c", "extends: d\n");
    const a = box.bottle("a", "extends: [b, c]\n");
    const bottle = resolveBottle("a", { env: box.env });
    expect(bottle.sources).toEqual([d, b, c, a]);
    expect(bottle.workspace).toBe("none");
  });

  test("extending `default` without a default.yaml uses the built-in one", () => {
    const dev = box.bottle("dev", "extends: default\n");
    expect(resolveBottle("dev", { env: box.env }).sources).toEqual(["(built-in)", dev]);
  });
});

describe("extends errors name the chain", () => {
  test("a cycle", () => {
    box.bottle("a", "extends: b\n");
    box.bottle("b", "workspace: mount\nextends: [c, a]\n");
    box.bottle("c", "{}\n");
    const error = thrown(() => resolveBottle("a", { env: box.env }));
    expect(error).toBeInstanceOf(ManifestError);
    expect(error.message).toContain("a → b → a");
    expect(box.normalize(error.message)).toMatchSnapshot();
  });

  test("a self-reference", () => {
    box.bottle("a", "extends: [a]\n");
    const error = thrown(() => resolveBottle("a", { env: box.env }));
    expect(error.message).toContain("a → a");
    expect(box.normalize(error.message)).toMatchSnapshot();
  });

  test("a missing parent, with a hint", () => {
    box.bottle("base", "{}\n");
    box.bottle("mid", "extends: bsae\n");
    box.bottle("dev", "extends: mid\n");
    const error = thrown(() => resolveBottle("dev", { env: box.env })) as ManifestError;
    expect(error.issues).toHaveLength(1);
    expect(error.message).toContain("dev → mid → bsae");
    expect(box.normalize(error.message)).toMatchSnapshot();
    expect(box.normalize(error.fix ?? "")).toMatchSnapshot();
  });

  test("a parent saved as .yml", () => {
    box.write(".config/bottle/bottles/base.yml", "{}\n");
    box.bottle("dev", "extends: base\n");
    expect(box.normalize(thrown(() => resolveBottle("dev", { env: box.env })).message)).toMatchSnapshot();
  });

  test("errors in several files of the chain come in one error", () => {
    box.bottle("base", "workspace: bind\n");
    box.bottle("dev", "extends: base\negress: { allow: [http://x.com] }\n");
    const error = thrown(() => resolveBottle("dev", { env: box.env })) as ManifestError;
    expect(error.issues.map((issue) => issue.file.split("/").pop())).toEqual(["dev.yaml", "base.yaml"]);
    expect(box.normalize(error.message)).toMatchSnapshot();
  });

  test("a missing bottle asked for on the command line lists the bottles", () => {
    box.bottle("work", "{}\n");
    const error = thrown(() => resolveBottle("wrok", { env: box.env }));
    expect(error).toBeInstanceOf(BottleError);
    expect(box.normalize(error.message)).toMatchSnapshot();
    expect(box.normalize((error as BottleError).fix ?? "")).toMatchSnapshot();
  });
});

describe("repositories cannot define bottles", () => {
  test("a project's .bottle/bottles/ is ignored with a warning that says why", async () => {
    const warn = captureWarnings();
    try {
      box.write("project/.bottle/bottles/dev.yaml", "egress: { allow: [evil.example.com] }\n");
      box.agent("coder", "---\nbottle: dev\n---\n", "project");
      const error = await rejected(resolveAgentAndBottle({ agent: "coder", projectDir: box.project, env: box.env }));
      expect(box.normalize(error.message)).toMatchSnapshot();
      expect(warn.messages()).toHaveLength(1);
      const message = box.normalize(warn.messages()[0]!);
      expect(message).toContain("cannot define or override bottles");
      expect(message).toMatchSnapshot();
    } finally {
      warn.restore();
    }
  });

  test("a project bottle does not override the user's bottle of the same name", async () => {
    const warn = captureWarnings();
    try {
      box.bottle("dev", "egress: { allow: [good.example.com] }\n");
      box.write("project/.bottle/bottles/dev.yaml", "egress: { allow: [evil.example.com] }\n");
      box.write("project/.bottle/bottles/default.yaml", "egress: { allow: [evil.example.com] }\n");
      const dev = await resolveAgentAndBottle({ bottle: "dev", projectDir: box.project, env: box.env });
      expect(dev.bottle.egress.allow).toEqual(["good.example.com"]);
      const fallback = await resolveAgentAndBottle({ projectDir: box.project, env: box.env });
      expect(fallback.bottle.sources).toEqual(["(built-in)"]);
      expect(fallback.bottle.egress.allow).toEqual([]);
    } finally {
      warn.restore();
    }
  });
});
