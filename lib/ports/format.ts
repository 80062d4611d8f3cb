import type { OpenPort } from "../backends/types.ts";
import type { PortForward } from "../plan.ts";
import { hostAddress } from "./host.ts";

/** How forwarded ports read: in the preflight, at launch, in `bottle ls` and `bottle port NAME`. */

/** `127.0.0.1:3000->3000`: the host's side, then the bottle's port (docker ps's order). */
export function formatOpenPort(open: OpenPort): string {
  return `${hostAddress(open.hostIp, open.hostPort)}->${open.port}`;
}

/** The preflight's row: where each port will answer on the host. */
export function formatForwards(forwards: PortForward[]): string {
  return forwards
    .map((forward) => {
      const host = forward.hostPort === undefined ? `${hostAddress(forward.hostIp, undefined)}` : hostAddress(forward.hostIp, forward.hostPort);
      return `${host} → ${forward.port}${forward.takenBy ? ` (${forward.port} is taken by ${forward.takenBy})` : ""}`;
    })
    .join(", ");
}

/** Said when a port's relay is up: where to open it, and why it is not on its own number when it moved. */
export function openPortMessage(bottle: string, open: OpenPort, forward: Pick<PortForward, "takenBy">): string {
  const url = `http://${hostAddress(open.hostIp === "0.0.0.0" ? "127.0.0.1" : open.hostIp === "::" ? "::1" : open.hostIp, open.hostPort)}/`;
  const moved = forward.takenBy ? ` (the host's ${open.port} is taken by ${forward.takenBy})` : "";
  return `${bottle}'s port ${open.port} answers on ${hostAddress(open.hostIp, open.hostPort)}: ${url}${moved}`;
}
