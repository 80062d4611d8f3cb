import { describe, expect, test } from "bun:test";
import { BACKENDS } from "../../../lib/backends/index.ts";
import { Docker } from "../../../lib/docker.ts";
import { BottleError } from "../../../lib/errors.ts";
import { ManifestError } from "../../../lib/manifest/errors.ts";
import type { PortSpec } from "../../../lib/manifest/ports.ts";
import type { Located } from "../../../lib/manifest/types.ts";
import { exposureWarning, type HostPortProbe, type HostPortState } from "../../../lib/ports/host.ts";
import { parseCliPorts, planPorts } from "../../../lib/ports/plan.ts";
import { recordingExec, type Responder } from "../../helpers/exec.ts";
import { caught } from "../../helpers/unit.ts";

/** Planning a launch's ports: manifest and -p, the backend's say, the host's ports probed before anything exists. */

const docker = (responder?: Responder) => new Docker(recordingExec(responder));
const free: HostPortProbe = async () => "free";
/** A probe that finds these host ports in that state, the rest free. */
const probeWith =
  (states: Record<number, HostPortState>): HostPortProbe =>
  async (_ip, port) =>
    states[port] ?? "free";

function entry(spec: PortSpec, index: number, line = index + 2): Located<PortSpec> {
  return { value: spec, file: "/home/u/.config/bottle/bottles/dev.yaml", line, col: 5, path: `ports[${index}]` };
}

const plan = (manifest: Located<PortSpec>[], options: { cli?: PortSpec[]; bind?: string } = {}, probe = free, responder?: Responder, backend = BACKENDS.docker) =>
  planPorts(manifest, { cli: options.cli ?? [], bind: options.bind }, { backend, docker: docker(responder), probe });

describe("-p", () => {
  test("one or several, comma-separated", () => {
    expect(parseCliPorts(undefined)).toEqual([]);
    expect(parseCliPorts("3000")).toEqual([{ port: 3000 }]);
    expect(parseCliPorts("3000, 8080:80")).toEqual([{ port: 3000 }, { port: 80, hostPort: 8080 }]);
  });

  test("a bad one is a usage error naming it", () => {
    const error = (() => {
      try {
        parseCliPorts("3000,http");
      } catch (thrown) {
        return thrown as BottleError;
      }
    })()!;
    expect(error.message).toBe('-p 3000,http: expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got "http"');
    expect(error.exitCode).toBe(2);
  });
});

describe("the forwards of a launch", () => {
  test("none asked: none, and no question to the host", async () => {
    const exec = recordingExec();
    expect(await planPorts([], { cli: [] }, { backend: BACKENDS.docker, docker: new Docker(exec), probe: free })).toEqual([]);
    expect(exec.calls).toEqual([]);
  });

  test("the bottle's ports with -p on top, on 127.0.0.1; a -p for a listed port replaces its entry", async () => {
    expect(await plan([entry({ port: 3000 }, 0), entry({ port: 80, hostPort: 8080 }, 1)], { cli: [{ port: 3000, hostPort: 3001 }, { port: 5173 }] })).toEqual([
      { port: 80, hostIp: "127.0.0.1", hostPort: 8080, explicit: true },
      { port: 3000, hostIp: "127.0.0.1", hostPort: 3001, explicit: true },
      { port: 5173, hostIp: "127.0.0.1", hostPort: 5173, explicit: false },
    ]);
  });

  test("--bind moves them all; a bad address, or --bind with no port, is a usage error", async () => {
    expect((await plan([], { cli: [{ port: 3000 }], bind: "0.0.0.0" }))[0]!.hostIp).toBe("0.0.0.0");
    const bad = (await caught(plan([], { cli: [{ port: 3000 }], bind: "localhost" }))) as BottleError;
    expect(bad.message).toBe('--bind takes an IP address of this machine (like 127.0.0.1 or 0.0.0.0), got "localhost"');
    expect(bad.exitCode).toBe(2);
    const alone = (await caught(plan([], { bind: "0.0.0.0" }))) as BottleError;
    expect(alone.message).toBe("--bind without a port to forward");
  });

  test("beyond loopback, a warning says who else can connect", () => {
    expect(exposureWarning("bottle-x", "127.0.0.1", [3000])).toBeUndefined();
    expect(exposureWarning("bottle-x", "::1", [3000])).toBeUndefined();
    expect(exposureWarning("bottle-x", "0.0.0.0", [3000, 80])).toBe(
      "bottle-x's ports 3000, 80 will be published on every address of this machine: anyone who can reach this machine there can connect to the bottle's server (without --bind, only this machine can)",
    );
    expect(exposureWarning("bottle-x", "192.168.1.5", [3000])).toContain("published on 192.168.1.5");
  });

  test("a backend that cannot forward ports: an error naming it, at the manifest's entry or for -p", async () => {
    const fromManifest = await caught(plan([entry({ port: 3000 }, 0)], {}, free, undefined, BACKENDS.smolmachines));
    expect(fromManifest).toBeInstanceOf(ManifestError);
    expect((fromManifest as ManifestError).message).toBe("/home/u/.config/bottle/bottles/dev.yaml:2:5: ports[0]: the smolmachines backend cannot forward ports");
    expect((fromManifest as ManifestError).fix).toBe("run this bottle with --backend docker, or forward no ports");
    const fromFlag = (await caught(plan([], { cli: [{ port: 3000 }] }, free, undefined, BACKENDS.smolmachines))) as BottleError;
    expect(fromFlag.message).toBe("the smolmachines backend cannot forward ports");
  });

  test("a -p whose host port a listed port already asks for clashes, naming both", async () => {
    const error = (await caught(plan([entry({ port: 3000 }, 0)], { cli: [{ port: 4000, hostPort: 3000 }] }))) as BottleError;
    expect(error.message).toBe('-p 3000:4000: host port 3000 is asked for by ports[0] (/home/u/.config/bottle/bottles/dev.yaml:2) too — give one of them another host port ("HOSTPORT:PORT")');
  });

  test("more ports than a bottle can forward", async () => {
    const many = Array.from({ length: 12 }, (_, i) => ({ port: 3000 + i }));
    const error = (await caught(plan([], { cli: many }))) as BottleError;
    expect(error.message).toBe("-p 3011: a docker bottle forwards at most 11 ports");
  });
});

