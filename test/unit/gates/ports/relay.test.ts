import { afterEach, describe, expect, test } from "bun:test";
import * as net from "node:net";
import type { NetworkInterfaceInfo } from "node:os";
import { RELAY_READY_LINE, relayReadyLine } from "../../../../lib/gates/ports/daemon/ready-line.ts";
import { listenAddresses, startRelay } from "../../../../lib/gates/ports/daemon/relay.ts";

/** The relay daemon on the host: what it listens on, and that it carries bytes (and WebSockets) to its one target only. */

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function info(address: string, netmask: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask, family: "IPv4", mac: "02:42:00:00:00:00", internal, cidr: null };
}

/** A relay on 127.0.0.1 (a free port) in front of `target`. */
async function relayTo(target: { host: string; port: number }, maxConnections = 16): Promise<number> {
  const [server] = await startRelay({ addresses: ["127.0.0.1"], port: 0, target, maxConnections, keepAliveMs: 30_000 });
  closers.push(() => server!.close());
  return (server!.address() as net.AddressInfo).port;
}

/** A TCP server that records what each connection sent and answers `reply(data)` once the client half-closes. */
async function recordingServer(reply: (data: string) => string): Promise<{ port: number; received: string[] }> {
  const received: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let data = "";
    socket.on("data", (chunk) => (data += chunk.toString()));
    socket.on("end", () => {
      received.push(data);
      socket.end(reply(data));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, received };
}

/** Sends `data`, half-closes, and resolves with everything that comes back until the relay closes (or resets) the connection. */
function exchange(port: number, data: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk.toString()));
    socket.on("close", () => resolve(answer));
    socket.on("error", () => undefined);
    socket.end(data);
  });
}

describe("where a relay listens", () => {
  test("on its ports-side address only: never on loopback or the bottle's network", () => {
    const interfaces = {
      lo: [info("127.0.0.1", "255.0.0.0", true)],
      eth0: [info("172.20.0.2", "255.255.0.0")],
      eth1: [info("198.18.4.4", "255.255.255.240")],
      eth2: [{ address: "fe80::1", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6" as const, mac: "02:42:00:00:00:00", internal: false, cidr: null, scopeid: 2 }],
    };
    expect(listenAddresses(interfaces, { host: "198.18.4.3", port: 3000 })).toEqual(["172.20.0.2"]);
    // Whichever interface the internal network is.
    expect(listenAddresses({ eth0: [info("198.18.4.4", "255.255.255.240")], eth1: [info("172.20.0.2", "255.255.0.0")] }, { host: "198.18.4.3", port: 1 })).toEqual([
      "172.20.0.2",
    ]);
  });

  test("with no address but the bottle's network it refuses to start", async () => {
    expect(startRelay({ addresses: [], port: 0, target: { host: "198.18.4.3", port: 3000 }, maxConnections: 1, keepAliveMs: 1000 })).rejects.toThrow(
      "no address to listen on besides the bottle's network",
    );
  });

  test("its ready line names where it listens and its one target", () => {
    expect(relayReadyLine(["172.20.0.2:3000"], { host: "198.18.4.3", port: 3000 })).toBe(`${RELAY_READY_LINE} 172.20.0.2:3000 -> 198.18.4.3:3000\n`);
  });
});

describe("what a relay forwards", () => {
  test("bytes both ways, the client's half-close passed on, the answer after it", async () => {
    const target = await recordingServer((data) => `got ${data.length} bytes`);
    const port = await relayTo({ host: "127.0.0.1", port: target.port });
    const big = "x".repeat(1_000_000);
    expect(await exchange(port, big)).toBe("got 1000000 bytes");
    expect(target.received).toEqual([big]);
  });

  test("to its one target whatever the client asks for (CONNECT, an absolute URL, a Host header)", async () => {
    const target = await recordingServer(() => "target");
    const other = await recordingServer(() => "OTHER");
    const port = await relayTo({ host: "127.0.0.1", port: target.port });
    for (const request of [
      `CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\n\r\n`,
      `GET http://127.0.0.1:${other.port}/ HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\n\r\n`,
      `PROXY TCP4 127.0.0.1 127.0.0.1 1 ${other.port}\r\n`,
    ])
      expect(await exchange(port, request)).toBe("target");
    expect(other.received).toEqual([]);
    expect(target.received).toHaveLength(3);
  });

  test("a target that refuses closes the client's connection", async () => {
    const unused = net.createServer();
    await new Promise<void>((resolve) => unused.listen(0, "127.0.0.1", resolve));
    const closed = (unused.address() as net.AddressInfo).port;
    await new Promise((resolve) => unused.close(resolve));
    const port = await relayTo({ host: "127.0.0.1", port: closed });
    expect(await exchange(port, "hello")).toBe("");
  });

  test("a WebSocket passes as it is, and stays open between messages", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request, srv) => (srv.upgrade(request) ? undefined : new Response("plain")),
      websocket: {
        message: (ws, message) => {
          ws.send(`echo: ${String(message)}`);
        },
      },
    });
    closers.push(() => server.stop(true));
    const port = await relayTo({ host: "127.0.0.1", port: server.port! });
    const socket = new WebSocket(`ws://127.0.0.1:${port}/hmr`);
    const messages: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      socket.onopen = () => {
        socket.send("one");
        setTimeout(() => socket.send("two"), 300);
      };
      socket.onmessage = (event) => {
        messages.push(String(event.data));
        if (messages.length === 2) resolve();
      };
      socket.onerror = () => reject(new Error("websocket error"));
    });
    await done;
    socket.close();
    expect(messages).toEqual(["echo: one", "echo: two"]);
  });

  test("past its connection limit, new connections are closed at once", async () => {
    const held: net.Socket[] = [];
    const target = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    closers.push(() => {
      for (const socket of held) socket.destroy();
      target.close();
    });
    const port = await relayTo({ host: "127.0.0.1", port: (target.address() as net.AddressInfo).port }, 2);
    const open = [net.connect(port, "127.0.0.1"), net.connect(port, "127.0.0.1")];
    closers.push(() => open.forEach((socket) => socket.destroy()));
    await Promise.all(open.map((socket) => new Promise((resolve) => socket.once("connect", resolve))));
    while (held.length < 2) await Bun.sleep(10);
    expect(await exchange(port, "third")).toBe("");
  });
});
