import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { launchContainer } from "../../../../lib/backends/docker/launch.ts";
import { removeCreated } from "../../../../lib/backends/gate.ts";
import { BACKENDS, selectBackend } from "../../../../lib/backends/index.ts";
import { smolmachinesBackend } from "../../../../lib/backends/smolmachines/index.ts";
import type { BottleHandle, Created, GateAddresses, LaunchRequest } from "../../../../lib/backends/types.ts";
import {
  canaryHost,
  gatePorts,
  gatePublish,
  launchSmolmachine,
  MACHINE_GIT_FILES,
  machineGitScript,
  machineSpec,
  smolvmUnavailable,
  type SmolvmHost,
  teardownSmolmachine,
} from "../../../../lib/backends/smolmachines/launch.ts";
import { machineHandle, parseUser } from "../../../../lib/backends/smolmachines/handle.ts";
import { gateLoopbackAddress } from "../../../../lib/backends/smolmachines/smolvm.ts";
import { HOST_OBJECTS_MOUNT } from "../../../../lib/git/private-gitdir.ts";
import { PRIVATE_GITDIR, workspaceGitFiles } from "../../../../lib/git/workspace-git.ts";
import { dirname } from "node:path";
import { Docker } from "../../../../lib/docker.ts";
import { BottleError } from "../../../../lib/errors.ts";
import { type RecordedCall, recordingExec, type Responder } from "../../../helpers/exec.ts";
import { EGRESS_READY_LINE } from "../../../../lib/gates/egress/config.ts";
import { gitPlan } from "../../../../lib/gates/git/config.ts";
import { sshPlan } from "../../../../lib/gates/ssh/config.ts";
import type { Plan } from "../../../../lib/plan.ts";
import { provisionEntries } from "../../../../lib/provision.ts";
import { createTar } from "../../../../lib/tar.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../../../helpers/unit.ts";

afterAll(cleanupTempDirs);

const SMOLMACHINE = "/home/u/.cache/bottle/smolmachines/0123456789abcdef.smolmachine";
const SECRETS = ["s3cret-dlp-value-0001", "sk-ant-oat01-held-by-the-gate", "hunter2-env-secret"];

function host(overrides: Partial<SmolvmHost> = {}): SmolvmHost {
  return { platform: "linux", which: (binary) => `/usr/bin/${binary}`, exists: () => true, ...overrides };
}