describe("the host's side, probed before anything is created", () => {
  const relay = JSON.stringify({ ID: "1", Names: "bottle-other-port-3000", State: "running", Ports: "127.0.0.1:3000->3000/tcp", Labels: "bottle.name=bottle-other,bottle.role=port,bottle.port=3000" });
  const container = JSON.stringify({ ID: "2", Names: "postgres", State: "running", Ports: "0.0.0.0:5432->5432/tcp, :::5432->5432/tcp", Labels: "" });
  const holders: Responder = (argv) => (argv[1] === "ps" ? { stdout: `${relay}\n${container}` } : undefined);

  test("a taken HOSTPORT is an error naming its holder: a bottle's relay (and how to free it), a container, another process", async () => {
    const probe = probeWith({ 3000: "taken", 5432: "taken", 8080: "taken" });
    const byRelay = (await caught(plan([], { cli: [{ port: 3000, hostPort: 3000 }] }, probe, holders))) as BottleError;
    expect(byRelay.message).toBe("-p 3000:3000: the host port 127.0.0.1:3000 is taken by bottle-other's port 3000 (`bottle port bottle-other --rm 3000` frees it)");
    expect(byRelay.fix).toBe("free it, or forward to another host port (like 3001:3000)");
    const byContainer = (await caught(plan([entry({ port: 5432, hostPort: 5432 }, 0)], {}, probe, holders))) as ManifestError;
    expect(byContainer.message).toBe("/home/u/.config/bottle/bottles/dev.yaml:2:5: ports[0]: the host port 127.0.0.1:5432 is taken by the container postgres");
    const byOther = (await caught(plan([], { cli: [{ port: 80, hostPort: 8080 }] }, probe, holders))) as BottleError;
    expect(byOther.message).toBe("-p 8080:80: the host port 127.0.0.1:8080 is taken by another process (see `ss -ltnp`)");
  });

  test("one docker call names the holders of every taken port; none when nothing is taken", async () => {
    const exec = recordingExec(holders);
    const probe = probeWith({ 3000: "taken", 5432: "taken" });
    await planPorts([], { cli: [{ port: 3000 }, { port: 5432 }, { port: 80 }] }, { backend: BACKENDS.docker, docker: new Docker(exec), probe });
    expect(exec.calls.map((call) => call.argv.slice(1).join(" "))).toEqual(["ps --no-trunc --format {{json .}} --filter publish=3000 --filter publish=5432"]);
    const none = recordingExec(holders);
    await planPorts([], { cli: [{ port: 80 }] }, { backend: BACKENDS.docker, docker: new Docker(none), probe: free });
    expect(none.calls).toEqual([]);
  });

  test("a taken implicit one moves to any free port, saying who had it", async () => {
    expect(await plan([], { cli: [{ port: 3000 }, { port: 80 }] }, probeWith({ 3000: "taken" }), holders)).toEqual([
      { port: 3000, hostIp: "127.0.0.1", explicit: false, takenBy: "bottle-other's port 3000 (`bottle port bottle-other --rm 3000` frees it)" },
      { port: 80, hostIp: "127.0.0.1", hostPort: 80, explicit: false },
    ]);
  });

  test("a port this user may not bind (a low one, not root) is left to Docker, whose proxy can", async () => {
    expect(await plan([], { cli: [{ port: 80 }] }, probeWith({ 80: "unknown" }))).toEqual([{ port: 80, hostIp: "127.0.0.1", hostPort: 80, explicit: false }]);
  });
});
