import { describe, expect, test } from "bun:test";
import { type ContainerSpec, classifyDockerFailure, containerArgs, Docker, dockerFailureError } from "../../lib/docker.ts";
import { BottleError } from "../../lib/errors.ts";
import { CommandError, realExec } from "../../lib/exec.ts";
import { recordingExec, type Responder } from "../helpers/exec.ts";
import { caught } from "../helpers/unit.ts";

function dockerWith(responder?: Responder, terminal = false) {
  const exec = recordingExec(responder, terminal);
  return { exec, docker: new Docker(exec, "docker") };
}

/** Parse one CSV record the way docker's `--mount` parser does (Go encoding/csv). */
function parseCsvRecord(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated quote in ${text}`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += text[i++];
      }
      if (i < text.length && text[i] !== ",") throw new Error(`extraneous text after quoted field in ${text}`);
    } else {
      while (i < text.length && text[i] !== ",") {
        if (text[i] === '"') throw new Error(`bare quote in non-quoted field in ${text}`);
        field += text[i++];
      }
    }
    fields.push(field);
    if (i >= text.length) return fields;
    i++; // the comma
  }
}

/** What docker would make of a `--mount` value: key/value pairs, refusing fields without `=` like docker does. */
function dockerMountFields(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of parseCsvRecord(value)) {
    const at = field.indexOf("=");
    if (at === -1) {
      if (field === "readonly" || field === "ro") out.readonly = "true";
      else throw new Error(`docker would refuse --mount ${value}: invalid field '${field}' must be a key=value pair`);
    } else out[field.slice(0, at)] = field.slice(at + 1);
  }
  return out;
}

describe("containerArgs", () => {
  test("a minimal spec is just the name and the image", () => {
    expect(containerArgs({ name: "bottle-x", image: "img:1" })).toEqual(["--name", "bottle-x", "img:1"]);
  });

  test("a full spec maps every field to its flag, image and command last", () => {
    const spec: ContainerSpec = {
      name: "bottle-x",
      image: "bottle-agent:abc",
      labels: { "bottle.name": "bottle-x", "bottle.role": "bottle" },
      network: "bottle-x-internal",
      networkAliases: ["agent", "bottle"],
      ip: "10.1.2.3",
      env: { HTTPS_PROXY: "http://gate:3128", NO_PROXY: "localhost,127.0.0.1" },
      mounts: [
        { source: "/home/u/project", target: "/workspace" },
        { source: "/home/u/project/.env", target: "/workspace/.env", readonly: true },
      ],
      capDrop: ["ALL"],
      capAdd: ["CHOWN", "SETUID"],
      securityOpt: ["no-new-privileges", "seccomp=unconfined"],
      pidsLimit: 512,
      memory: 4 * 1024 ** 3,
      cpus: 1.5,
      runtime: "runsc",
      dns: ["10.1.2.2", "10.1.2.4"],
      user: "1000:1000",
      workdir: "/workspace",
      hostname: "bottle",
      entrypoint: "/usr/bin/tini",
      init: true,
      tmpfs: ["/tmp:rw,size=64m"],
      publish: ["127.0.0.1:8080:80", "9000"],
      sysctls: { "net.ipv6.conf.all.disable_ipv6": "1" },
      interactive: true,
      command: ["sleep", "infinity"],
    };
    expect(containerArgs(spec)).toEqual([
      "--name", "bottle-x",
      "--label", "bottle.name=bottle-x",
      "--label", "bottle.role=bottle",
      "--network", "bottle-x-internal",
      "--network-alias", "agent",
      "--network-alias", "bottle",
      "--ip", "10.1.2.3",
      "--env", "HTTPS_PROXY=http://gate:3128",
      "--env", "NO_PROXY=localhost,127.0.0.1",
      "--mount", "type=bind,source=/home/u/project,target=/workspace",
      "--mount", "type=bind,source=/home/u/project/.env,target=/workspace/.env,readonly",
      "--cap-drop", "ALL",
      "--cap-add", "CHOWN",
      "--cap-add", "SETUID",
      "--security-opt", "no-new-privileges",
      "--security-opt", "seccomp=unconfined",
      "--pids-limit", "512",
      "--memory", "4294967296", "--memory-swap", "4294967296",
      "--cpus", "1.5",
      "--runtime", "runsc",
      "--dns", "10.1.2.2",
      "--dns", "10.1.2.4",
      "--user", "1000:1000",
      "--workdir", "/workspace",
      "--hostname", "bottle",
      "--entrypoint", "/usr/bin/tini",
      "--init",
      "--tmpfs", "/tmp:rw,size=64m",
      "--publish", "127.0.0.1:8080:80",
      "--publish", "9000",
      "--sysctl", "net.ipv6.conf.all.disable_ipv6=1",
      "--interactive",
      "bottle-agent:abc", "sleep", "infinity",
    ]); // prettier-ignore
  });

  test("an empty entrypoint is still passed (it clears the image's)", () => {
    const args = containerArgs({ name: "n", image: "i", entrypoint: "" });
    expect(args).toEqual(["--name", "n", "--entrypoint", "", "i"]);
  });

  test("init: false and zero/empty limits add nothing", () => {
    expect(containerArgs({ name: "n", image: "i", init: false, pidsLimit: 0, memory: 0, cpus: 0, env: {}, mounts: [] })).toEqual(["--name", "n", "i"]);
  });

  test("a readonly mount is read back by docker as readonly, a writable one is not", () => {
    const args = containerArgs({
      name: "n",
      image: "i",
      mounts: [
        { source: "/a", target: "/x", readonly: true },
        { source: "/b", target: "/y", readonly: false },
      ],
    });
    const values = args.flatMap((arg, i) => (args[i - 1] === "--mount" ? [arg] : []));
    expect(values.map(dockerMountFields)).toEqual([
      { type: "bind", source: "/a", target: "/x", readonly: "true" },
      { type: "bind", source: "/b", target: "/y" },
    ]);
  });

  test("a mount source containing a comma survives docker's CSV parsing of --mount", () => {
    // A workspace such as ~/src/client,archive is a legal directory name.
    const args = containerArgs({ name: "n", image: "i", mounts: [{ source: "/home/u/src/client,archive", target: "/workspace" }] });
    const value = args[args.indexOf("--mount") + 1]!;
    expect(() => dockerMountFields(value)).not.toThrow();
    expect(dockerMountFields(value).source).toBe("/home/u/src/client,archive");
    expect(dockerMountFields(value).target).toBe("/workspace");
  });
});

describe("classifyDockerFailure", () => {
  test("docker CLI missing", () => {
    expect(classifyDockerFailure('Executable not found in $PATH: "docker"')).toBe("cli-missing");
    expect(classifyDockerFailure("ENOENT: no such file or directory, posix_spawn 'docker'")).toBe("cli-missing");
    expect(classifyDockerFailure("bash: docker: command not found")).toBe("cli-missing");
  });

  test("daemon down", () => {
    expect(
      classifyDockerFailure("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"),
    ).toBe("daemon-down");
    expect(classifyDockerFailure("error during connect: Get \"http://%2F%2F.%2Fpipe%2Fdocker_engine/v1.24/version\"")).toBe("daemon-down");
  });

  test("permission denied on the socket", () => {
    expect(
      classifyDockerFailure(
        'permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/containers/json": dial unix /var/run/docker.sock: connect: permission denied',
      ),
    ).toBe("permission-denied");
    expect(classifyDockerFailure("dial unix /var/run/docker.sock: connect: permission denied while trying to connect")).toBe("permission-denied");
  });

  test("ordinary docker errors are not classified", () => {
    expect(classifyDockerFailure("Error response from daemon: No such container: bottle-x")).toBeUndefined();
    expect(classifyDockerFailure("Error: No such image: bottle-agent:abc")).toBeUndefined();
    expect(classifyDockerFailure("")).toBeUndefined();
  });

  test("dockerFailureError gives a message, a fix and the details", () => {
    const error = dockerFailureError("permission-denied", "raw text");
    expect(error).toBeInstanceOf(BottleError);
    expect(error.message).toBe("permission denied on the Docker socket");
    expect(error.fix).toContain("usermod -aG docker");
    expect(error.details).toBe("raw text");
  });
});

describe("Docker.run failure handling", () => {
  test("daemon down becomes a BottleError with a fix", async () => {
    const stderr = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n";
    const { docker } = dockerWith(() => ({ exitCode: 1, stderr }));
    const error = (await caught(docker.ps())) as BottleError;
    expect(error).toBeInstanceOf(BottleError);
    expect(error).not.toBeInstanceOf(CommandError);
    expect(error.message).toBe("the Docker daemon is not running");
    expect(error.fix).toContain("start Docker");
    expect(error.details).toBe(stderr);
  });

  test("permission denied becomes a BottleError with a fix", async () => {
    const stderr =
      "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/version\": dial unix /var/run/docker.sock: connect: permission denied\n";
    const { docker } = dockerWith(() => ({ exitCode: 1, stderr }));
    const error = (await caught(docker.version())) as BottleError;
    expect(error.message).toBe("permission denied on the Docker socket");
    expect(error.fix).toContain("docker group");
  });

  test("a missing docker binary (real spawn) becomes a BottleError with an install fix", async () => {
    const docker = new Docker(realExec, "/nonexistent/bottle-unit/docker");
    const error = (await caught(docker.run(["version"]))) as BottleError;
    expect(error).toBeInstanceOf(BottleError);
    expect(error.message).toBe("the docker CLI is not installed (or not on PATH)");
    expect(error.fix).toContain("install Docker");
  });

  test("other failures stay CommandErrors", async () => {
    const { docker } = dockerWith(() => ({ exitCode: 1, stderr: "Error response from daemon: No such container: x" }));
    const error = await caught(docker.run(["start", "x"]));
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).message).toContain("docker start x failed (exit code: 1)");
  });

  test("a command inside `docker exec` that is missing is not reported as a missing docker CLI", async () => {
    // `docker exec` exits with the inner command's status and relays its stderr.
    const inner = [
      { exitCode: 127, stderr: "sh: 1: git: command not found\n" },
      { exitCode: 1, stderr: "Error: ENOENT: no such file or directory, open '/workspace/package.json'\n" },
    ];
    for (const answer of inner) {
      const { docker } = dockerWith(() => answer);
      const error = await caught(docker.execIn("bottle-x", ["sh", "-c", "git status && node build.js"]));
      expect(error).toBeInstanceOf(CommandError);
      expect((error as BottleError).message).not.toContain("docker CLI is not installed");
    }
  });

  test("the binary defaults to $BOTTLE_DOCKER, then docker", async () => {
    const saved = process.env.BOTTLE_DOCKER;
    try {
      delete process.env.BOTTLE_DOCKER;
      expect(new Docker(recordingExec()).binary).toBe("docker");
      process.env.BOTTLE_DOCKER = "/opt/podman-docker";
      const exec = recordingExec();
      await new Docker(exec).run(["start", "c"]);
      expect(exec.calls[0]!.argv).toEqual(["/opt/podman-docker", "start", "c"]);
    } finally {
      if (saved === undefined) delete process.env.BOTTLE_DOCKER;
      else process.env.BOTTLE_DOCKER = saved;
    }
  });
});

describe("Docker methods", () => {
  test("version and info parse --format '{{json .}}'", async () => {
    const { docker, exec } = dockerWith((argv) => {
      if (argv[1] === "version") return { stdout: JSON.stringify({ Client: { Version: "27.1.0" }, Server: { Version: "27.0.3" } }) };
      if (argv[1] === "info")
        return {
          stdout: JSON.stringify({
            Runtimes: { runc: {}, runsc: {} },
            ServerVersion: "27.0.3",
            DockerRootDir: "/srv/docker",
            OperatingSystem: "Debian",
            NCPU: 8,
            MemTotal: 16 * 1024 ** 3,
            CpuCfsQuota: true,
            MemoryLimit: true,
            SwapLimit: false,
          }),
        };
      return undefined;
    });
    expect(await docker.version()).toEqual({ client: "27.1.0", server: "27.0.3" });
    expect(await docker.info()).toEqual({
      runtimes: ["runc", "runsc"],
      serverVersion: "27.0.3",
      dockerRootDir: "/srv/docker",
      operatingSystem: "Debian",
      ncpu: 8,
      memTotal: 16 * 1024 ** 3,
      limits: { cpus: true, memory: true, swap: false, pids: true },
    });
    expect(exec.calls.map((c) => c.argv)).toEqual([
      ["docker", "version", "--format", "{{json .}}"],
      ["docker", "info", "--format", "{{json .}}"],
    ]);
  });

  test("version without a server reports unknown", async () => {
    const { docker } = dockerWith(() => ({ stdout: JSON.stringify({ Client: { Version: "27.1.0" } }) }));
    expect(await docker.version()).toEqual({ client: "27.1.0", server: "unknown" });
  });

  test("ps sends --all and filters, and parses JSON lines with Labels \"a=b,c=d\"", async () => {
    const rows = [
      { ID: "abc123", Names: "bottle-x", Image: "bottle-agent:1", State: "running", Status: "Up 2 minutes", CreatedAt: "2024-01-01 10:00:00 +0000 UTC", Labels: "bottle.name=bottle-x,bottle.role=bottle" },
      { ID: "def456", Names: "bottle-x-gate", Image: "bottle-gate:1", State: "exited", Status: "Exited (0)", CreatedAt: "2024-01-01 10:00:01 +0000 UTC", Labels: "a=b=c,empty=" },
      { ID: "0", Names: "bare" },
    ];
    const { docker, exec } = dockerWith(() => ({ stdout: `${rows.map((r) => JSON.stringify(r)).join("\n")}\n\n` }));
    const list = await docker.ps(["label=bottle.name", "status=running"]);
    expect(exec.calls[0]!.argv).toEqual([
      "docker", "ps", "--no-trunc", "--format", "{{json .}}", "--all", "--filter", "label=bottle.name", "--filter", "status=running",
    ]); // prettier-ignore
    expect(list).toEqual([
      {
        id: "abc123",
        name: "bottle-x",
        image: "bottle-agent:1",
        state: "running",
        status: "Up 2 minutes",
        createdAt: "2024-01-01 10:00:00 +0000 UTC",
        labels: { "bottle.name": "bottle-x", "bottle.role": "bottle" },
        ports: [],
      },
      {
        id: "def456",
        name: "bottle-x-gate",
        image: "bottle-gate:1",
        state: "exited",
        status: "Exited (0)",
        createdAt: "2024-01-01 10:00:01 +0000 UTC",
        labels: { a: "b=c", empty: "" },
        ports: [],
      },
      { id: "0", name: "bare", image: "", state: "", status: "", createdAt: "", labels: {}, ports: [] },
    ]);
  });

  test("ps(…, false) leaves out --all; empty output is an empty list", async () => {
    const { docker, exec } = dockerWith();
    expect(await docker.ps([], false)).toEqual([]);
    expect(exec.calls[0]!.argv).toEqual(["docker", "ps", "--no-trunc", "--format", "{{json .}}"]);
  });

  test("networkLs parses names and labels", async () => {
    const stdout = [
      JSON.stringify({ ID: "n1", Name: "bottle-x-internal", Labels: "bottle.name=bottle-x" }),
      JSON.stringify({ ID: "n2", Name: "bridge", Labels: "" }),
    ].join("\n");
    const { docker, exec } = dockerWith(() => ({ stdout }));
    expect(await docker.networkLs(["label=bottle.name"])).toEqual([
      { id: "n1", name: "bottle-x-internal", labels: { "bottle.name": "bottle-x" } },
      { id: "n2", name: "bridge", labels: {} },
    ]);
    expect(exec.calls[0]!.argv).toEqual(["docker", "network", "ls", "--no-trunc", "--format", "{{json .}}", "--filter", "label=bottle.name"]);
  });

  test("imageInspect returns undefined on a non-zero exit, without throwing", async () => {
    const { docker, exec } = dockerWith(() => ({ exitCode: 1, stderr: "Error: No such image: nope:1" }));
    expect(await docker.imageInspect("nope:1")).toBeUndefined();
    expect(exec.calls[0]!.argv).toEqual(["docker", "image", "inspect", "--format", "{{json .}}", "nope:1"]);
    expect(exec.calls[0]!.options).toMatchObject({ check: false });
  });

  test("imageInspect parses id, labels (null → {}) and size", async () => {
    const { docker } = dockerWith((argv) =>
      argv.at(-1) === "a"
        ? { stdout: JSON.stringify({ Id: "sha256:aaa", Size: 1234, Config: { Labels: { "bottle.hash": "h" } } }) }
        : { stdout: JSON.stringify({ Id: "sha256:bbb", Config: { Labels: null } }) },
    );
    expect(await docker.imageInspect("a")).toEqual({ id: "sha256:aaa", labels: { "bottle.hash": "h" }, size: 1234 });
    expect(await docker.imageInspect("b")).toEqual({ id: "sha256:bbb", labels: {}, size: 0 });
  });

  test("containerInspect and networkInspect: parsed JSON, or undefined when missing", async () => {
    const { docker } = dockerWith((argv) =>
      argv.at(-1) === "missing" ? { exitCode: 1, stderr: "Error: No such object" } : { stdout: JSON.stringify({ Id: "x", Name: "/x" }) },
    );
    expect(await docker.containerInspect("missing")).toBeUndefined();
    expect(await docker.networkInspect("missing")).toBeUndefined();
    expect((await docker.containerInspect("x"))?.Name).toBe("/x");
    expect((await docker.networkInspect("x"))?.Id).toBe("x");
  });

  test("runDetached and create return the trimmed id", async () => {
    const { docker, exec } = dockerWith(() => ({ stdout: "f00d\n" }));
    expect(await docker.runDetached({ name: "n", image: "i", command: ["true"] })).toBe("f00d");
    expect(await docker.create({ name: "m", image: "i" })).toBe("f00d");
    expect(exec.calls.map((c) => c.argv)).toEqual([
      ["docker", "run", "--detach", "--name", "n", "i", "true"],
      ["docker", "create", "--name", "m", "i"],
    ]);
  });

  test("build sends file, tag, labels, build args and context, and returns the last output line", async () => {
    const { docker, exec } = dockerWith(() => ({ stdout: "#1 noise\nsha256:deadbeef\n" }));
    const id = await docker.build({
      context: "/ctx",
      dockerfile: "/tmp/Dockerfile",
      tag: "bottle-agent:1",
      labels: { "bottle.hash": "h" },
      buildArgs: { BASE_IMAGE: "debian", NPM_REGISTRY: "https://r" },
    });
    expect(id).toBe("sha256:deadbeef");
    expect(exec.calls[0]!.argv).toEqual([
      "docker", "build", "--quiet", "--file", "/tmp/Dockerfile", "--tag", "bottle-agent:1",
      "--label", "bottle.hash=h",
      "--build-arg", "BASE_IMAGE=debian",
      "--build-arg", "NPM_REGISTRY=https://r",
      "/ctx",
    ]); // prettier-ignore
  });

  test("removals skip docker entirely when there is nothing to remove, and never fail", async () => {
    const { docker, exec } = dockerWith(() => ({ exitCode: 1, stderr: "Error: No such container" }));
    await docker.containerRm([]);
    await docker.networkRm([]);
    await docker.imageRm([]);
    expect(exec.calls).toHaveLength(0);
    await docker.containerRm(["a", "b"]);
    await docker.networkRm(["n"]);
    await docker.imageRm(["i:1"]);
    expect(exec.calls.map((c) => c.argv)).toEqual([
      ["docker", "rm", "--force", "--volumes", "a", "b"],
      ["docker", "network", "rm", "n"],
      ["docker", "image", "rm", "--force", "i:1"],
    ]);
  });

  test("networkCreate and networkConnect argv", async () => {
    const { docker, exec } = dockerWith(() => ({ stdout: "netid\n" }));
    expect(
      await docker.networkCreate("bottle-x-internal", {
        internal: true,
        subnet: "10.1.2.0/24",
        labels: { "bottle.name": "bottle-x" },
        driverOptions: { "com.docker.network.bridge.enable_ip_masquerade": "false" },
      }),
    ).toBe("netid");
    await docker.networkConnect("bottle-x-egress", "bottle-x-gate", { aliases: ["gate"], ip: "10.1.3.2" });
    expect(exec.calls.map((c) => c.argv)).toEqual([
      [
        "docker", "network", "create", "--driver", "bridge", "--internal",
        "--opt", "com.docker.network.bridge.enable_ip_masquerade=false",
        "--subnet", "10.1.2.0/24",
        "--label", "bottle.name=bottle-x",
        "bottle-x-internal",
      ],
      ["docker", "network", "connect", "--alias", "gate", "--ip", "10.1.3.2", "bottle-x-egress", "bottle-x-gate"],
    ]); // prettier-ignore
  });

  test("events passes the time window and parses JSON lines", async () => {
    const { docker, exec } = dockerWith(() => ({ stdout: '{"Action":"build"}\n{"Action":"tag"}\n' }));
    expect(await docker.events({ since: 100, until: 200, filters: ["type=image"] })).toEqual([{ Action: "build" }, { Action: "tag" }]);
    expect(exec.calls[0]!.argv).toEqual(["docker", "events", "--since", "100", "--until", "200", "--format", "{{json .}}", "--filter", "type=image"]);
  });

  test("copyArchiveIn streams the archive on stdin to `docker cp -` (not --archive: ownership comes from the headers)", async () => {
    const { docker, exec } = dockerWith();
    const archive = new Uint8Array([1, 2, 3]);
    await docker.copyArchiveIn("bottle-x", "/", archive);
    expect(exec.calls[0]!.argv).toEqual(["docker", "cp", "-", "bottle-x:/"]);
    expect((exec.calls[0]!.options as { stdin?: Uint8Array }).stdin).toBe(archive);
  });

  test("waitForLog resolves when the pattern shows, and otherwise throws with the last logs", async () => {
    const ok = dockerWith();
    await ok.docker.waitForLog("gate", "ready", 5000);
    expect(ok.exec.calls.map((c) => c.argv)).toEqual([["docker", "logs", "--follow", "gate"]]);

    const bad = dockerWith((argv) => (argv.includes("--follow") ? { exitCode: 1 } : { stdout: "out line\n", stderr: "fatal: bad config\n" }));
    const error = (await caught(bad.docker.waitForLog("gate", "ready", 5000))) as BottleError;
    expect(error).toBeInstanceOf(BottleError);
    expect(error.message).toBe("gate did not become ready within 5s; its last output:\n    out line\n    fatal: bad config");
    expect(error.details).toBe("out line\nfatal: bad config\n");
    expect(bad.exec.calls[1]!.argv).toEqual(["docker", "logs", "--tail", "20", "gate"]);
  });

  test("startAttached starts attached with stdin, and gives the line holding the pattern", async () => {
    const { docker, exec } = dockerWith(() => ({ stdout: "git gate up\nready 10.0.0.2 10.0.1.2\n" }));
    const archive = new Uint8Array([1, 2, 3]);
    expect(await docker.startAttached("gate", { stdin: archive, pattern: "ready", timeoutMs: 5000 })).toBe("ready 10.0.0.2 10.0.1.2");
    expect(exec.calls[0]!.argv).toEqual(["docker", "start", "--attach", "--interactive", "gate"]);
    expect((exec.calls[0]!.options as { stdin?: Uint8Array }).stdin).toBe(archive);
  });

  test("startAttached throws with the container's last output when it ends first; no daemon is said plainly", async () => {
    const failed = dockerWith(() => ({ exitCode: 1, stderr: "egress gate: config: allow[0]: expected a string\n" }));
    const error = (await caught(failed.docker.startAttached("gate", { stdin: "", pattern: "ready", timeoutMs: 5000 }))) as BottleError;
    expect(error).toBeInstanceOf(BottleError);
    expect(error.message).toBe("gate stopped before it was ready; its last output:\n    egress gate: config: allow[0]: expected a string");
    const down = dockerWith(() => ({ exitCode: 1, stderr: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" }));
    const noDaemon = (await caught(down.docker.startAttached("gate", { stdin: "", pattern: "ready", timeoutMs: 5000 }))) as BottleError;
    expect(noDaemon.message).toBe("the Docker daemon is not running");
  });

  test("logs runs interactively, with --follow when asked", async () => {
    const { docker, exec } = dockerWith(() => ({ exitCode: 3 }));
    expect(await docker.logs("c", true)).toBe(3);
    await docker.logs("c");
    expect(exec.calls.map((c) => [c.interactive, c.argv])).toEqual([
      [true, ["docker", "logs", "--follow", "c"]],
      [true, ["docker", "logs", "c"]],
    ]);
  });
});

describe("secrets in docker exec", () => {
  const secrets = { ANTHROPIC_API_KEY: "sk-ant-api03-SECRET-value-1234567890", GITHUB_TOKEN: "ghp_supersecret" };

  test("execIn passes secret env by name only; values go to the child env", async () => {
    const { docker, exec } = dockerWith();
    await docker.execIn("bottle-x", ["sh", "-c", "env"], {
      user: "1000:1000",
      workdir: "/workspace",
      envNames: Object.keys(secrets),
      envValues: secrets,
      timeoutMs: 1000,
      check: false,
    });
    const call = exec.calls[0]!;
    expect(call.argv).toEqual([
      "docker", "exec", "--user", "1000:1000", "--workdir", "/workspace",
      "--env", "ANTHROPIC_API_KEY", "--env", "GITHUB_TOKEN",
      "bottle-x", "sh", "-c", "env",
    ]); // prettier-ignore
    for (const value of Object.values(secrets)) {
      for (const arg of call.argv) expect(arg).not.toContain(value);
    }
    expect(call.options).toEqual({ stdin: undefined, env: secrets, check: false, timeoutMs: 1000 });
  });

  test("execIn adds --interactive only when there is stdin", async () => {
    const { docker, exec } = dockerWith();
    await docker.execIn("c", ["cat"], { stdin: "data" });
    await docker.execIn("c", ["true"]);
    expect(exec.calls[0]!.argv).toEqual(["docker", "exec", "--interactive", "c", "cat"]);
    expect((exec.calls[0]!.options as { stdin?: string }).stdin).toBe("data");
    expect(exec.calls[1]!.argv).toEqual(["docker", "exec", "c", "true"]);
  });

  test("execInteractive adds --tty only on a terminal, and passes secrets by name", async () => {
    for (const terminal of [false, true]) {
      const { docker, exec } = dockerWith(() => ({ exitCode: 42 }), terminal);
      const code = await docker.execInteractive("bottle-x", ["claude"], { user: "agent", envNames: ["ANTHROPIC_API_KEY"], envValues: secrets });
      expect(code).toBe(42);
      const call = exec.calls[0]!;
      expect(call.interactive).toBe(true);
      expect(call.argv).toEqual([
        "docker", "exec", "--interactive", ...(terminal ? ["--tty"] : []),
        "--user", "agent", "--env", "ANTHROPIC_API_KEY", "bottle-x", "claude",
      ]); // prettier-ignore
      expect(call.argv.join(" ")).not.toContain(secrets.ANTHROPIC_API_KEY);
      expect(call.options).toEqual({ env: secrets });
    }
  });
});
