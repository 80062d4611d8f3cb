/**
 * Where the gate's services listen. The config's `listen` names networks
 * (addresses or CIDRs): the bottle's internal network on the docker backend,
 * the egress network for a VM's gate (reached through loopback publishes).
 * The proxy, the DNS responder and Claude Code's route each bind to every
 * address of the gate inside them, never to a wildcard: on the gate's other
 * side (the egress network, which the host and other containers reach)
 * nothing answers.
 */
import type * as net from "node:net";
import { networkInterfaces } from "node:os";
import { cidrContains, parseCidr, parseIp } from "./addresses.ts";

/** The local addresses inside any of `listen` (addresses or CIDRs). */
export function listenAddresses(listen: readonly string[], interfaces: readonly string[]): string[] {
  const cidrs = listen.map((entry) => parseCidr(entry)).filter((cidr) => cidr !== null);
  return interfaces.filter((address) => {
    const ip = parseIp(address);
    return ip !== null && cidrs.some((cidr) => cidrContains(cidr, ip));
  });
}

/** Every interface address of the machine (loopback included). */
export function systemInterfaces(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((info) => info.address.replace(/%.*$/, ""));
}

/** The gate's addresses to listen on; throws when none is inside `listen` (a gate that answers nowhere is a broken launch). */
export function bindAddresses(listen: readonly string[], interfaces: readonly string[]): string[] {
  const addresses = listenAddresses(listen, interfaces);
  if (addresses.length === 0) throw new Error(`no local address inside ${listen.join(", ")} to listen on`);
  return addresses;
}

/** `server.listen` on one address, resolved once bound; a bind error rejects. */
export function bindServer(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen({ host, port }, () => {
      server.removeListener("error", onError);
      resolve();
    });
  });
}
