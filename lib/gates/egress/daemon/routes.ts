/**
 * The gateways of the gate's own routes (from /proc/net/route and
 * /proc/net/ipv6_route). Each is the Docker host's address on a network the
 * gate sits on (its egress network's bridge), so the gate refuses them like
 * the host addresses the launch lists: the launch can then write the gate's
 * config before its egress network exists.
 */
import { readFileSync } from "node:fs";

const RTF_GATEWAY = 0x2;

/** IPv4 gateways: `Gateway` is a little-endian hex address, used when the route's flags say RTF_GATEWAY. */
export function ipv4RouteGateways(table: string): string[] {
  const gateways: string[] = [];
  for (const line of table.split("\n").slice(1)) {
    const [, , gateway, flags] = line.trim().split(/\s+/);
    if (!gateway || !flags || !/^[0-9A-Fa-f]{8}$/.test(gateway) || (Number.parseInt(flags, 16) & RTF_GATEWAY) === 0) continue;
    const value = Number.parseInt(gateway, 16);
    if (value === 0) continue;
    gateways.push([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24].join("."));
  }
  return gateways;
}

/** IPv6 gateways: a non-zero next hop (32 hex digits, the 5th field) of a route with RTF_GATEWAY. */
export function ipv6RouteGateways(table: string): string[] {
  const gateways: string[] = [];
  for (const line of table.split("\n")) {
    const fields = line.trim().split(/\s+/);
    const nextHop = fields[4];
    const flags = fields[8];
    if (!nextHop || !flags || !/^[0-9a-fA-F]{32}$/.test(nextHop) || /^0+$/.test(nextHop) || (Number.parseInt(flags, 16) & RTF_GATEWAY) === 0) continue;
    gateways.push(nextHop.match(/.{4}/g)!.map((group) => group.replace(/^0+(?=.)/, "")).join(":").toLowerCase());
  }
  return gateways;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** This host's (the gate container's) route gateways, deduplicated. */
export function ownRouteGateways(): string[] {
  return [...new Set([...ipv4RouteGateways(readOr("/proc/net/route")), ...ipv6RouteGateways(readOr("/proc/net/ipv6_route"))])];
}
