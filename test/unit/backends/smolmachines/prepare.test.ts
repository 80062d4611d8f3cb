import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CRANE_IMAGE, DEFAULT_REGISTRY_IMAGE } from "../../../../lib/backends/smolmachines/images.ts";
import {
  findPackLeftovers,
  packLabels,
  packObjectNames,
  parsePublishedPort,
  prepareSmolmachine,
  type PackStep,
  type PrepareStep,
} from "../../../../lib/backends/smolmachines/prepare.ts";
import { smolmachinePath, smolmachinesDir } from "../../../../lib/backends/smolmachines/cache.ts";
import { Docker } from "../../../../lib/docker.ts";
import { BottleError } from "../../../../lib/errors.ts";
import { CommandError, type RunResult } from "../../../../lib/exec.ts";
import { recordingExec, type Responder } from "../../../helpers/exec.ts";
import type { ImageSpec } from "../../../../lib/images.ts";
import { log } from "../../../../lib/log.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";

// Step lines are asserted elsewhere; keep the test output readable.
const level = log.level;
beforeAll(() => {
  log.level = 1;
});
afterAll(() => {
  log.level = level;
  cleanupTempDirs();
});

const IMAGE_ID = `sha256:${"0123456789abcdef".repeat(4)}`;
const KEY = "0123456789abcdef";
const SESSION = "4242-abcdef";
const NAMES = packObjectNames(SESSION);

const SPEC: ImageSpec = { kind: "plumbing", dockerfile: "FROM scratch\n", files: {}, buildArgs: {}, inputs: ["unit"] };

type Answer = Partial<Omit<RunResult, "argv">> | undefined;

/** Answers like a docker engine that has the image, plus smolvm writing its sidecar. */
function engine(overrides: (argv: string[]) => Answer = () => undefined, port = "127.0.0.1:49153\n"): Responder {
  return (argv) => {
    const override = overrides(argv);
    if (override) return override;
    const [bin, command, ...rest] = argv;
    if (bin === "docker" && command === "image" && rest[0] === "inspect")
      return { stdout: JSON.stringify({ Id: IMAGE_ID, Size: 5 * 1024 * 1024, Config: { Labels: {} } }) };
    if (bin === "docker" && command === "save") {
      writeFileSync(rest[1]!, "tarball bytes");
      return {};
    }
    if (bin === "docker" && command === "port") return { stdout: port };
    if (bin === "smolvm") {
      writeFileSync(`${argv[argv.indexOf("--output") + 1]}.smolmachine`, "packed machine");
      return {};
    }
    return undefined;
  };
}

let env: Record<string, string | undefined>;
beforeEach(() => {
  env = { HOME: tempDir(), XDG_CACHE_HOME: tempDir("bottle-cache-"), PATH: process.env.PATH };
});

function setup(responder: Responder = engine()) {
  const exec = recordingExec(responder);
  const docker = new Docker(exec, "docker");
  return { exec, docker };
}

function argvs(exec: ReturnType<typeof recordingExec>): string[][] {
  return exec.calls.map((call) => call.argv);
}

const uid = process.getuid!();
const gid = process.getgid!();

