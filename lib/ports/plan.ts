import type { Backend, PortForwarding } from "../backends/types.ts";
import type { Docker } from "../docker.ts";
import { BottleError } from "../errors.ts";
import { usageError } from "../cli/args.ts";
import { displayPath, ManifestError, type ManifestIssue } from "../manifest/errors.ts";
import { formatPortSpec, parsePortSpec, portClashes, type PortSpec } from "../manifest/ports.ts";
import type { Located } from "../manifest/types.ts";
import type { PortForward } from "../plan.ts";
import { bindProblem, DEFAULT_BIND, hostAddress, OTHER_PROCESS, portHolders, probeHostPort, type HostPortProbe } from "./host.ts";
import { type Engine, engineName } from "../engine.ts";

/**
 * The ports a launch forwards: the bottle's `ports:` with `-p` on top (a
 * `-p` for a port the bottle lists replaces its entry), on 127.0.0.1 unless
 * `--bind`; checked against the backend (can it forward at all, how many)
 * and the host (a taken HOSTPORT is an error naming its holder; a taken
 * implicit one becomes any free port) before anything is created.
 */

/** A port asked for, and where, for errors. */
interface Asked {
  spec: PortSpec;
  /** `-p 8080:3000`, or `ports[1]` with the file's position. */
  where: string;
  /** Set for a manifest's entry: its errors are located there. */
  at?: Omit<ManifestIssue, "message">;
}

export const CLI_PORTS_FIX = "write -p 3000 (the bottle's port 3000) or -p 8080:3000 (on the host's 8080); several: -p 3000,8080:80";

/** `-p 3000,8080:80` → specs; a bad one is a usage error. */
export function parseCliPorts(value: string | undefined, flag = "-p"): PortSpec[] {
  if (value === undefined) return [];
  return value.split(",").map((text) => {
    const parsed = parsePortSpec(text.trim());
    if ("problem" in parsed) throw usageError(`${flag} ${value}: ${parsed.problem}`, CLI_PORTS_FIX);
    return parsed;
  });
}

function fromManifest(entry: Located<PortSpec>): Asked {
  return { spec: entry.value, where: `${entry.path} (${displayPath(entry.file)}:${entry.line})`, at: { file: entry.file, line: entry.line, col: entry.col, path: entry.path } };
}

function fail(asked: Asked, message: string, fix: string): BottleError {
  return asked.at ? new ManifestError([{ ...asked.at, message }], { fix }) : usageError(`-p ${formatPortSpec(asked.spec)}: ${message}`, fix);
}

/** A remote engine publishes a port on its own machine, where this one's check of the host port does not look. */
export function remoteEngineProblem(engine: Engine): string {
  return `the bottle runs on the docker engine ${engineName(engine)} (${engine.endpoint}): a forwarded port would open on that machine, not this one`;
}

export const REMOTE_FIX = "reach the bottle's server through that machine (e.g. ssh -L 3000:… to a relay you run there), or run the bottle on this machine's engine";

/** The backend's way to forward ports, or an error naming it. */
export function portForwarding(backend: Backend, asked: { at?: Omit<ManifestIssue, "message"> } = {}): PortForwarding {
  if (backend.ports) return backend.ports;
  const message = `the ${backend.name} backend cannot forward ports`;
  const fix = "run this bottle with --backend docker, or forward no ports";
  throw asked.at ? new ManifestError([{ ...asked.at, message }], { fix }) : new BottleError(message, { fix });
}

/** The `--bind` address (127.0.0.1 when absent); a bad one is a usage error. */
export function bindAddress(bind: string | undefined): string {
  if (bind === undefined) return DEFAULT_BIND;
  const problem = bindProblem(bind);
  if (problem) throw usageError(problem, "leave --bind out for 127.0.0.1 (this machine only), or give an address like 0.0.0.0");
  return bind;
}

/**
 * Host ports of these forwards that are taken, with who holds them: a probe
 * bind each, then one docker call naming the containers among the holders.
 */
export async function takenHostPorts(docker: Docker, forwards: Array<Pick<PortForward, "hostIp" | "hostPort">>, probe: HostPortProbe = probeHostPort): Promise<Map<number, string>> {
  const ports = forwards.filter((forward): forward is { hostIp: string; hostPort: number } => forward.hostPort !== undefined);
  const states = await Promise.all(ports.map((forward) => probe(forward.hostIp, forward.hostPort)));
  const taken = ports.filter((_, index) => states[index] === "taken").map((forward) => forward.hostPort);
  const holders = await portHolders(docker, taken);
  return new Map(taken.map((port) => [port, holders.get(port) ?? OTHER_PROCESS]));
}

/** What to do about a taken explicit host port. */
export function takenFix(spec: PortSpec): string {
  return `free it, or forward to another host port (like ${(spec.hostPort ?? spec.port) + 1}:${spec.port})`;
}

/** Each asked port as a forward: where it goes on the host, and (for an implicit one that is taken) off its own number. */
export async function planPorts(
  manifest: Located<PortSpec>[],
  options: { cli: PortSpec[]; bind?: string },
  context: { backend: Backend; docker: Docker; probe?: HostPortProbe; engine?: Engine },
): Promise<PortForward[]> {
  const hostIp = bindAddress(options.bind);
  const cli = options.cli.map((spec): Asked => ({ spec, where: `-p ${formatPortSpec(spec)}` }));
  const asked = [...manifest.map(fromManifest).filter((entry) => !cli.some((flag) => flag.spec.port === entry.spec.port)), ...cli];
  if (asked.length === 0) {
    if (options.bind !== undefined) throw usageError("--bind without a port to forward", "add -p PORT (or ports: in the bottle), or leave --bind out");
    return [];
  }
  if (context.engine?.remote) throw fail(asked[0]!, remoteEngineProblem(context.engine), REMOTE_FIX);
  const forwarding = portForwarding(context.backend, asked[0]!);
  const clash = portClashes(asked.map((entry) => entry.spec), (index) => asked[index]!.where)[0];
  if (clash) throw fail(asked[clash.index]!, clash.problem, "forward each bottle port once, each on a host port of its own");
  if (asked.length > forwarding.max)
    throw fail(asked[forwarding.max]!, `a ${context.backend.name} bottle forwards at most ${forwarding.max} ports`, "forward fewer ports (`bottle port NAME PORT` adds one to a running bottle)");
  const forwards = asked.map((entry): PortForward => ({ port: entry.spec.port, hostIp, hostPort: entry.spec.hostPort ?? entry.spec.port, explicit: entry.spec.hostPort !== undefined }));
  const taken = await takenHostPorts(context.docker, forwards, context.probe);
  return forwards.map((forward, index) => {
    const holder = taken.get(forward.hostPort!);
    if (holder === undefined) return forward;
    if (forward.explicit) throw fail(asked[index]!, `the host port ${hostAddress(hostIp, forward.hostPort)} is taken by ${holder}`, takenFix(asked[index]!.spec));
    const { hostPort: _taken, ...moved } = forward;
    return { ...moved, takenBy: holder };
  });
}
