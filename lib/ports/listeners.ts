/**
 * Who listens on a port inside the bottle, read from its /proc/net/tcp and
 * tcp6: a relay reaches a server that listens on every address (or on the
 * bottle's own), never one that listens on loopback only — the usual
 * default of dev servers (`vite`, `next dev`), and the usual surprise.
 */

/** `reachable`: on every address, or on the bottle's own. */
export type Listening = "reachable" | "loopback-only" | "nothing";

const LISTEN = "0A";

/** `0100007F` (IPv4, little-endian words) or 32 hex digits (IPv6): is it a loopback address, or any address? */
function kind(hex: string): "any" | "loopback" | "address" {
  if (/^0+$/.test(hex)) return "any";
  if (hex.length === 8) return hex.toUpperCase().endsWith("7F") ? "loopback" : "address";
  const upper = hex.toUpperCase();
  if (upper === "00000000000000000000000001000000") return "loopback";
  // An IPv4-mapped address (::ffff:a.b.c.d): its last word is the IPv4 one.
  if (upper.startsWith("0000000000000000FFFF0000")) return kind(upper.slice(24));
  return "address";
}

/** From the text of /proc/net/tcp and /proc/net/tcp6 (one after the other). */
export function listeningOn(procNetTcp: string, port: number): Listening {
  const kinds = procNetTcp
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[3] === LISTEN && /^[0-9A-Fa-f]+:[0-9A-Fa-f]{4}$/.test(fields[1] ?? ""))
    .filter((fields) => Number.parseInt(fields[1]!.split(":")[1]!, 16) === port)
    .map((fields) => kind(fields[1]!.split(":")[0]!));
  if (kinds.length === 0) return "nothing";
  return kinds.every((found) => found === "loopback") ? "loopback-only" : "reachable";
}

/** What to tell the user about a forwarded port's server, or undefined when the relay can reach it. */
export function listeningAdvice(bottle: string, port: number, listening: Listening): string | undefined {
  const how = "have it listen on every address (0.0.0.0), e.g. `vite --host`, `next dev -H 0.0.0.0`, `python3 -m http.server --bind 0.0.0.0`";
  if (listening === "loopback-only") return `the server on ${bottle}'s port ${port} listens on 127.0.0.1 only, which the relay cannot reach: ${how}`;
  if (listening === "nothing") return `nothing listens on ${bottle}'s port ${port} yet; when you start the server, ${how}`;
  return undefined;
}
