import { describe, expect, test } from "bun:test";
import {
  gateLoopbackAddress,
  isLoopbackIPv4,
  launchMachine,
  machineCopyInArgv,
  machineCopyOutArgv,
  machineCreateArgv,
  machineDeleteArgv,
  machineExecArgv,
  machineListArgv,
  machineStartArgv,
  machineStopArgv,
  packCreateArgv,
  parseMachineList,
  probeArgv,
  proxyEnv,
  smolvmBinary,
  verifyMachineEgress,
  withCanary,
} from "../../../../lib/backends/smolmachines/smolvm.ts";
import { recordingExec } from "../../../helpers/exec.ts";

const GATE = { host: "127.201.7.9", port: 3128 };
const PROXY = "http://127.201.7.9:3128";

describe("pack", () => {
  test("pack create names the stub; smolvm writes <stub>.smolmachine beside it", () => {
    expect(packCreateArgv({ image: "localhost:49153/bottle/agent:0123456789abcdef", output: "/c/.staging-1/0123456789abcdef" })).toEqual([
      "smolvm",
      "pack",
      "create",
      "--image",
      "localhost:49153/bottle/agent:0123456789abcdef",
      "--output",
      "/c/.staging-1/0123456789abcdef",
    ]);
    expect(() => packCreateArgv({ image: "x", output: "/c/k.smolmachine" })).toThrow(/names the stub/);
  });

  test("BOTTLE_SMOLVM picks the binary", () => {
    expect(smolvmBinary({})).toBe("smolvm");
    expect(smolvmBinary({ BOTTLE_SMOLVM: "/opt/smolvm/bin/smolvm" })).toBe("/opt/smolvm/bin/smolvm");
  });
});

describe("machine create", () => {
  test("from the cached .smolmachine, allowlist = the gate's /32, proxy env explicit, idle workload", () => {
    const argv = machineCreateArgv({
      name: "bottle-dev",
      smolmachine: "/home/u/.cache/bottle/smolmachines/0123456789abcdef.smolmachine",
      gate: GATE,
      env: { BOTTLE_NAME: "bottle-dev" },
      volumes: [{ host: "/home/u/project", guest: "/workspace" }, { host: "/home/u/ro", guest: "/ro", readonly: true }],
      cpus: 2,
      memoryMib: 2048,
    });
    expect(argv).toEqual([
      "smolvm",
      "machine",
      "create",
      "--name",
      "bottle-dev",
      "--from",
      "/home/u/.cache/bottle/smolmachines/0123456789abcdef.smolmachine",
      "--allow-cidr",
      "127.201.7.9/32",
      "--cpus",
      "2",
      "--mem",
      "2048",
      "-v",
      "/home/u/project:/workspace",
      "-v",
      "/home/u/ro:/ro:ro",
      "-e",
      "BOTTLE_NAME=bottle-dev",
      "-e",
      `HTTP_PROXY=${PROXY}`,
      "-e",
      `HTTPS_PROXY=${PROXY}`,
      "-e",
      `http_proxy=${PROXY}`,
      "-e",
      `https_proxy=${PROXY}`,
      "-e",
      "NO_PROXY=localhost,127.0.0.1,::1",
      "-e",
      "no_proxy=localhost,127.0.0.1,::1",
      "--",
      "sleep",
      "infinity",
    ]);
  });

  test("never opens more than the gate: no --net, no --outbound-localhost-only, one --allow-cidr", () => {
    const argv = machineCreateArgv({ name: "b", smolmachine: "/m.smolmachine", gate: GATE });
    expect(argv).not.toContain("--net");
    expect(argv).not.toContain("--outbound-localhost-only");
    expect(argv).not.toContain("--allow-host");
    expect(argv.filter((arg) => arg === "--allow-cidr")).toHaveLength(1);
  });

  test("the manifest cannot override the proxy variables", () => {
    const argv = machineCreateArgv({ name: "b", smolmachine: "/m.smolmachine", gate: GATE, env: { HTTPS_PROXY: "http://evil:1" } });
    expect(argv).not.toContain("HTTPS_PROXY=http://evil:1");
    expect(argv).toContain(`HTTPS_PROXY=${PROXY}`);
  });

  test("refuses a gate that is not on loopback, bad names, bad env names and ':' in volumes", () => {
    expect(() => machineCreateArgv({ name: "b", smolmachine: "/m", gate: { host: "0.0.0.0", port: 3128 } })).toThrow(/not a loopback/);
    expect(() => machineCreateArgv({ name: "b", smolmachine: "/m", gate: { host: "192.168.1.2", port: 3128 } })).toThrow(/not a loopback/);
    expect(() => machineCreateArgv({ name: "b", smolmachine: "/m", gate: { host: "127.0.0.1", port: 0 } })).toThrow(/invalid gate port/);
    expect(() => machineCreateArgv({ name: "B a d", smolmachine: "/m", gate: GATE })).toThrow(/invalid smolvm machine name/);
    expect(() => machineCreateArgv({ name: "b", smolmachine: "/m", gate: GATE, env: { "A=B": "x" } })).toThrow(/invalid environment variable/);
    expect(() => machineCreateArgv({ name: "b", smolmachine: "/m", gate: GATE, volumes: [{ host: "/a:b", guest: "/w" }] })).toThrow(/may not contain ':'/);
  });

  test("start / stop / delete / ls", () => {
    expect(machineStartArgv("bottle-dev")).toEqual(["smolvm", "machine", "start", "--name", "bottle-dev"]);
    expect(machineStopArgv("bottle-dev")).toEqual(["smolvm", "machine", "stop", "--name", "bottle-dev"]);
    expect(machineDeleteArgv("bottle-dev", "/bin/smolvm")).toEqual(["/bin/smolvm", "machine", "delete", "--name", "bottle-dev", "-f"]);
    expect(machineListArgv()).toEqual(["smolvm", "machine", "ls", "--json"]);
  });
});

