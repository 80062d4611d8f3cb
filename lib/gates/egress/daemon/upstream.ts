/** Connections to an upstream, only ever to addresses the admission vetted. */
import * as net from "node:net";
import { formatIp, type Ip } from "./addresses.ts";
import type { GateState, UpstreamConnector } from "./state.ts";

export const defaultConnector: UpstreamConnector = (address, port) =>
  net.connect({ host: address, port, allowHalfOpen: true, noDelay: true });

function connectOne(state: GateState, address: string, port: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    let socket: net.Socket;
    try {
      socket = state.connect(address, port);
    } catch {
      resolve(null);
      return;
    }
    state.track(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, state.timing.connectTimeoutMs);
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(null);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", onError);
      socket.on("error", () => undefined); // handled by the relay's close handling
      resolve(socket);
    });
  });
}

/** Connects to the vetted addresses in order (never resolving again). */
export async function connectVetted(state: GateState, addresses: readonly Ip[], port: number): Promise<net.Socket | null> {
  for (const ip of addresses) {
    const socket = await connectOne(state, formatIp(ip), port);
    if (socket) return socket;
  }
  return null;
}
