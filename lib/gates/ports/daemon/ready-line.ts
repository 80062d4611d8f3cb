/**
 * How a port's relay tells the host it is up: one line on stdout, which the
 * launch reads from its attached start (lib/backends/docker/ports.ts).
 */

export const RELAY_READY_LINE = "port relay ready";

/** `port relay ready 172.20.0.2:3000 -> 198.18.4.3:3000`. */
export function relayReadyLine(listening: string[], target: { host: string; port: number }): string {
  return `${RELAY_READY_LINE} ${listening.join(" ")} -> ${target.host}:${target.port}\n`;
}