describe("selectBackend", () => {
  const bottle = (backend?: "docker" | "smolmachines") => ({ backend });
  /** The registry with smolmachines looking for smolvm and /dev/kvm on `on` instead of this machine. */
  const on = (machine: SmolvmHost) => ({ backends: { ...BACKENDS, smolmachines: { ...smolmachinesBackend, unavailable: (env: Record<string, string | undefined>) => smolvmUnavailable(env, machine) } } });

  test("docker by default; --backend, then BOTTLE_BACKEND, then the bottle's backend", () => {
    expect(selectBackend(undefined, bottle(), {}).name).toBe("docker");
    expect(selectBackend(undefined, bottle("smolmachines"), {}, on(host())).name).toBe("smolmachines");
    expect(selectBackend(undefined, bottle("smolmachines"), { BOTTLE_BACKEND: "docker" }).name).toBe("docker");
    expect(selectBackend("smolmachines", bottle("docker"), { BOTTLE_BACKEND: "docker" }, on(host())).name).toBe("smolmachines");
    expect(() => selectBackend("podman", bottle(), {})).toThrow(/unknown backend "podman"/);
  });

  test("smolmachines without smolvm or /dev/kvm: one error naming both, with the fix", () => {
    const error = (() => {
      try {
        selectBackend("smolmachines", bottle(), {}, on(host({ which: () => null, exists: () => false })));
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(BottleError);
    expect((error as BottleError).message).toBe("the smolmachines backend cannot run here: smolvm (not on PATH) and /dev/kvm missing");
    expect((error as BottleError).fix).toContain("install smolvm");
    expect((error as BottleError).fix).toContain("--backend docker");
  });

  test("BOTTLE_SMOLVM names the binary that is looked for", () => {
    const seen: string[] = [];
    const error = smolvmUnavailable({ BOTTLE_SMOLVM: "/opt/smolvm/bin/smolvm" }, host({ which: (binary) => (seen.push(binary), null) }));
    expect(seen).toEqual(["/opt/smolvm/bin/smolvm"]);
    expect(error?.message).toContain("smolvm at BOTTLE_SMOLVM=/opt/smolvm/bin/smolvm");
    expect(smolvmUnavailable({}, host())).toBeUndefined();
  });

  test("/dev/kvm matters on Linux only", () => {
    expect(smolvmUnavailable({}, host({ exists: () => false }))?.message).toBe("the smolmachines backend cannot run here: /dev/kvm missing");
    expect(smolvmUnavailable({}, host({ platform: "darwin", exists: () => false }))).toBeUndefined();
  });

  test("--dry-run plans a smolmachines bottle even where smolvm is missing", () => {
    expect(selectBackend("smolmachines", bottle(), {}, { dryRun: true, ...on(host({ which: () => null })) }).name).toBe("smolmachines");
  });
});

describe("how the VM reaches its gate", () => {
  test("only the ports the bottle uses, each published on the loopback address only", () => {
    const plan = makePlan({ name: "bottle-dev" });
    expect(gatePorts(plan)).toEqual([3128]);
    const full: Plan = {
      ...plan,
      custody: { claude: { source: "x", kind: "oauth", env: "CLAUDE_CODE_OAUTH_TOKEN", upstream: "https://api.anthropic.com", baseUrl: "http://gate:3129/anthropic" }, routes: [], port: 3129 },
      git: gitPlan({ origin: { upstream: "git@example.test:o/r.git", identityFile: "/k" } }),
      ssh: sshPlan([
        { host: "a.test", port: 22, identityFile: "/k", knownHostKey: "ssh-ed25519 AAAA" },
        { host: "b.test", port: 22, identityFile: "/k", knownHostKey: "ssh-ed25519 AAAA" },
      ]),
    };
    expect(gatePorts(full)).toEqual([3128, 3129, 9418, 2199, 2200, 2201]);
    expect(gatePublish(full, "127.201.7.9")).toEqual([
      "127.201.7.9:3128:3128",
      "127.201.7.9:3129:3129",
      "127.201.7.9:9418:9418",
      "127.201.7.9:2199:2199",
      "127.201.7.9:2200:2200",
      "127.201.7.9:2201:2201",
    ]);
    expect(() => gatePublish(plan, "0.0.0.0")).toThrow(/not a loopback address/);
    expect(() => gatePublish(plan, "192.168.1.2")).toThrow(/not a loopback address/);
  });

  test("the canary sits outside the gate's /32: 127.0.0.1 on Linux, never the gate's address", () => {
    expect(canaryHost("linux")).toBe("127.0.0.1");
    expect(gateLoopbackAddress("bottle-dev", "linux")).not.toBe("127.0.0.1");
  });

  test("the VM: the workspace and the host's objects as volumes, the git mount files read-only, non-secret variables only", () => {
    const project = tempDir("bottle-vm-ws-");
    const git = { repo: project, shape: "dir" as const, objects: `${project}/.git/objects`, submodules: [], mountPoints: [] };
    const plan = makePlan({ name: "bottle-dev", backend: "smolmachines", workspace: { mode: "mount", hostPath: project, git } });
    const spec = machineSpec(plan, SMOLMACHINE, { host: "127.201.7.9", port: 3128 });
    expect(spec.volumes).toEqual([
      { host: project, guest: "/workspace" },
      { host: dirname(workspaceGitFiles("bottle-dev").gitfile), guest: MACHINE_GIT_FILES, readonly: true },
      { host: `${project}/.git/objects`, guest: HOST_OBJECTS_MOUNT, readonly: true },
    ]);
    expect(spec.env).toEqual({ BOTTLE_NAME: "bottle-dev" });
    expect(machineSpec(makePlan({ workspace: { mode: "copy", hostPath: project } }), SMOLMACHINE, { host: "127.201.7.9", port: 3128 }).volumes).toEqual([]);
  });

  test("the VM gets the plan's CPUs and memory (in MiB); no process limit is asked of it", () => {
    const base = makePlan({ backend: "smolmachines" });
    const plan: Plan = {
      ...base,
      resources: { ...base.resources, cpus: { value: 3, from: "dev.yaml" }, memory: { value: 1536 * 1024 ** 2 + 100, from: "dev.yaml" }, pids: undefined },
    };
    const spec = machineSpec(plan, SMOLMACHINE, { host: "127.201.7.9", port: 3128 });
    expect({ cpus: spec.cpus, memoryMib: spec.memoryMib }).toEqual({ cpus: 3, memoryMib: 1536 });
  });

  test("the VM's git shadows: a tmpfs of the agent's own over /workspace/.git, submodules' .git bound read-only", () => {
    const git = { repo: "/p", shape: "dir" as const, submodules: [{ path: "lib/a b", gitfile: true }, { path: "old", gitfile: false }], mountPoints: [] };
    const plan = makePlan({ workspace: { mode: "mount", hostPath: "/p", git, user: { uid: 501, gid: 20 } } });
    expect(machineGitScript(plan)?.split("\n")).toEqual([
      "set -e",
      "mkdir -p '/workspace/.git' && mount -t tmpfs -o mode=0755,uid=501,gid=20 bottle-git '/workspace/.git'",
      "mount --bind '/workspace/lib' '/workspace/lib'",
      "mount --bind '/workspace/old' '/workspace/old'",
      "mount --bind '/workspace/lib/a b' '/workspace/lib/a b'",
      "mount --bind '/workspace/lib/a b/.git' '/workspace/lib/a b/.git' && mount -o remount,bind,ro '/workspace/lib/a b/.git'",
      `mount --bind '${MACHINE_GIT_FILES}/empty' '/workspace/old/.git' && mount -o remount,bind,ro '/workspace/old/.git'`,
    ]);
    const file = makePlan({ workspace: { mode: "mount", hostPath: "/p", git: { ...git, shape: "file", submodules: [] }, user: { uid: 501, gid: 20 } } });
    expect(machineGitScript(file)?.split("\n").slice(1)).toEqual([
      `mkdir -p '${PRIVATE_GITDIR}' && mount -t tmpfs -o mode=0755,uid=501,gid=20 bottle-git '${PRIVATE_GITDIR}'`,
      `mount --bind '${MACHINE_GIT_FILES}/gitfile' '/workspace/.git' && mount -o remount,bind,ro '/workspace/.git'`,
    ]);
    expect(machineGitScript(makePlan({ workspace: { mode: "copy", hostPath: "/p" } }))).toBeUndefined();
  });
});

// ---- the launch, recorded ----

const SUBNET = "172.30.0.0/16";
const GATE_EGRESS_IP = "172.30.0.2";

/** Answers docker like a healthy engine (the gate reports its addresses as it starts); `smolvm` per `machine`. */
function engine(plan: Plan, machine: Responder = () => undefined): Responder {
  let internalIp: string | undefined;
  return (argv) => {
    if (argv[0] === "docker") {
      const sub = argv.slice(1).join(" ");
      if (sub.startsWith("network inspect"))
        return { stdout: JSON.stringify({ Id: "n", Name: argv.at(-1), Internal: false, IPAM: { Config: [{ Subnet: SUBNET, Gateway: "172.30.0.1" }] } }) };
      if (argv[1] === "create" && argv.includes(plan.containers.gate) && argv.includes("--ip")) internalIp = argv[argv.indexOf("--ip") + 1];
      if (sub.startsWith("start --attach")) return { stdout: `${[EGRESS_READY_LINE, ...(internalIp ? [internalIp] : []), GATE_EGRESS_IP].join(" ")}\n` };
      return undefined;
    }
    return machine(argv);
  };
}

/** The VM reaches exactly the gate: probes to the gate succeed, to anything else fail. */
function policyHolds(gateHost: string): Responder {
  return (argv) => (argv.includes("probe") ? { exitCode: argv.at(-2) === gateHost ? 0 : 1 } : undefined);
}

function argvs(calls: RecordedCall[]): string[][] {
  return calls.map((call) => call.argv);
}

/** Each call as "docker network create", "smolvm machine create", … (the first words that say what it is). */
function steps(calls: RecordedCall[]): string[] {
  return calls.map(({ argv }) => {
    if (argv[0] === "smolvm") return argv.slice(0, 3).join(" ") + (argv.includes("probe") ? " (probe)" : "");
    const words = argv.slice(1, argv[1] === "network" || argv[1] === "container" ? 3 : 2);
    return ["docker", ...words].join(" ");
  });
}

/** What the launch hands to provisioning: the bottle, and the gate's addresses once it is ready. */
interface Seen {
  bottle?: BottleHandle;
  gate?: GateAddresses;
}

function launchOptions(plan: Plan, created: Created, seen: Seen = {}) {
  return {
    version: "1.2.3",
    secrets: SECRETS.slice(0, 1),
    custody: { CLAUDE_CODE_OAUTH_TOKEN: SECRETS[1]! },
    created,
    ready: async (bottle: BottleHandle, gate: Promise<GateAddresses>) => {
      seen.bottle = bottle;
      seen.gate = await gate;
    },
    smolmachine: SMOLMACHINE,
    binary: "smolvm",
    platform: "linux" as const,
  };
}

function withState<T>(work: () => Promise<T>): Promise<T> {
  const saved = process.env.XDG_STATE_HOME;
  process.env.XDG_STATE_HOME = tempDir("bottle-vm-state-");
  return work().finally(() => {
    if (saved === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = saved;
  });
}

describe("launchSmolmachine", () => {
  const plan = makePlan({ name: "bottle-vm", backend: "smolmachines", workspace: { mode: "none", hostPath: undefined } });
  const address = gateLoopbackAddress("bottle-vm", "linux");

  test("the exact sequence: egress network, gate published on loopback, VM created from the cache with the gate's /32, checked", async () => {
    await withState(async () => {
      const exec = recordingExec(engine(plan, policyHolds(address)));
      const created: Created = { networks: [], containers: [] };
      const seen: Seen = {};
      const bottle = await launchSmolmachine(new Docker(exec, "docker"), plan, launchOptions(plan, created, seen));
      expect(seen.gate).toEqual({ gateIp: GATE_EGRESS_IP, gateEgressIp: GATE_EGRESS_IP });
      expect(seen.bottle).toBe(bottle);
      expect(bottle.name).toBe("bottle-vm");
      expect(created).toEqual({ networks: ["bottle-vm-egress"], containers: ["bottle-vm-gate"], machine: "bottle-vm" });
      expect(steps(exec.calls)).toEqual([
        "docker network ls",
        "docker network create",
        "docker create",
        "docker network inspect",
        "docker start",
        "smolvm machine create",
        "smolvm machine start",
        "smolvm machine exec (probe)",
        "smolvm machine exec (probe)",
        "smolvm machine exec",
      ]);
      const all = argvs(exec.calls);
      // No internal network, no `network connect`: the VM's only way in is the published ports.
      expect(all.find((argv) => argv[2] === "create")).toEqual(expect.arrayContaining(["bottle-vm-egress"]));
      expect(all.some((argv) => argv.includes("--internal") || argv.includes("connect"))).toBe(false);
      const create = all[2]!;
      expect(create.slice(create.indexOf("--network"), create.indexOf("--network") + 4)).toEqual(["--network", "bottle-vm-egress", "--network-alias", "gate"]);
      const published = create.filter((_, i) => create[i - 1] === "--publish");
      expect(published).toEqual([`${address}:3128:3128`]);
      expect(create.filter((arg) => arg === "-p" || arg === "--publish").length).toBe(1);
      expect(all.flat().some((arg) => arg.includes("0.0.0.0"))).toBe(false);
      expect(all[3]).toEqual(["docker", "network", "inspect", "--format", "{{json .}}", "bottle-vm-egress"]);
      expect(all[4]).toEqual(["docker", "start", "--attach", "--interactive", "bottle-vm-gate"]);
      expect(create).toContain("--interactive");
      expect(all[5]).toEqual([
        "smolvm",
        "machine",
        "create",
        "--name",
        "bottle-vm",
        "--from",
        SMOLMACHINE,
        "--allow-cidr",
        `${address}/32`,
        // The plan's limits (makePlan: 2 CPUs, 4 GiB).
        "--cpus",
        "2",
        "--mem",
        "4096",
        "-e",
        "BOTTLE_NAME=bottle-vm",
        "-e",
        `HTTP_PROXY=http://${address}:3128`,
        "-e",
        `HTTPS_PROXY=http://${address}:3128`,
        "-e",
        `http_proxy=http://${address}:3128`,
        "-e",
        `https_proxy=http://${address}:3128`,
        "-e",
        "NO_PROXY=localhost,127.0.0.1,::1",
        "-e",
        "no_proxy=localhost,127.0.0.1,::1",
        "--",
        "sleep",
        "infinity",
      ]);
      // The gate must answer, the canary on 127.0.0.1 must not.
      expect(all[7]!.slice(-2)).toEqual([address, "3128"]);
      expect(all[8]!.at(-2)).toBe("127.0.0.1");
      expect(all[9]).toEqual(["smolvm", "machine", "exec", "--name", "bottle-vm", "--", "sh", "-c", 'printf "%s gate\\n" "$1" >> /etc/hosts', "hosts", address]);
    });
  });

  test("the gate's services (Claude Code's route included) listen on the egress network the published ports reach", async () => {
    await withState(async () => {
      const custodyPlan: Plan = {
        ...plan,
        custody: { claude: { source: "x", kind: "oauth", env: "CLAUDE_CODE_OAUTH_TOKEN", upstream: "https://api.anthropic.com", baseUrl: "http://gate:3129/anthropic" }, routes: [], port: 3129 },
      };
      const exec = recordingExec(engine(custodyPlan, policyHolds(address)));
      await launchSmolmachine(new Docker(exec, "docker"), custodyPlan, launchOptions(custodyPlan, { networks: [], containers: [] }));
      // The config travels on the gate's stdin as it starts.
      const start = exec.calls.find((call) => call.argv.slice(0, 3).join(" ") === "docker start --attach")!;
      const tar = Buffer.from(start.options && "stdin" in start.options ? (start.options.stdin as Uint8Array) : new Uint8Array()).toString("latin1");
      const config = JSON.parse(tar.slice(tar.indexOf('{\n  "bottle"'), tar.indexOf("\n}\n") + 2)) as { listen: string[]; anthropic?: object };
      // A VM's gate has no internal network: its published ports reach it on the egress one.
      expect(config.listen).toEqual([SUBNET]);
      expect(config.anthropic).toBeDefined();
      expect(exec.calls.find((call) => call.argv[1] === "create")!.argv).toContain(`${address}:3129:3129`);
    });
  });

  test("no secret value in any argv: they travel in archives and in smolvm's own environment", async () => {
    await withState(async () => {
      const exec = recordingExec(engine(plan, policyHolds(address)));
      const docker = new Docker(exec, "docker");
      const bottle = await launchSmolmachine(docker, plan, launchOptions(plan, { networks: [], containers: [] }));
      const entries = provisionEntries({ plan, envValues: { API_TOKEN: SECRETS[2]! }, prompt: "", skillDirs: {} });
      let archived = "";
      const seeArchive = recordingExec((argv) => {
        if (argv[2] === "cp") {
          const file = argv[3]!;
          expect(statSync(file).mode & 0o777).toBe(0o600);
          archived = readFileSync(file, "latin1");
        }
        return undefined;
      });
      await machineHandle(seeArchive, plan.containers.bottle, "smolvm").copyIn("/", createTar(entries));
      expect(archived).toContain(SECRETS[2]!);
      await bottle.exec(["env"], { envNames: ["API_TOKEN"], envValues: { API_TOKEN: SECRETS[2]! } });
      const last = exec.calls.at(-1)!;
      expect(last.argv).toContain("--secret-env");
      expect(last.argv).toContain("API_TOKEN=API_TOKEN");
      expect(last.options?.env).toEqual({ API_TOKEN: SECRETS[2] });
      for (const call of [...exec.calls, ...seeArchive.calls]) for (const secret of SECRETS) expect(call.argv.join(" ")).not.toContain(secret);
    });
  });

  test("a failed start removes the machine that was created, and the error stands", async () => {
    await withState(async () => {
      const exec = recordingExec(engine(plan, (argv) => (argv[2] === "start" ? { exitCode: 1, stderr: "boom" } : undefined)));
      const created: Created = { networks: [], containers: [] };
      await expect(launchSmolmachine(new Docker(exec, "docker"), plan, launchOptions(plan, created))).rejects.toThrow(/machine start/);
      expect(steps(exec.calls).slice(-4)).toEqual(["smolvm machine create", "smolvm machine start", "smolvm machine stop", "smolvm machine delete"]);
      expect(argvs(exec.calls).at(-1)).toEqual(["smolvm", "machine", "delete", "--name", "bottle-vm", "-f"]);
      // launchMachine removed it; teardown only has the gate and its network left.
      expect(created.machine).toBeUndefined();
      expect(created.containers).toEqual(["bottle-vm-gate"]);
    });
  });

  test("a VM that reaches the canary (--allow-cidr ignored) is removed before the terminal is handed over", async () => {
    await withState(async () => {
      const exec = recordingExec(engine(plan, (argv) => (argv.includes("probe") ? { exitCode: 0 } : undefined)));
      const created: Created = { networks: [], containers: [] };
      await expect(launchSmolmachine(new Docker(exec, "docker"), plan, launchOptions(plan, created))).rejects.toThrow(/egress policy not applied/);
      expect(steps(exec.calls).slice(-2)).toEqual(["smolvm machine stop", "smolvm machine delete"]);
      expect(exec.calls.some((call) => call.argv.includes("/etc/hosts"))).toBe(false);
      expect(created.machine).toBeUndefined();
    });
  });

  test("a create that fails (the name is taken) removes no machine", async () => {
    await withState(async () => {
      const exec = recordingExec(engine(plan, (argv) => (argv[2] === "create" ? { exitCode: 1, stderr: "machine bottle-vm already exists" } : undefined)));
      await expect(launchSmolmachine(new Docker(exec, "docker"), plan, launchOptions(plan, { networks: [], containers: [] }))).rejects.toThrow(/already exists/);
      expect(exec.calls.some((call) => call.argv[2] === "delete")).toBe(false);
    });
  });

  test("teardown: the machine, then the gate, then its network", async () => {
    const exec = recordingExec();
    await teardownSmolmachine(new Docker(exec, "docker"), { machine: "bottle-vm", containers: ["bottle-vm-gate"], networks: ["bottle-vm-egress"] }, "smolvm");
    expect(argvs(exec.calls)).toEqual([
      ["smolvm", "machine", "stop", "--name", "bottle-vm"],
      ["smolvm", "machine", "delete", "--name", "bottle-vm", "-f"],
      ["docker", "rm", "--force", "--volumes", "bottle-vm-gate"],
      ["docker", "network", "rm", "bottle-vm-egress"],
    ]);
  });

  test("teardown goes on when smolvm cannot even be spawned", async () => {
    const exec = recordingExec();
    const failing = { ...exec, run: async (argv: string[], options?: Parameters<typeof exec.run>[1]) => (argv[0] === "smolvm" ? Promise.reject(new Error("ENOENT")) : exec.run(argv, options)) };
    await teardownSmolmachine(new Docker(failing, "docker"), { machine: "bottle-vm", containers: ["bottle-vm-gate"], networks: [] }, "smolvm");
    expect(argvs(exec.calls)).toEqual([["docker", "rm", "--force", "--volumes", "bottle-vm-gate"]]);
  });
});

describe("the docker backend's launch: internal addresses chosen up front, the bottle starts alongside the gate", () => {
  const launch = async (responder: Responder = () => undefined) => {
    const plan = makePlan({ name: "bottle-dk" });
    const base = engine(plan);
    const exec = recordingExec((argv) => responder(argv) ?? base(argv));
    const created: Created = { networks: [], containers: [] };
    const seen: Seen = {};
    const request: LaunchRequest = { version: "1", secrets: [], created, ready: launchOptions(plan, created, seen).ready };
    const bottle = await launchContainer(new Docker(exec, "docker"), plan, request);
    return { exec, created, addresses: seen.gate, bottle };
  };
  const flag = (argv: string[], name: string) => argv[argv.indexOf(name) + 1];

  test("a /28 of 198.18.0.0/15; the gate and the bottle get fixed addresses in it; the bottle runs before the gate starts", async () => {
    await withState(async () => {
      const { exec, created, addresses } = await launch();
      const internal = exec.calls.find((call) => call.argv.includes("--internal"))!.argv;
      const subnet = flag(internal, "--subnet")!;
      expect(subnet).toMatch(/^198\.1[89]\.\d+\.\d+\/28$/);
      expect(internal).toContain("com.docker.network.bridge.inhibit_ipv4=true");
      const prefix = subnet.replace(/\.\d+\/28$/, ".");
      const last = Number(subnet.split("/")[0]!.split(".")[3]);
      const gateIp = `${prefix}${last + 2}`;
      expect(addresses).toEqual({ gateIp, gateEgressIp: GATE_EGRESS_IP });
      const gate = exec.calls.find((call) => call.argv[1] === "create")!.argv;
      expect(flag(gate, "--network")).toBe("bottle-dk-internal");
      expect(flag(gate, "--ip")).toBe(gateIp);
      expect(gate).not.toContain("--publish");
      const bottle = exec.calls.find((call) => call.argv[1] === "run")!.argv;
      expect(flag(bottle, "--ip")).toBe(`${prefix}${last + 3}`);
      expect(flag(bottle, "--dns")).toBe(gateIp);
      expect(flag(bottle, "--add-host")).toBe(`gate:${gateIp}`);
      const order = steps(exec.calls);
      expect(order.indexOf("docker run")).toBeLessThan(order.indexOf("docker start"));
      expect(order.filter((step) => step === "docker network create")).toHaveLength(2);
      expect(order).toContain("docker network connect");
      // The internal subnet is known, and the gate refuses its own route gateways (the egress network's): neither is inspected.
      const inspected = exec.calls.filter((call) => call.argv[1] === "network" && call.argv[2] === "inspect").flatMap((call) => call.argv.slice(5));
      expect(inspected).not.toContain("bottle-dk-egress");
      expect(inspected).not.toContain("bottle-dk-internal");
      expect(created.containers.sort()).toEqual(["bottle-dk", "bottle-dk-gate"]);
    });
  });

  test("a subnet Docker already uses is drawn again; other network errors are not retried", async () => {
    await withState(async () => {
      let refusals = 0;
      const { exec } = await launch((argv) => {
        if (argv.includes("--internal") && refusals < 2) {
          refusals++;
          return { exitCode: 1, stderr: "Error response from daemon: Pool overlaps with other one on this address space" };
        }
        return undefined;
      });
      expect(exec.calls.filter((call) => call.argv.includes("--internal"))).toHaveLength(3);
    });
    await withState(async () => {
      await expect(launch((argv) => (argv.includes("--internal") ? { exitCode: 1, stderr: "Error response from daemon: boom" } : undefined))).rejects.toThrow(/boom/);
    });
  });

  test("teardown: the gate leaves its egress network alongside the removals; the internal network goes after the containers", async () => {
    await withState(async () => {
      const { created } = await launch();
      expect(created.joined).toEqual([{ network: "bottle-dk-egress", container: "bottle-dk-gate" }]);
      const exec = recordingExec();
      await removeCreated(new Docker(exec, "docker"), created);
      const order = argvs(exec.calls).map((argv) => argv.slice(1).join(" "));
      expect(order.sort()).toEqual(
        [
          "network disconnect --force bottle-dk-egress bottle-dk-gate",
          "network rm bottle-dk-egress",
          "network rm bottle-dk-internal",
          "rm --force --volumes bottle-dk",
          "rm --force --volumes bottle-dk-gate",
        ].sort(),
      );
      const at = (step: string) => argvs(exec.calls).findIndex((argv) => argv.slice(1).join(" ") === step);
      expect(at("network rm bottle-dk-egress")).toBeGreaterThan(at("network disconnect --force bottle-dk-egress bottle-dk-gate"));
      expect(at("network rm bottle-dk-internal")).toBeGreaterThan(Math.max(at("rm --force --volumes bottle-dk"), at("rm --force --volumes bottle-dk-gate")));
    });
  });

  test("teardown: a gate already gone (the disconnect fails) frees its egress network once the containers are removed", async () => {
    const exec = recordingExec((argv) => (argv[2] === "disconnect" ? { exitCode: 1, stderr: "Error: No such container: bottle-dk-gate" } : undefined));
    let removed = false;
    const docker = new Docker(exec, "docker");
    const rm = docker.containerRm.bind(docker);
    docker.containerRm = async (containers) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await rm(containers);
      removed = true;
    };
    const networkRm = docker.networkRm.bind(docker);
    const order: string[] = [];
    docker.networkRm = async (networks) => {
      order.push(`${networks.join(" ")} after removal: ${removed}`);
      return networkRm(networks);
    };
    await removeCreated(docker, {
      containers: ["bottle-dk", "bottle-dk-gate"],
      networks: ["bottle-dk-internal", "bottle-dk-egress"],
      joined: [{ network: "bottle-dk-egress", container: "bottle-dk-gate" }],
    });
    expect(order.sort()).toEqual(["bottle-dk-egress after removal: true", "bottle-dk-internal after removal: true"]);
  });
});

describe("the VM's handle: every way into the bottle, through smolvm", () => {
  test("exec as the agent user drops privileges with setpriv", async () => {
    const exec = recordingExec();
    await machineHandle(exec, "bottle-vm", "/opt/smolvm").exec(["cat", "/etc/passwd"], { user: "1234:1234", workdir: "/workspace" });
    expect(argvs(exec.calls)).toEqual([
      ["/opt/smolvm", "machine", "exec", "--name", "bottle-vm", "-w", "/workspace", "--", "setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", "--", "cat", "/etc/passwd"],
    ]);
  });

  test("attach is `machine exec -i [-t]` on the user's terminal", async () => {
    for (const terminal of [false, true]) {
      const exec = recordingExec(undefined, terminal);
      await machineHandle(exec, "bottle-vm", "smolvm").interactive(["bottle-run", "claude"], { user: "1000:1000", workdir: "/workspace" });
      expect(exec.calls[0]!.interactive).toBe(true);
      expect(exec.calls[0]!.argv).toEqual([
        "smolvm", "machine", "exec", "--name", "bottle-vm", "-i", ...(terminal ? ["-t"] : []), "-w", "/workspace",
        "--", "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--", "bottle-run", "claude",
      ]);
    }
  });

  test("an archive goes in by `machine cp` of a private temp file, unpacked (and deleted) by one exec", async () => {
    let file = "";
    const exec = recordingExec((argv) => {
      if (argv[2] === "cp") file = argv[3]!;
      return undefined;
    });
    await machineHandle(exec, "bottle-vm", "smolvm").copyIn("/", createTar([{ path: "x", content: "y", mode: 0o644, uid: 0, gid: 0 }]));
    const [cp, unpack] = argvs(exec.calls);
    const inVm = cp![4]!.slice("bottle-vm:".length);
    expect(cp!.slice(0, 3)).toEqual(["smolvm", "machine", "cp"]);
    expect(inVm).toMatch(/^\/tmp\/bottle-archive-[0-9a-f]{12}\.tar$/);
    expect(unpack!.slice(0, 8)).toEqual(["smolvm", "machine", "exec", "--name", "bottle-vm", "--", "sh", "-c"]);
    expect(unpack!.slice(-3)).toEqual(["unpack", inVm, "/"]);
    expect(unpack![8]).toContain("--same-owner --numeric-owner");
    expect(unpack![8]).toContain('rm -f "$1"');
    expect(existsSync(file)).toBe(false);
  });

  test("copying work out of the VM is `machine cp NAME:PATH DST`", async () => {
    const exec = recordingExec();
    await machineHandle(exec, "bottle-vm", "smolvm").copyOut("/tmp/bottle-save/.", "/saved");
    expect(argvs(exec.calls)).toEqual([["smolvm", "machine", "cp", "bottle-vm:/tmp/bottle-save/.", "/saved"]]);
  });

  test("the bottle has no container log; numeric users only", async () => {
    await expect(machineHandle(recordingExec(), "bottle-vm", "smolvm").logs(false)).rejects.toThrow(/no container log/);
    expect(parseUser("1000:1001")).toEqual({ uid: 1000, gid: 1001 });
    expect(() => parseUser("agent")).toThrow(/numeric uid:gid/);
  });
});
