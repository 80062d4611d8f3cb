import { backendOf } from "../backends/index.ts";
import { forwardedPorts, listBottleContainers } from "../backends/objects.ts";
import type { OpenPort } from "../backends/types.ts";
import { usageError } from "../cli/args.ts";
import { dockerFor } from "../docker.ts";
import { BottleError } from "../errors.ts";
import type { Exec } from "../exec.ts";
import { requireRunning } from "../lifecycle.ts";
import { log } from "../log.ts";
import { parsePortSpec } from "../manifest/ports.ts";
import type { PortForward } from "../plan.ts";
import { buildInfo } from "../version.ts";
import { exposureWarning, hostAddress } from "./host.ts";
import { listeningAdvice, listeningOn } from "./listeners.ts";
import { bindAddress, portForwarding, REMOTE_FIX, remoteEngineProblem, takenFix, takenHostPorts } from "./plan.ts";

/**
 * `bottle port NAME [HOSTPORT:]PORT | --rm PORT`: a port more or less on a
 * running bottle, checked against the host like a launch's (lib/ports/plan.ts),
 * forwarded by the bottle's backend. Without a port: what it forwards now.
 */

/** What a running bottle forwards now, from its relays. */
export async function listPorts(exec: Exec, name: string): Promise<OpenPort[]> {
  const { plan } = await requireRunning(exec, name);
  return forwardedPorts(await listBottleContainers(dockerFor(exec, plan.engine), { name, scope: "own" }), name);
}

export async function addPort(exec: Exec, name: string, text: string, bind: string | undefined): Promise<{ open: OpenPort; forward: PortForward }> {
  const spec = parsePortSpec(text);
  if ("problem" in spec) throw usageError(spec.problem, `bottle port ${name} 3000 (the bottle's port 3000), or 8080:3000 (on the host's 8080)`);
  const hostIp = bindAddress(bind);
  const { bottle, plan } = await requireRunning(exec, name);
  if (plan.engine?.remote) throw new BottleError(remoteEngineProblem(plan.engine), { fix: REMOTE_FIX });
  const forwarding = portForwarding(backendOf(plan.backend));
  const docker = dockerFor(exec, plan.engine);
  let forward: PortForward = { port: spec.port, hostIp, hostPort: spec.hostPort ?? spec.port, explicit: spec.hostPort !== undefined };
  const holder = (await takenHostPorts(docker, [forward])).get(forward.hostPort!);
  if (holder !== undefined && forward.explicit) throw new BottleError(`the host port ${hostAddress(hostIp, forward.hostPort)} is taken by ${holder}`, { fix: takenFix(spec) });
  if (holder !== undefined) forward = { port: forward.port, hostIp, explicit: false, takenBy: holder };
  const exposure = exposureWarning(name, hostIp, [spec.port]);
  if (exposure) log.warn(exposure);
  const [open, sockets] = await Promise.all([forwarding.open(docker, plan, forward, buildInfo.version), bottle.exec(["cat", "/proc/net/tcp", "/proc/net/tcp6"], { check: false })]);
  const advice = listeningAdvice(name, spec.port, listeningOn(sockets.stdout, spec.port));
  if (advice) log.warn(advice);
  return { open, forward };
}

export async function removePort(exec: Exec, name: string, text: string): Promise<void> {
  const spec = parsePortSpec(text);
  if ("problem" in spec || spec.hostPort !== undefined)
    throw usageError(`--rm takes the bottle's port, got "${text}"`, `bottle port ${name} --rm 3000 (see \`bottle port ${name}\`)`);
  const { plan } = await requireRunning(exec, name);
  const closed = await portForwarding(backendOf(plan.backend)).close(dockerFor(exec, plan.engine), plan, spec.port);
  if (!closed) throw new BottleError(`${name} does not forward its port ${spec.port}`, { fix: `see \`bottle port ${name}\`` });
}
