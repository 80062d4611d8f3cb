import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ManifestError, resolveBottle } from "../../../lib/manifest/index.ts";
import { bottleErrorFor, sandbox, thrown, type Sandbox } from "./helpers.ts";

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

const errorFor = (text: string): string => bottleErrorFor(box, text);

describe("bottle schema errors name file:line:col and the field path", () => {
  test("the issue's example: a URL in egress.allow", () => {
    const message = errorFor(
      ["# yaml-language-server: $schema=../schema/bottle.json", "workspace: mount", "egress:", "  allow:", "  - github.com", '  - "*.npmjs.org"', "  - https://x.com", ""].join("\n"),
    );
    expect(message).toBe('~/.config/bottle/bottles/dev.yaml:7:5: egress.allow[2]: expected a host name, got "https://x.com" — write the host only: x.com');
  });

  const cases: Array<[string, string]> = [
    ["unknown top-level key with a hint", "egres:\n  allow: [github.com]\n"],
    ["unknown nested key with a hint", "egress:\n  alow: [github.com]\n"],
    ["unknown key without a close match", "flavour: vanilla\n"],
    ["top level is a list", "- a\n- b\n"],
    ["top level is a scalar", "just text\n"],
    ["YAML syntax error", "egress:\n  allow: [github.com\nworkspace: mount\n"],
    ["YAML bad indentation", "egress:\n  allow:\n - a.com\n   - b.com\n"],
    ["duplicate keys", "workspace: mount\nworkspace: copy\n"],
    ["URL with a port and path in allow", "egress:\n  allow:\n    - https://x.com:8443/api\n"],
    ["URL with credentials in allow is not echoed with them", "egress:\n  allow:\n    - https://user:hunter2@x.com/\n"],
    ["host/path in allow", "egress:\n  allow: [github.com/anthropics]\n"],
    ["wildcard on a TLD", 'egress:\n  allow: ["*.com"]\n'],
    ["wildcard in the middle", 'egress:\n  allow: ["api.*.example.com"]\n'],
    ["port out of range", "egress:\n  allow: [example.com:70000]\n"],
    ["trailing dot", "egress:\n  allow: [example.com.]\n"],
    ["invalid characters", "egress:\n  allow: [exa_mple.com]\n"],
    ["allow is not a list", "egress:\n  allow: github.com\n"],
    ["allow entry is a number", "egress:\n  allow: [42]\n"],
    ["allow_private: bad CIDR prefix", "egress:\n  allow_private: [10.0.0.0/33]\n"],
    ["allow_private: CIDR of a name", "egress:\n  allow_private: [intranet/8]\n"],
    ["allow_private: URL", "egress:\n  allow_private: [http://10.0.0.1/]\n"],
    ["allow_private: wildcard", 'egress:\n  allow_private: ["*.corp.example"]\n'],
    ["env: invalid variable name", "env:\n  1TOKEN: abc\n  MY-VAR: def\n"],
    ["env: value is a list", "env:\n  TOKEN: [a, b]\n"],
    ["env: value is empty", "env:\n  TOKEN:\n"],
    ["env: text mixed with ${…}", 'env:\n  URL: "https://${HOST}/x"\n'],
    ["env: shell syntax inside ${…}", 'env:\n  TOKEN: "${TOKEN:-x}"\n'],
    ["env: reserved name", "env:\n  constructor: x\n"],
    ["env is a list", "env:\n  - TOKEN=x\n"],
    ["git.user: bad email and unknown key", "git:\n  user:\n    name: A\n    email: not-an-email\n    mail: a@b.c\n"],
    [
      "git remote: https upstream",
      "git:\n  remotes:\n    origin:\n      upstream: https://github.com/a/b.git\n      identity_file: ~/.ssh/id\n      known_host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n",
    ],
    [
      "git remote: upstream with a password is not echoed",
      "git:\n  remotes:\n    origin:\n      upstream: ssh://git:hunter2@example.com/a.git\n      identity_file: ~/.ssh/id\n      known_host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n",
    ],
    ["git remote: missing fields", "git:\n  remotes:\n    origin:\n      upstream: git@github.com:a/b.git\n"],
    [
      "git remote: bad host key",
      "git:\n  remotes:\n    origin:\n      upstream: git@github.com:a/b.git\n      identity_file: ~/.ssh/id\n      known_host_key: not a key\n",
    ],
    ["git remote: invalid remote name", "git:\n  remotes:\n    -bad:\n      upstream: git@github.com:a/b.git\n      identity_file: k\n      known_host_key: ssh-rsa AAAA\n"],
    [
      "ssh host: user in host, port as text",
      "ssh:\n  hosts:\n    - host: deploy@build.example.com\n      port: twenty-two\n      identity_file: k\n      known_host_key: ssh-ed25519 AAAA\n",
    ],
    ["ssh host: port 0 and missing key", "ssh:\n  hosts:\n    - host: build.example.com\n      port: 0\n      identity_file: k\n"],
    ["ssh host: host:port", "ssh:\n  hosts:\n    - host: build.example.com:2222\n      identity_file: k\n      known_host_key: ssh-ed25519 AAAA\n"],
    ["ssh hosts is a mapping", "ssh:\n  hosts:\n    host: a\n"],
    ["workspace: unknown mode", "workspace: bind\n"],
    ["backend: unknown", "backend: podman\n"],
    ["ca_certs: not a list", "ca_certs: ./ca.pem\n"],
    ["ca_certs: empty path", 'ca_certs: [""]\n'],
    ["image: unknown key and missing dockerfile", "image:\n  file: ./Dockerfile\n"],
    ["extends: not a name", "extends: Base\n"],
    ["extends: a mapping", "extends:\n  base: true\n"],
  ];
  for (const [name, text] of cases) {
    test(name, () => {
      expect(errorFor(text)).toMatchSnapshot();
    });
  }

  test("all errors of a file are reported at once, in file order", () => {
    const text = [
      "egres: {}", // 1
      "env:", // 2
      "  9LIVES: x", // 3
      "egress:", // 4
      "  allow:", // 5
      "    - https://x.com", // 6
      "    - ok.example.com", // 7
      "    - bad_host", // 8
      "workspace: bind", // 9
      "",
    ].join("\n");
    box.bottle("dev", text);
    const error = thrown(() => resolveBottle("dev", { env: box.env })) as ManifestError;
    expect(error.issues.map((issue) => [issue.line, issue.col, issue.path])).toEqual([
      [1, 1, "egres"],
      [3, 3, "env.9LIVES"],
      [6, 7, "egress.allow[0]"],
      [8, 7, "egress.allow[2]"],
      [9, 12, "workspace"],
    ]);
    expect(error.message.split("\n")).toHaveLength(5);
    expect(error.issues.every((issue) => issue.file === box.normalize(issue.file).replace("<tmp>", box.root))).toBe(true);
    expect(box.normalize(error.message)).toMatchSnapshot();
  });
});

