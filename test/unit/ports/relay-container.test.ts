import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { removeLaterRelays, dockerPorts, openPlannedPorts, publishArg, relayContainerSpec, RELAY_SCRIPT, teardownWithRelays } from "../../../lib/backends/docker/ports.ts";
import { internalAddresses } from "../../../lib/backends/internal-subnet.ts";
import type { Created, LaunchRequest } from "../../../lib/backends/types.ts";
import { containerArgs, Docker } from "../../../lib/docker.ts";
import { log } from "../../../lib/log.ts";
import { stateDir } from "../../../lib/paths.ts";
import { LABELS, type PortForward } from "../../../lib/plan.ts";
import { recordingExec, type Responder } from "../../helpers/exec.ts";
import { makePlan } from "../../helpers/unit.ts";

/** A port's relay on the docker backend: its container, the order of what a launch and `bottle port` run, a taken port. */

const plan = makePlan({ name: "bottle-web" });
const internal = internalAddresses(16);
const forward = (port: number, hostPort: number | undefined, explicit = hostPort !== undefined): PortForward => ({
  port,
  hostIp: "127.0.0.1",
  ...(hostPort === undefined ? {} : { hostPort }),
  explicit,
});

let quiet: ReturnType<typeof spyOn>[] = [];
beforeAll(() => {
  quiet = [spyOn(log, "info").mockImplementation((() => undefined) as never), spyOn(log, "warn").mockImplementation((() => undefined) as never)];
});
afterAll(() => quiet.forEach((spy) => spy.mockRestore()));

function request(created: Created = { networks: [], containers: [] }): LaunchRequest {
  return { version: "1.2.3", secrets: [], created, ready: async () => undefined };
}

describe("the relay container", () => {
  const spec = relayContainerSpec(plan, forward(3000, 3000), "198.18.1.3", "1.2.3");

  test("its whole docker run: nobody, no capabilities, read-only, limits, no forwarding, one target", () => {
    expect(containerArgs(spec)).toEqual([
      "--name", "bottle-web-port-3000",
      ...Object.entries({ ...plan.labels, ...spec.labels }).flatMap(([key, value]) => ["--label", `${key}=${value}`]),
      "--network", "bottle-web-ports",
      "--cap-drop", "ALL",
      "--security-opt", "no-new-privileges",
      "--pids-limit", "64",
      "--memory", String(96 * 1024 ** 2), "--memory-swap", String(96 * 1024 ** 2),
      "--user", "65534:65534",
      "--entrypoint", "node",
      "--init",
      "--read-only",
      "--publish", "127.0.0.1:3000:3000",
      "--sysctl", "net.ipv4.ip_forward=0",
      "--sysctl", "net.ipv4.conf.all.forwarding=0",
      "--sysctl", "net.ipv4.ip_unprivileged_port_start=0",
      "--interactive",
      plan.images.gate.tag,
      RELAY_SCRIPT, "3000", "198.18.1.3:3000",
    ]); // prettier-ignore
  });

  test("labelled like every object of its bottle, with the port it forwards to", () => {
    expect(spec.labels).toMatchObject({ [LABELS.name]: "bottle-web", [LABELS.role]: "port", [LABELS.port]: "3000" });
  });

  test("published on the asked address and port, or on any free port of that address", () => {
    expect(publishArg(forward(80, 8080))).toBe("127.0.0.1:8080:80");
    expect(publishArg(forward(3000, undefined))).toBe("127.0.0.1::3000");
    expect(publishArg({ port: 3000, hostIp: "0.0.0.0", hostPort: 3000 })).toBe("0.0.0.0:3000:3000");
    expect(publishArg({ port: 3000, hostIp: "::1", hostPort: 3000 })).toBe("[::1]:3000:3000");
  });
});

/** docker commands in order, without the relay's long create line. */
function steps(calls: { argv: string[] }[]): string[] {
  return calls.map(({ argv }) => {
    if (argv[1] === "create") return `create ${argv[argv.indexOf("--name") + 1]} --publish ${argv[argv.indexOf("--publish") + 1]}`;
    if (argv[1] === "network" && argv[2] === "create") return `network create ${argv.at(-1)} ${argv.filter((arg) => arg.startsWith("com.docker")).join(" ")}`;
    return argv.slice(1).join(" ");
  });
}