describe("prepareSmolmachine", () => {
  test("runs the exact pipeline on a cache miss and leaves only the cache entry", async () => {
    const { exec, docker } = setup();
    const staging = join(smolmachinesDir(env), `.staging-${SESSION}`);
    const prepared = await prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION });

    expect(prepared).toMatchObject({ key: KEY, imageId: IMAGE_ID, cached: false, built: false, path: smolmachinePath(KEY, env) });
    const labelArgs = Object.entries(packLabels(SESSION)).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
    expect(argvs(exec)).toEqual([
      ["docker", "image", "inspect", "--format", "{{json .}}", prepared.ref.tag],
      ["docker", "image", "inspect", "--format", "{{json .}}", prepared.ref.tag],
      ["docker", "save", "--output", join(staging, `${KEY}.tar`), prepared.ref.tag],
      ["docker", "network", "create", "--driver", "bridge", ...labelArgs, NAMES.network],
      ["docker", "run", "--detach", "--name", NAMES.registry, ...labelArgs, "--network", NAMES.network, "--publish", "127.0.0.1::5000", DEFAULT_REGISTRY_IMAGE],
      ["docker", "logs", "--follow", NAMES.registry],
      ["docker", "port", NAMES.registry, "5000/tcp"],
      [
        "docker",
        "run",
        "--name",
        NAMES.crane,
        ...labelArgs,
        "--network",
        NAMES.network,
        "--env",
        "HOME=/tmp",
        "--mount",
        `type=bind,source=${join(staging, `${KEY}.tar`)},target=/img.tar,readonly`,
        "--user",
        `${uid}:${gid}`,
        DEFAULT_CRANE_IMAGE,
        "push",
        "--insecure",
        "/img.tar",
        `${NAMES.registry}:5000/bottle/agent:${KEY}`,
      ],
      ["smolvm", "pack", "create", "--image", `localhost:49153/bottle/agent:${KEY}`, "--output", join(staging, KEY)],
      ["docker", "rm", "--force", "--volumes", NAMES.crane, NAMES.registry],
      ["docker", "network", "rm", NAMES.network],
    ]);
    expect(readdirSync(smolmachinesDir(env))).toEqual([`${KEY}.smolmachine`]);
    const pack = exec.calls.find((call) => call.argv[0] === "smolvm");
    expect(pack?.options).toMatchObject({ env: { SMOLVM_ALLOW_HOST_LOOPBACK: "1" }, timeoutMs: 30 * 60 * 1000 });
  });

  test("every step reports a start and a success line with sizes and times", async () => {
    const { docker } = setup();
    const lines: string[] = [];
    const reporters = log.options.reporters;
    log.setReporters([{ log: (entry) => void lines.push(`${entry.type} ${entry.args.join(" ")}`) }]);
    log.level = 3;
    try {
      await prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION });
      await prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION });
    } finally {
      log.level = 1;
      log.setReporters(reporters);
    }
    expect(lines).toEqual([
      expect.stringMatching(/^start saving bottle-plumbing:\w+ \(5\.0 MiB\) for smolvm$/),
      expect.stringMatching(/^success saved 0123456789abcdef\.tar \(13 B\) in \d+\.\ds$/),
      expect.stringMatching(/^start starting a registry on 127\.0\.0\.1 \(registry:2\.8\.3@sha256:/),
      expect.stringMatching(/^success registry bottle-pack-4242-abcdef-registry on 127\.0\.0\.1:49153 in \d+\.\ds$/),
      "start pushing 0123456789abcdef.tar with crane",
      expect.stringMatching(/^success pushed bottle\/agent:0123456789abcdef in \d+\.\ds$/),
      "start packing localhost:49153/bottle/agent:0123456789abcdef with smolvm",
      expect.stringMatching(/^success packed 0123456789abcdef\.smolmachine \(14 B\) in \d+\.\ds; prepare took \d+\.\ds$/),
      expect.stringMatching(/^success using cached 0123456789abcdef\.smolmachine \(image bottle-plumbing:\w+\)$/),
    ]);
  });

  test("overrides name the registry and crane images", async () => {
    const { exec, docker } = setup();
    await prepareSmolmachine({ docker, images: [SPEC], env: { ...env, BOTTLE_REGISTRY_IMAGE: "reg:test", BOTTLE_CRANE_IMAGE: "crane:test" }, session: SESSION });
    const runs = argvs(exec).filter((argv) => argv[1] === "run");
    expect(runs[0]).toContain("reg:test");
    expect(runs[1]).toContain("crane:test");
  });

  test("a second prepare of the unchanged image runs no save, registry, crane or pack", async () => {
    const first = setup();
    await prepareSmolmachine({ docker: first.docker, images: [SPEC], env, session: SESSION });
    const second = setup();
    const prepared = await prepareSmolmachine({ docker: second.docker, images: [SPEC], env, session: "4242-000000" });
    expect(prepared.cached).toBe(true);
    expect(argvs(second.exec).map((argv) => argv.slice(0, 3).join(" "))).toEqual(["docker image inspect", "docker image inspect"]);
  });

  test("builds missing images in order and packs the last one", async () => {
    let built = false;
    const { exec, docker } = setup(
      engine((argv) => {
        if (argv[1] === "image" && !built && argv.at(-1)?.startsWith("bottle-plumbing:")) return { exitCode: 1, stderr: "No such image" };
        if (argv[1] === "build") {
          built = true;
          return { stdout: IMAGE_ID };
        }
        return undefined;
      }),
    );
    const custom: ImageSpec = { ...SPEC, kind: "custom", inputs: ["layers"] };
    const prepared = await prepareSmolmachine({ docker, images: [SPEC, custom], env, session: SESSION });
    expect(prepared.built).toBe(true);
    expect(prepared.ref.tag).toStartWith("bottle-custom:");
    expect(argvs(exec).find((argv) => argv[1] === "save")?.at(-1)).toBe(prepared.ref.tag);
  });

  test("a failing crane push tears down crane, registry, network, then the tarball; no cache entry", async () => {
    const { exec, docker } = setup(engine((argv) => (argv[1] === "run" && argv[3] === NAMES.crane ? { exitCode: 1, stderr: "push failed" } : undefined)));
    const error = await prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION }).catch((e) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(String(error.message)).toContain("push failed");
    const tail = argvs(exec).slice(-2);
    expect(tail).toEqual([
      ["docker", "rm", "--force", "--volumes", NAMES.crane, NAMES.registry],
      ["docker", "network", "rm", NAMES.network],
    ]);
    expect(argvs(exec).some((argv) => argv[0] === "smolvm")).toBe(false);
    expect(existsSync(smolmachinePath(KEY, env))).toBe(false);
    expect(readdirSync(smolmachinesDir(env))).toEqual([]);
  });

  test("a failing save removes only the staging dir (nothing else was created)", async () => {
    const { exec, docker } = setup(engine((argv) => (argv[1] === "save" ? { exitCode: 1, stderr: "no space left on device" } : undefined)));
    await expect(prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION })).rejects.toThrow(/no space left/);
    expect(argvs(exec).some((argv) => argv[1] === "rm" || argv[2] === "rm")).toBe(false);
    expect(readdirSync(smolmachinesDir(env))).toEqual([]);
  });

  test("a registry published beyond 127.0.0.1 is refused and torn down", async () => {
    const { exec, docker } = setup(engine(undefined, "0.0.0.0:49153\n[::]:49153\n"));
    await expect(prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION })).rejects.toThrow(/not on 127\.0\.0\.1 only/);
    expect(argvs(exec).some((argv) => argv[3] === NAMES.crane)).toBe(false);
    expect(argvs(exec).slice(-2)).toEqual([
      ["docker", "rm", "--force", "--volumes", NAMES.registry],
      ["docker", "network", "rm", NAMES.network],
    ]);
  });

  test("an interrupted pack leaves no cache entry, even when it wrote a partial sidecar", async () => {
    const { docker } = setup();
    const partialPack: PackStep = async (ctx) => {
      writeFileSync(`${ctx.output}.smolmachine`, "half of a machi");
      throw new Error("smolvm killed");
    };
    await expect(prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION, pack: partialPack })).rejects.toThrow("smolvm killed");
    expect(existsSync(smolmachinePath(KEY, env))).toBe(false);
    expect(readdirSync(smolmachinesDir(env))).toEqual([]);
  });

  test("Ctrl-C during the pack: the step's result is discarded, everything removed, exit 130", async () => {
    const { exec, docker } = setup();
    const interruptedPack: PackStep = async (ctx) => {
      process.emit("SIGINT");
      writeFileSync(`${ctx.output}.smolmachine`, "complete, but the user said stop");
    };
    const error = await prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION, pack: interruptedPack }).catch((e) => e);
    expect(error).toBeInstanceOf(BottleError);
    expect(error.message).toMatch(/^interrupted \(SIGINT\)/);
    expect(error.exitCode).toBe(130);
    expect(existsSync(smolmachinePath(KEY, env))).toBe(false);
    expect(argvs(exec).slice(-1)).toEqual([["docker", "network", "rm", NAMES.network]]);
    expect(process.listenerCount("SIGINT")).toBe(0);
  });

  test("a pack step that produces nothing fails clearly", async () => {
    const { docker } = setup();
    await expect(prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION, pack: async () => {} })).rejects.toThrow(/did not produce/);
    expect(readdirSync(smolmachinesDir(env))).toEqual([]);
  });

  test("beforeStep sees every step in order and can fail any of them", async () => {
    const seen: PrepareStep[] = [];
    const { docker } = setup();
    await prepareSmolmachine({ docker, images: [SPEC], env, session: SESSION, beforeStep: (step) => void seen.push(step) });
    expect(seen).toEqual(["build", "save", "network", "registry", "push", "pack", "commit"]);

    const failing = setup();
    await expect(
      prepareSmolmachine({
        docker: failing.docker,
        images: [SPEC],
        env: { ...env, XDG_CACHE_HOME: tempDir("bottle-cache-") },
        session: SESSION,
        beforeStep: (step) => {
          if (step === "pack") throw new Error("injected");
        },
      }),
    ).rejects.toThrow("injected");
    expect(argvs(failing.exec).slice(-2).map((argv) => argv.slice(0, 3))).toEqual([
      ["docker", "rm", "--force"],
      ["docker", "network", "rm"],
    ]);
  });

  test("the pack step gets the live registry and the pull reference", async () => {
    const { docker } = setup();
    let seen: Parameters<PackStep>[0] | undefined;
    await prepareSmolmachine({
      docker,
      images: [SPEC],
      env,
      session: SESSION,
      pack: async (ctx) => {
        seen = ctx;
        writeFileSync(`${ctx.output}.smolmachine`, "x");
      },
    });
    expect(seen).toMatchObject({
      image: `localhost:49153/bottle/agent:${KEY}`,
      repository: "bottle/agent",
      tag: KEY,
      registry: { host: "127.0.0.1", port: 49153, url: "http://127.0.0.1:49153", container: NAMES.registry, network: NAMES.network },
    });
  });
});