describe("valid bottles", () => {
  test("an empty file is an empty bottle", () => {
    box.bottle("dev", "");
    const bottle = resolveBottle("dev", { env: box.env });
    expect(bottle.workspace).toBe("mount");
    expect(bottle.egress).toEqual({ allow: [], presets: [], allowPrivate: [], routes: [], limits: {} });
  });

  test("every field, with paths resolved and defaults applied", () => {
    const file = box.bottle(
      "dev",
      `
env:
  LITERAL: plain
  NUMBER: 42
  FROM_HOST: \${GITHUB_TOKEN}
  ASKED: "?Database password"
egress:
  allow: [GitHub.com, "*.npmjs.org", "registry.example.com:8443", 93.184.216.34]
  allow_private: [10.0.0.0/8, "fd00::/8", 192.168.1.10, "::1", intranet.corp]
git:
  user: { name: Dev, email: dev@example.com }
  remotes:
    origin:
      upstream: git@github.com:me/repo.git
      identity_file: ~/.ssh/id_bottle
      known_host_key: github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
    mirror:
      upstream: ssh://git@git.example.com:2222/team/repo.git
      identity_file: keys/mirror
      known_host_key: ecdsa-sha2-nistp256 AAAAE2VjZHNh
ssh:
  hosts:
    - host: build.example.com
      identity_file: /abs/key
      known_host_key: ssh-rsa AAAAB3NzaC1yc2E=
    - host: 10.1.2.3
      port: 2222
      user: deploy
      identity_file: ../k
      known_host_key: ssh-ed25519 AAAA
workspace: copy
ca_certs: [./corp.pem, ~/certs/root.pem, /etc/ssl/x.pem]
image:
  dockerfile: ./dev.Dockerfile
backend: docker
`,
    );
    const bottle = resolveBottle("dev", { env: box.env });
    const dir = `${box.config}/bottles`;
    expect(bottle.sources).toEqual([file]);
    expect(Object.fromEntries(Object.entries(bottle.env).map(([k, v]) => [k, v.source]))).toEqual({
      LITERAL: { kind: "literal", value: "plain" },
      NUMBER: { kind: "literal", value: "42" },
      FROM_HOST: { kind: "host", variable: "GITHUB_TOKEN" },
      ASKED: { kind: "ask", question: "Database password" },
    });
    expect(bottle.env.FROM_HOST).toMatchObject({ file, line: 5, col: 14 });
    expect(bottle.egress.allow).toEqual(["github.com", "*.npmjs.org", "registry.example.com:8443", "93.184.216.34"]);
    expect(bottle.egress.allowPrivate).toEqual(["10.0.0.0/8", "fd00::/8", "192.168.1.10", "::1", "intranet.corp"]);
    expect(bottle.git.user).toEqual({ name: "Dev", email: "dev@example.com" });
    expect(bottle.git.remotes).toEqual({
      origin: {
        upstream: "git@github.com:me/repo.git",
        identityFile: `${box.root}/.ssh/id_bottle`,
        knownHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
      },
      mirror: { upstream: "ssh://git@git.example.com:2222/team/repo.git", identityFile: `${dir}/keys/mirror`, knownHostKey: "ecdsa-sha2-nistp256 AAAAE2VjZHNh" },
    });
    expect(bottle.ssh.hosts).toEqual([
      { host: "build.example.com", port: 22, identityFile: "/abs/key", knownHostKey: "ssh-rsa AAAAB3NzaC1yc2E=" },
      { host: "10.1.2.3", port: 2222, user: "deploy", identityFile: `${box.config}/k`, knownHostKey: "ssh-ed25519 AAAA" },
    ]);
    expect(bottle.workspace).toBe("copy");
    expect(bottle.caCerts).toEqual([`${dir}/corp.pem`, `${box.root}/certs/root.pem`, "/etc/ssl/x.pem"]);
    expect(bottle.image).toEqual({ dockerfile: `${dir}/dev.Dockerfile` });
    expect(bottle.backend).toBe("docker");
  });

  test("an invalid bottle name is refused before any file is read", () => {
    expect(box.normalize(thrown(() => resolveBottle("Dev", { env: box.env })).message)).toMatchSnapshot();
  });
});