describe("machine exec / cp", () => {
  test("exec -it as the workspace owner, secrets by name only", () => {
    expect(
      machineExecArgv({
        name: "bottle-dev",
        command: ["claude", "--dangerously-skip-permissions"],
        interactive: true,
        tty: true,
        workdir: "/workspace",
        env: { TERM: "xterm-256color" },
        secretEnv: ["ANTHROPIC_API_KEY"],
        user: { uid: 1000, gid: 1000 },
      }),
    ).toEqual([
      "smolvm",
      "machine",
      "exec",
      "--name",
      "bottle-dev",
      "-i",
      "-t",
      "-w",
      "/workspace",
      "-e",
      "TERM=xterm-256color",
      "--secret-env",
      "ANTHROPIC_API_KEY=ANTHROPIC_API_KEY",
      "--",
      "setpriv",
      "--reuid=1000",
      "--regid=1000",
      "--clear-groups",
      "--",
      "claude",
      "--dangerously-skip-permissions",
    ]);
  });

  test("plain exec", () => {
    expect(machineExecArgv({ name: "b", command: ["true"] })).toEqual(["smolvm", "machine", "exec", "--name", "b", "--", "true"]);
    expect(() => machineExecArgv({ name: "b", command: [] })).toThrow(/needs a command/);
  });

  test("cp in and out use NAME:PATH on the VM side", () => {
    expect(machineCopyInArgv("bottle-dev", "/tmp/skills.tar", "/tmp/skills.tar")).toEqual(["smolvm", "machine", "cp", "/tmp/skills.tar", "bottle-dev:/tmp/skills.tar"]);
    expect(machineCopyOutArgv("bottle-dev", "/workspace/out.json", "/tmp/out.json")).toEqual(["smolvm", "machine", "cp", "bottle-dev:/workspace/out.json", "/tmp/out.json"]);
    expect(() => machineCopyInArgv("b", "/tmp/a:b", "/x")).toThrow(/may not contain ':'/);
  });
});

describe("gate address", () => {
  test("Linux: a per-bottle 127.x address, never 127.0.0.1; elsewhere 127.0.0.1", () => {
    const a = gateLoopbackAddress("bottle-a", "linux");
    expect(isLoopbackIPv4(a)).toBe(true);
    expect(a).not.toBe("127.0.0.1");
    expect(Number(a.split(".")[1])).toBeGreaterThanOrEqual(200);
    expect(gateLoopbackAddress("bottle-a", "linux")).toBe(a);
    expect(gateLoopbackAddress("bottle-b", "linux")).not.toBe(a);
    expect(gateLoopbackAddress("bottle-a", "darwin")).toBe("127.0.0.1");
  });

  test("isLoopbackIPv4", () => {
    for (const ok of ["127.0.0.1", "127.255.255.254"]) expect(isLoopbackIPv4(ok)).toBe(true);
    for (const bad of ["128.0.0.1", "127.0.0", "127.0.0.256", "localhost", "::1", "127.0.0.1/32"]) expect(isLoopbackIPv4(bad)).toBe(false);
  });

  test("proxy env points every variant at the gate", () => {
    expect(proxyEnv(GATE)).toMatchObject({ HTTP_PROXY: PROXY, HTTPS_PROXY: PROXY, http_proxy: PROXY, https_proxy: PROXY });
  });
});