describe("parsePublishedPort", () => {
  test("accepts 127.0.0.1 only", () => {
    expect(parsePublishedPort("127.0.0.1:32768\n", "r")).toBe(32768);
    expect(() => parsePublishedPort("0.0.0.0:32768\n", "r")).toThrow(/not on 127\.0\.0\.1 only/);
    expect(() => parsePublishedPort("127.0.0.1:32768\n[::]:32768\n", "r")).toThrow(/\[::\]:32768/);
    expect(() => parsePublishedPort("", "r")).toThrow(/no published port/);
  });
});

describe("findPackLeftovers", () => {
  test("only objects and staging dirs of dead processes", async () => {
    const row = (name: string, pid: number) => JSON.stringify({ Names: name, Name: name, Labels: `bottle.role=pack,bottle.pack-pid=${pid}` });
    const exec = recordingExec((argv) => {
      if (argv[1] === "ps") return { stdout: `${row("bottle-pack-1-a-registry", 1)}\n${row("bottle-pack-2-b-registry", 2)}\n` };
      if (argv[1] === "network") return { stdout: `${row("bottle-pack-1-a", 1)}\n${row("bottle-pack-2-b", 2)}\n` };
      return undefined;
    });
    const dir = smolmachinesDir(env);
    for (const name of [".staging-1-a", ".staging-2-b", `${KEY}.smolmachine`]) {
      const path = join(dir, name);
      mkdirSync(name.endsWith(".smolmachine") ? dir : path, { recursive: true });
      if (name.endsWith(".smolmachine")) writeFileSync(path, "x");
    }
    const leftovers = await findPackLeftovers(new Docker(exec, "docker"), env, (pid) => pid === 2);
    expect(leftovers).toEqual({ containers: ["bottle-pack-1-a-registry"], networks: ["bottle-pack-1-a"], stagingDirs: [join(dir, ".staging-1-a")] });
    expect(exec.calls.map((call) => call.argv)).toContainEqual(["docker", "ps", "--no-trunc", "--format", "{{json .}}", "--all", "--filter", "label=bottle.role=pack"]);
  });
});
