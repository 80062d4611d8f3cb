/**
 * How the gate tells the host it is up: one line on stdout, which the
 * launch reads from its attached start (lib/backends/docker.ts).
 */
import { isIPv4 } from "node:net";

/**
 * The line the gate prints on stdout once its listeners are bound: its IPv4
 * addresses follow and, with credential routes, `ca=` and their CA (PEM,
 * base64), which the bottle must trust. The launch reads both from it.
 */
export const EGRESS_READY_LINE = "egress gate ready";

export function egressReadyLine(addresses: string[], caPem?: string | null): string {
  const ca = caPem ? [`ca=${Buffer.from(caPem).toString("base64")}`] : [];
  return `${[EGRESS_READY_LINE, ...addresses, ...ca].join(" ")}\n`;
}

/** The CA a ready line carries (PEM), if any. */
export function readyLineCa(line: string): string | undefined {
  const encoded = /(?:^|\s)ca=([A-Za-z0-9+/]+=*)(?:\s|$)/.exec(line)?.[1];
  return encoded ? Buffer.from(encoded, "base64").toString() : undefined;
}

/** The addresses a ready line names (the launch learns the gate's egress address from it). */
export function readyLineAddresses(line: string): string[] {
  const at = line.indexOf(EGRESS_READY_LINE);
  if (at === -1) return [];
  return line
    .slice(at + EGRESS_READY_LINE.length)
    .split(/\s+/)
    .filter((word) => isIPv4(word));
}