describe("a launch's relays", () => {
  test("the ports network, then each relay: created published, joined to the internal network after the bottle's address, started attached", async () => {
    const exec = recordingExec();
    const created: Created = { networks: [], containers: [] };
    await openPlannedPorts(new Docker(exec), { ...plan, ports: [forward(3000, 3000), forward(80, 8080)] }, internal, request(created));
    expect(steps(exec.calls)).toEqual([
      "network create bottle-web-ports com.docker.network.bridge.enable_icc=false com.docker.network.bridge.enable_ip_masquerade=false",
      "create bottle-web-port-3000 --publish 127.0.0.1:3000:3000",
      "create bottle-web-port-80 --publish 127.0.0.1:8080:80",
      "network connect --ip 198.18.1.4 bottle-web-internal bottle-web-port-3000",
      "network connect --ip 198.18.1.5 bottle-web-internal bottle-web-port-80",
      "start --attach --interactive bottle-web-port-3000",
      "start --attach --interactive bottle-web-port-80",
    ]);
    expect(created).toEqual({ networks: ["bottle-web-ports"], containers: ["bottle-web-port-3000", "bottle-web-port-80"] });
  });

  test("no ports: nothing at all", async () => {
    const exec = recordingExec();
    await openPlannedPorts(new Docker(exec), plan, internal, request());
    expect(exec.calls).toEqual([]);
  });

  const allocated = "Error response from daemon: driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:3000 failed: port is already allocated";
  const holder = JSON.stringify({ ID: "1", Names: "web-dev", State: "running", Ports: "127.0.0.1:3000->80/tcp", Labels: "" });
  /** The first start of the relay of 3000 finds its host port taken. */
  const takenOnce = (): Responder => {
    let refused = false;
    return (argv) => {
      if (argv[1] === "start" && argv.at(-1) === "bottle-web-port-3000" && !refused) {
        refused = true;
        return { exitCode: 1, stderr: allocated };
      }
      return taken(argv);
    };
  };
  const taken: Responder = (argv) => {
    if (argv[1] === "ps") return { stdout: holder };
    if (argv[1] === "container" && argv[2] === "inspect") return { stdout: JSON.stringify({ NetworkSettings: { Networks: {}, Ports: { "3000/tcp": [{ HostIp: "127.0.0.1", HostPort: "49153" }] } } }) };
    return undefined;
  };

  test("an implicit host port taken since planning: the relay is made again on any free port, which is read back", async () => {
    const exec = recordingExec(takenOnce());
    const created: Created = { networks: [], containers: [] };
    await openPlannedPorts(new Docker(exec), { ...plan, ports: [forward(3000, 3000, false)] }, internal, request(created));
    expect(steps(exec.calls)).toEqual([
      "network create bottle-web-ports com.docker.network.bridge.enable_icc=false com.docker.network.bridge.enable_ip_masquerade=false",
      "create bottle-web-port-3000 --publish 127.0.0.1:3000:3000",
      "network connect --ip 198.18.1.4 bottle-web-internal bottle-web-port-3000",
      "start --attach --interactive bottle-web-port-3000",
      "rm --force --volumes bottle-web-port-3000",
      "ps --no-trunc --format {{json .}} --filter publish=3000",
      "create bottle-web-port-3000 --publish 127.0.0.1::3000",
      "network connect --ip 198.18.1.4 bottle-web-internal bottle-web-port-3000",
      "start --attach --interactive bottle-web-port-3000",
      "container inspect --format {{json .}} bottle-web-port-3000",
    ]);
    expect(created.containers).toEqual(["bottle-web-port-3000"]);
  });

  test("an explicit host port taken since planning is an error naming its holder, and no relay stays", async () => {
    const exec = recordingExec(takenOnce());
    const created: Created = { networks: [], containers: [] };
    const launch = openPlannedPorts(new Docker(exec), { ...plan, ports: [forward(3000, 3000, true)] }, internal, request(created));
    expect(launch).rejects.toThrow("the host port 127.0.0.1:3000 is taken by the container web-dev");
    await launch.catch(() => undefined);
    expect(created.containers).toEqual([]);
  });
});