describe("egress.limits", () => {
  test("per field, later files win; seconds become milliseconds for the gate", () => {
    const box = sandbox();
    box.bottle("base", "egress:\n  limits: { requests_per_minute: 60, idle_timeout_seconds: 30 }\n");
    box.bottle("dev", "extends: base\negress:\n  limits: { requests_per_minute: 120, max_tunnel_seconds: 3600 }\n");
    const bottle = resolveBottle("dev", { env: box.env });
    expect(bottle.egress.limits).toEqual({ requestsPerMinute: 120, idleTimeoutMs: 30_000, maxTunnelMs: 3_600_000 });
  });

  test("a negative or fractional limit and an unknown limit are positioned errors", () => {
    const box = sandbox();
    box.bottle("dev", "egress:\n  limits:\n    bytes_out: -1\n    requests_per_minute: 1.5\n    request_per_minute: 3\n");
    const error = thrown(() => resolveBottle("dev", { env: box.env }));
    expect(error.message).toContain("dev.yaml:3:16: egress.limits.bytes_out: must be 0 or more (0 = no limit)");
    expect(error.message).toContain("dev.yaml:4:26: egress.limits.requests_per_minute: expected a whole number");
    expect(error.message).toContain("egress.limits.request_per_minute");
    expect(error.message).toContain("did you mean");
  });

  test("max_log_bytes caps each gate log; a cap too small to hold a log is a positioned error with the fix", () => {
    const box = sandbox();
    box.bottle("base", "egress:\n  limits: { max_log_bytes: 1048576 }\n");
    box.bottle("dev", "extends: base\negress:\n  limits: { requests_per_minute: 60 }\n");
    expect(resolveBottle("dev", { env: box.env }).egress.limits).toEqual({ maxLogBytes: 1_048_576, requestsPerMinute: 60 });
    box.bottle("off", "egress:\n  limits: { max_log_bytes: 0 }\n");
    expect(resolveBottle("off", { env: box.env }).egress.limits).toEqual({ maxLogBytes: 0 });
    box.bottle("tiny", "egress:\n  limits:\n    max_log_bytes: 4096\n");
    expect(thrown(() => resolveBottle("tiny", { env: box.env })).message).toContain(
      "tiny.yaml:3:20: egress.limits.max_log_bytes: 4096 bytes is too small for a gate log — use at least 65536 (64 KiB), or 0 for no cap",
    );
    box.bottle("text", "egress:\n  limits:\n    max_log_bytes: 64MiB\n");
    expect(thrown(() => resolveBottle("text", { env: box.env })).message).toContain("text.yaml:3:20: egress.limits.max_log_bytes: expected a whole number, got text");
  });
});