describe("parseMachineList", () => {
  test("array, wrapped array, junk", () => {
    expect(parseMachineList('[{"name": "bottle-a", "state": "running"}, {"name": "default"}]')).toEqual([
      { name: "bottle-a", state: "running" },
      { name: "default" },
    ]);
    expect(parseMachineList('{"machines": [{"name": "x", "state": "stopped"}]}')).toEqual([{ name: "x", state: "stopped" }]);
    expect(parseMachineList("No machines found")).toEqual([]);
  });
});

describe("post-start egress check", () => {
  const CANARY = { host: "127.0.0.1", port: 40001 };

  test("passes when only the gate answers", async () => {
    const exec = recordingExec((argv) => ({ exitCode: argv.includes(GATE.host) ? 0 : 1 }));
    await verifyMachineEgress(exec, { name: "b", gate: GATE, denied: [CANARY] });
    expect(exec.calls.map((call) => call.argv)).toEqual([probeArgv("b", GATE), probeArgv("b", CANARY)]);
    expect(probeArgv("b", CANARY)).toEqual([
      "smolvm",
      "machine",
      "exec",
      "--name",
      "b",
      "--",
      "timeout",
      "5",
      "bash",
      "-c",
      'exec 3<>"/dev/tcp/$1/$2"',
      "probe",
      "127.0.0.1",
      "40001",
    ]);
  });

  test("fails when the allowlist was not applied (the canary answers)", async () => {
    const exec = recordingExec(() => ({ exitCode: 0 }));
    await expect(verifyMachineEgress(exec, { name: "b", gate: GATE, denied: [CANARY] })).rejects.toThrow(/egress policy not applied.*127\.0\.0\.1:40001/);
  });

  test("fails when the gate is unreachable", async () => {
    const exec = recordingExec(() => ({ exitCode: 1 }));
    await expect(verifyMachineEgress(exec, { name: "b", gate: GATE, denied: [CANARY] })).rejects.toThrow(/cannot reach its gate/);
  });

  test("refuses to prove nothing", async () => {
    await expect(verifyMachineEgress(recordingExec(), { name: "b", gate: GATE, denied: [] })).rejects.toThrow(/at least one/);
  });

  test("launchMachine: create, start, verify — and removes the machine when the check fails", async () => {
    const spec = { name: "bottle-dev", smolmachine: "/m.smolmachine", gate: GATE };
    const ok = recordingExec((argv) => ({ exitCode: argv.includes("timeout") && !argv.includes(GATE.host) ? 1 : 0 }));
    await launchMachine(ok, spec, { denied: [CANARY] });
    expect(ok.calls.map((call) => call.argv.slice(1, 3).join(" "))).toEqual(["machine create", "machine start", "machine exec", "machine exec"]);

    const leaky = recordingExec(() => ({ exitCode: 0 }));
    await expect(launchMachine(leaky, spec, { denied: [CANARY] })).rejects.toThrow(/egress policy not applied/);
    expect(leaky.calls.slice(-2).map((call) => call.argv)).toEqual([machineStopArgv("bottle-dev"), machineDeleteArgv("bottle-dev")]);

    const noCreate = recordingExec((argv) => ({ exitCode: argv[2] === "create" ? 1 : 0 }));
    await expect(launchMachine(noCreate, spec, { denied: [CANARY] })).rejects.toThrow(/failed/);
    expect(noCreate.calls).toHaveLength(1);
  });

  test("withCanary listens on the given address for the duration of the check", async () => {
    const port = await withCanary("127.0.0.1", async (canary) => {
      const socket = await Bun.connect({ hostname: canary.host, port: canary.port, socket: { data() {} } });
      socket.end();
      return canary.port;
    });
    await expect(Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })).rejects.toThrow();
  });
});