describe("bottle port on a running bottle", () => {
  const running: Responder = (argv) => {
    if (argv[1] === "container" && argv.at(-1) === "bottle-web")
      return { stdout: JSON.stringify({ NetworkSettings: { Networks: { "bottle-web-internal": { IPAddress: "198.18.1.3" } } } }) };
    if (argv[1] === "container" && argv[2] === "inspect") return { exitCode: 1, stderr: "No such container" };
    return undefined;
  };

  test("to the bottle's address on its network; Docker places the relay there (the gate and the bottle have theirs)", async () => {
    const exec = recordingExec(running);
    const open = await dockerPorts.open(new Docker(exec), plan, forward(5173, 5173), "1.2.3");
    expect(open).toEqual({ port: 5173, hostIp: "127.0.0.1", hostPort: 5173 });
    expect(steps(exec.calls).slice(3)).toEqual([
      "network create bottle-web-ports com.docker.network.bridge.enable_icc=false com.docker.network.bridge.enable_ip_masquerade=false",
      "create bottle-web-port-5173 --publish 127.0.0.1:5173:5173",
      "network connect bottle-web-internal bottle-web-port-5173",
      "start --attach --interactive bottle-web-port-5173",
    ]);
    expect(exec.calls.find((call) => call.argv[1] === "create")!.argv.slice(-3)).toEqual([RELAY_SCRIPT, "5173", "198.18.1.3:5173"]);
  });

  test("a port forwarded already, or one past the limit, is an error before anything is made", async () => {
    const forwarded = recordingExec((argv) => (argv[1] === "container" ? { stdout: JSON.stringify({ NetworkSettings: { Networks: { "bottle-web-internal": { IPAddress: "198.18.1.3" } } } }) } : undefined));
    expect(dockerPorts.open(new Docker(forwarded), plan, forward(5173, 5173), "1.2.3")).rejects.toThrow("port 5173 of bottle-web is forwarded already");
    const relays = Array.from({ length: dockerPorts.max }, (_, i) => JSON.stringify({ Names: `bottle-web-port-${i + 1}`, Labels: `bottle.name=bottle-web,bottle.role=port` })).join("\n");
    const full = recordingExec((argv) => (argv[1] === "ps" ? { stdout: relays } : running(argv)));
    expect(dockerPorts.open(new Docker(full), plan, forward(5173, 5173), "1.2.3")).rejects.toThrow("bottle-web forwards 11 ports, the most a bottle can");
    for (const exec of [forwarded, full]) expect(exec.calls.map((call) => call.argv[1])).not.toContain("create");
  });

  test("--rm removes the relay, and the ports network with the last one", async () => {
    const exec = recordingExec((argv) => (argv[1] === "container" ? { stdout: "{}" } : undefined));
    expect(await dockerPorts.close(new Docker(exec), plan, 3000)).toBe(true);
    expect(steps(exec.calls)).toEqual([
      "container inspect --format {{json .}} bottle-web-port-3000",
      "rm --force --volumes bottle-web-port-3000",
      `ps --no-trunc --format {{json .}} --all --filter label=bottle.name=bottle-web --filter label=bottle.state=${stateDir()}`,
      "network rm bottle-web-ports",
    ]);
    const none = recordingExec((argv) => (argv[1] === "container" ? { exitCode: 1 } : undefined));
    expect(await dockerPorts.close(new Docker(none), plan, 3000)).toBe(false);
  });
});

describe("teardown", () => {
  test("relays `bottle port` added while the launcher ran go too, with their ports network", async () => {
    const relays = ["bottle-web-port-3000", "bottle-web-port-6000"].map((name) => JSON.stringify({ Names: name, Labels: "bottle.name=bottle-web,bottle.role=port" })).join("\n");
    const exec = recordingExec((argv) => (argv[1] === "ps" ? { stdout: relays } : undefined));
    await removeLaterRelays(new Docker(exec), { name: "bottle-web", networks: ["bottle-web-ports"], containers: ["bottle-web", "bottle-web-port-3000"] });
    expect(steps(exec.calls).slice(1)).toEqual(["rm --force --volumes bottle-web-port-6000"]);
    const later = recordingExec((argv) => (argv[1] === "ps" ? { stdout: relays } : undefined));
    await removeLaterRelays(new Docker(later), { name: "bottle-web", networks: [], containers: ["bottle-web"] });
    expect(steps(later.calls).slice(1)).toEqual(["rm --force --volumes bottle-web-port-3000 bottle-web-port-6000", "network rm bottle-web-ports"]);
  });

  test("a later relay may hold the internal network as it goes: the launch's networks go once more after it", async () => {
    const relays = JSON.stringify({ Names: "bottle-web-port-6000", Labels: "bottle.name=bottle-web,bottle.role=port" });
    const exec = recordingExec((argv) => (argv[1] === "ps" ? { stdout: relays } : undefined));
    await teardownWithRelays(new Docker(exec), { name: "bottle-web", networks: ["bottle-web-internal"], containers: ["bottle-web"] });
    expect(steps(exec.calls).filter((step) => step.startsWith("network rm bottle-web-internal"))).toHaveLength(2);
    const none = recordingExec();
    await teardownWithRelays(new Docker(none), { name: "bottle-web", networks: ["bottle-web-internal"], containers: ["bottle-web"] });
    expect(steps(none.calls).filter((step) => step.startsWith("network rm bottle-web-internal"))).toHaveLength(1);
  });

  test("a launch that never had a name asks nothing", async () => {
    const exec = recordingExec();
    await removeLaterRelays(new Docker(exec), { networks: [], containers: [] });
    expect(exec.calls).toEqual([]);
  });
});
