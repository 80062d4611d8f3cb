/**
 * A port's relay: a TCP forwarder that sits on the bottle's internal network
 * and on its ports network, listens only on the ports side (where Docker
 * publishes it to the host) and forwards each connection, byte for byte, to
 * one address and port: the bottle's. It parses nothing, so WebSockets and
 * other long-lived connections pass as they are; on the internal side
 * nothing of it answers, so the bottle cannot use it to reach anything.
 */
import * as net from "node:net";
import type { NetworkInterfaceInfo } from "node:os";

export interface RelayTarget {
  host: string;
  port: number;
}

export interface RelayOptions {
  /** Where it listens (see listenAddresses) and on which port. */
  addresses: string[];
  port: number;
  /** The one place every connection goes. */
  target: RelayTarget;
  /** Connections at once; past it, new ones are closed at once. */
  maxConnections: number;
  /** Keep-alive probes on both sockets, so a dead peer of an idle long-lived connection is noticed. */
  keepAliveMs: number;
}

function ipv4Number(address: string): number {
  return address.split(".").reduce((sum, part) => sum * 256 + Number(part), 0);
}

/** Is `address` on the network of `info` (its address and netmask)? */
function onNetworkOf(info: NetworkInterfaceInfo, address: string): boolean {
  const mask = ipv4Number(info.netmask);
  return (ipv4Number(info.address) & mask) >>> 0 === (ipv4Number(address) & mask) >>> 0;
}

/**
 * The addresses to listen on: every IPv4 address of the container but
 * loopback and the one on the target's network (the bottle's internal
 * network), i.e. its address on the ports network, where Docker publishes it.
 */
export function listenAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>, target: RelayTarget): string[] {
  const addresses: string[] = [];
  for (const info of Object.values(interfaces).flat()) {
    if (!info || info.family !== "IPv4" || info.internal) continue;
    if (onNetworkOf(info, target.host)) continue;
    addresses.push(info.address);
  }
  return addresses;
}

/** Pipes one accepted connection to the target and back, half-closes passed on; an error on either side ends both. */
function forward(client: net.Socket, options: RelayOptions): void {
  const upstream = net.connect({ host: options.target.host, port: options.target.port, allowHalfOpen: true, noDelay: true });
  for (const socket of [client, upstream]) socket.setKeepAlive(true, options.keepAliveMs);
  client.setNoDelay(true);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", end);
  upstream.on("error", end);
  client.on("close", end);
  upstream.on("close", end);
  client.pipe(upstream);
  upstream.pipe(client);
}

/** Listens on each address; resolves with the servers once all are bound. */
export async function startRelay(options: RelayOptions): Promise<net.Server[]> {
  if (options.addresses.length === 0) throw new Error("no address to listen on besides the bottle's network");
  return Promise.all(
    options.addresses.map(
      (address) =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer({ allowHalfOpen: true }, (client) => forward(client, options));
          server.maxConnections = options.maxConnections;
          server.once("error", reject);
          server.listen({ host: address, port: options.port }, () => {
            server.off("error", reject);
            resolve(server);
          });
        }),
    ),
  );
}
