import { afterEach, describe, expect, test } from "bun:test";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { EgressConfigError, validateConfig } from "../../../../lib/gates/egress/daemon/config.ts";
import { QTYPE, encodeQuery } from "../../../../lib/gates/egress/daemon/dns.ts";
import { bindAddresses, listenAddresses } from "../../../../lib/gates/egress/daemon/listen.ts";
import { type TestGate, baseConfig, freePort, startGate } from "./helpers.ts";

/**
 * Where the gate listens: only on its own addresses inside `listen` (the
 * bottle's internal network), never on a wildcard that would also answer on
 * its egress side. Every address of 127.0.0.0/8 is local on Linux, so
 * 127.0.0.2 stands in for the gate's egress address.
 */

const gates: TestGate[] = [];
afterEach(async () => {
  await Promise.all(gates.splice(0).map((g) => g.close()));
});

/** "open", or the error code of a TCP connect. */
function tcpConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("open");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** "answer", or "no answer" after 500 ms (or an ICMP error). */
function udpAsk(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    const done = (result: string): void => {
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => done("no answer"), 500);
    socket.on("message", () => done("answer"));
    socket.on("error", () => done("no answer"));
    socket.send(encodeQuery("allowed.test", QTYPE.A), port, host);
  });
}

describe("listen addresses", () => {
  test("the interface addresses inside the listen ranges, IPv4 and IPv6", () => {
    const interfaces = ["127.0.0.1", "198.18.4.2", "172.20.0.3", "fe80::1", "fd00::5"];
    expect(listenAddresses(["198.18.4.0/28"], interfaces)).toEqual(["198.18.4.2"]);
    expect(listenAddresses(["198.18.4.0/28", "fd00::/8"], interfaces)).toEqual(["198.18.4.2", "fd00::5"]);
    expect(listenAddresses(["172.20.0.3"], interfaces)).toEqual(["172.20.0.3"]);
    expect(listenAddresses(["10.0.0.0/8"], interfaces)).toEqual([]);
  });

  test("a gate with no address inside its listen ranges refuses to start", () => {
    expect(() => bindAddresses(["10.0.0.0/8"], ["127.0.0.1"])).toThrow("no local address inside 10.0.0.0/8 to listen on");
  });

  test("the config's listen: a non-empty list of addresses or CIDRs", () => {
    const problem = (listen: unknown): string => {
      try {
        validateConfig({ ...baseConfig("/tmp/unused"), listen });
        return "valid";
      } catch (error) {
        expect(error).toBeInstanceOf(EgressConfigError);
        return (error as Error).message;
      }
    };
    expect(problem(["198.18.4.0/28"])).toBe("valid");
    expect(problem("0.0.0.0")).toBe("listen: expected an array of strings");
    expect(problem([])).toBe("listen: must not be empty");
    expect(problem(["gate"])).toBe("listen[0]: expected an address or CIDR");
  });
});

describe("the gate binds its listen addresses only", () => {
  const interfaces = () => ["127.0.0.1", "127.0.0.2"];
  // Fixed ports, as in the gate (with port 0 each address would get its own).
  const freePorts = async () => ({ proxyPort: await freePort(), dnsPort: await freePort() });

  test("proxy and DNS (UDP, TCP) answer on the listen address and not on the gate's other address", async () => {
    const g = await startGate({ ...(await freePorts()), listen: ["127.0.0.1/32"], allow: ["allowed.test"] }, { "allowed.test": ["192.0.2.1"] }, { interfaces });
    gates.push(g);
    const ports = g.gate.ports();
    // Controls: the listen address answers.
    expect(await tcpConnect("127.0.0.1", ports.proxy)).toBe("open");
    expect(await tcpConnect("127.0.0.1", ports.dnsTcp)).toBe("open");
    expect(await udpAsk("127.0.0.1", ports.dnsUdp)).toBe("answer");
    // The other side: nothing listens there.
    expect(await tcpConnect("127.0.0.2", ports.proxy)).toBe("ECONNREFUSED");
    expect(await tcpConnect("127.0.0.2", ports.dnsTcp)).toBe("ECONNREFUSED");
    expect(await udpAsk("127.0.0.2", ports.dnsUdp)).toBe("no answer");
  });

  test("every address inside the listen ranges gets its listeners", async () => {
    const g = await startGate({ ...(await freePorts()), listen: ["127.0.0.0/8"], allow: ["allowed.test"] }, { "allowed.test": ["192.0.2.1"] }, { interfaces });
    gates.push(g);
    const ports = g.gate.ports();
    for (const host of ["127.0.0.1", "127.0.0.2"]) {
      expect({ host, proxy: await tcpConnect(host, ports.proxy), dns: await udpAsk(host, ports.dnsUdp) }).toEqual({ host, proxy: "open", dns: "answer" });
    }
  });

  test("no listen address: the gate does not start", async () => {
    await expect(startGate({ listen: ["10.255.0.0/16"] }, {}, { interfaces })).rejects.toThrow("no local address inside 10.255.0.0/16");
  });
});
