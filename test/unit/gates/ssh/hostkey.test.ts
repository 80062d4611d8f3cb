import { afterAll, describe, expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { sshGateConfig } from "./gate-config.ts";
import { forbiddenAddress, SshGate } from "../../../../lib/gates/ssh/daemon/gate.ts";
import { GATE_IDENT, HostKeyCheck, HostKeyError, SshStreamReader, disconnectPacket, fingerprintOf, hostKeyMessage, negotiateKex } from "../../../../lib/gates/ssh/daemon/hostkey.ts";
import { concat, keyBlob, sshString, uint32 } from "../../../../lib/gates/ssh/daemon/wire.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";

/**
 * The gate's own host-key check on forwarded SSH connections: crafted
 * transport streams, then the real OpenSSH client through the real
 * forwarder to a scripted server.
 */

afterAll(cleanupTempDirs);

const PINNED_TEXT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const PINNED = keyBlob(PINNED_TEXT);
const OTHER = keyBlob("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEHVmAhDjnZ5b5CJ6pBqpSC7W7gmLRr8c8GN6t9N4QOw");
const text = (value: string) => new TextEncoder().encode(value);

/** One cleartext binary packet (RFC 4253 §6), padded to 8 bytes. */
function packet(payload: Uint8Array): Uint8Array {
  let padding = 8 - ((payload.length + 5) % 8);
  if (padding < 4) padding += 8;
  return concat(uint32(payload.length + padding + 1), Uint8Array.of(padding), payload, new Uint8Array(padding));
}

function kexinit(kex: string[], hostKeys = ["ssh-ed25519"]): Uint8Array {
  const list = (names: string[]) => sshString(names.join(","));
  return concat(
    Uint8Array.of(20),
    new Uint8Array(16).fill(9),
    list(kex),
    list(hostKeys),
    // ciphers, MACs, compression (each way), languages (each way).
    ...[["aes128-ctr"], ["aes128-ctr"], ["hmac-sha2-256"], ["hmac-sha2-256"], ["none"], ["none"], [], []].map(list),
    Uint8Array.of(0),
    uint32(0),
  );
}

const reply = (type: number, hostKey: Uint8Array) => concat(Uint8Array.of(type), sshString(hostKey), sshString(new Uint8Array(32)), sshString(new Uint8Array(83)));
const CLIENT_KEX = ["mlkem768x25519-sha256", "curve25519-sha256", "ext-info-c", "kex-strict-c-v00@openssh.com"];
const clientStream = () => concat(text("SSH-2.0-OpenSSH_10.0\r\n"), packet(kexinit(CLIENT_KEX)), packet(concat(Uint8Array.of(30), sshString(new Uint8Array(32)))));
const serverStream = (hostKey: Uint8Array, kex = ["curve25519-sha256", "kex-strict-s-v00@openssh.com"]) =>
  // After NEWKEYS comes ciphertext, often in the same read: it must not be taken for packets.
  concat(text("SSH-2.0-OpenSSH_9.2\r\n"), packet(kexinit(kex)), packet(reply(31, hostKey)), packet(Uint8Array.of(21)), new Uint8Array(64).fill(0xff));

describe("negotiation", () => {
  test("the first client method the server has wins; ext-info and strict-kex markers never do", () => {
    expect(negotiateKex(CLIENT_KEX, ["curve25519-sha256", "mlkem768x25519-sha256"])).toBe("mlkem768x25519-sha256");
    expect(negotiateKex(["ext-info-c", "curve25519-sha256"], ["ext-info-c", "curve25519-sha256"])).toBe("curve25519-sha256");
    expect(negotiateKex(["a"], ["b"])).toBeUndefined();
  });

  test("K_S comes in message 31 for (EC)DH and hybrid methods, 33 under group exchange, unknown for GSS", () => {
    for (const kex of ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256", "diffie-hellman-group1-sha1", "sntrup761x25519-sha512@openssh.com", "mlkem768x25519-sha256"])
      expect(hostKeyMessage(kex)).toBe(31);
    expect(hostKeyMessage("diffie-hellman-group-exchange-sha256")).toBe(33);
    expect(hostKeyMessage("gss-group14-sha256-")).toBeUndefined();
    expect(hostKeyMessage("something-new@example.com")).toBeUndefined();
  });
});

describe("the host-key check", () => {
  test("the pinned key passes; the check is done before the server's NEWKEYS", () => {
    const check = new HostKeyCheck(PINNED);
    check.fromClient(clientStream());
    expect(check.fromServer(serverStream(PINNED))).toEqual({ state: "verified", kex: "curve25519-sha256" });
    expect(check.done).toBe(true);
  });

  test("any other key is refused, naming both fingerprints", () => {
    const check = new HostKeyCheck(PINNED);
    check.fromClient(clientStream());
    expect(() => check.fromServer(serverStream(OTHER))).toThrow(HostKeyError);
    const again = new HostKeyCheck(PINNED);
    again.fromClient(clientStream());
    expect(() => again.fromServer(serverStream(OTHER))).toThrow(`the server presented ssh-ed25519 ${fingerprintOf(OTHER)}, the bottle pins ssh-ed25519 ${fingerprintOf(PINNED)}`);
    // The same key type with one bit flipped is another key.
    const flipped = Uint8Array.from(PINNED);
    flipped[flipped.length - 1]! ^= 1;
    const bit = new HostKeyCheck(PINNED);
    bit.fromClient(clientStream());
    expect(() => bit.fromServer(serverStream(flipped))).toThrow("host key mismatch");
  });

  test("byte-by-byte delivery, banner lines before the version and IGNORE/DEBUG packets change nothing", () => {
    const check = new HostKeyCheck(PINNED);
    const client = clientStream();
    for (const byte of client) check.fromClient(Uint8Array.of(byte));
    const server = concat(
      text("Welcome to the test server\r\nsecond banner line\n"),
      text("SSH-2.0-OpenSSH_9.2\r\n"),
      packet(concat(Uint8Array.of(2), sshString("ignore me"))),
      packet(kexinit(["curve25519-sha256"])),
      packet(concat(Uint8Array.of(4), Uint8Array.of(0), sshString("debug"), sshString(""))),
      packet(reply(31, PINNED)),
    );
    const states = Array.from(server, (byte) => check.fromServer(Uint8Array.of(byte)).state);
    expect(states.at(-1)).toBe("verified");
    expect(states.slice(0, -1).every((state) => state === "pending")).toBe(true);
  });

  test("group exchange: the group message (31) is skipped, K_S is read from the reply (33)", () => {
    const kex = ["diffie-hellman-group-exchange-sha256"];
    const check = new HostKeyCheck(PINNED);
    check.fromClient(concat(text("SSH-2.0-x\r\n"), packet(kexinit(kex))));
    const group = packet(concat(Uint8Array.of(31), sshString(Uint8Array.of(0, 0xff)), sshString(Uint8Array.of(2))));
    expect(check.fromServer(concat(text("SSH-2.0-y\r\n"), packet(kexinit(kex)), group)).state).toBe("pending");
    expect(check.fromServer(packet(reply(33, PINNED)))).toEqual({ state: "verified", kex: kex[0]! });
    const wrong = new HostKeyCheck(PINNED);
    wrong.fromClient(concat(text("SSH-2.0-x\r\n"), packet(kexinit(kex))));
    expect(() => wrong.fromServer(concat(text("SSH-2.0-y\r\n"), packet(kexinit(kex)), group, packet(reply(33, OTHER))))).toThrow("host key mismatch");
  });

  test.each([
    ["a key exchange the gate cannot follow (GSS)", () => serverStream(PINNED, ["gss-group14-sha256-abc"]), ["gss-group14-sha256-abc"]],
    ["no common key exchange", () => serverStream(PINNED, ["diffie-hellman-group1-sha1"]), CLIENT_KEX],
    ["NEWKEYS before any host key", () => concat(text("SSH-2.0-y\r\n"), packet(kexinit(["curve25519-sha256"])), packet(Uint8Array.of(21))), CLIENT_KEX],
    ["a reply before the server's KEXINIT", () => concat(text("SSH-2.0-y\r\n"), packet(reply(31, PINNED))), CLIENT_KEX],
    ["a second KEXINIT", () => concat(text("SSH-2.0-y\r\n"), packet(kexinit(["curve25519-sha256"])), packet(kexinit(["curve25519-sha256"]))), CLIENT_KEX],
    ["an SSH-1 server", () => text("SSH-1.5-old\r\n"), CLIENT_KEX],
    ["a packet length beyond the limit", () => concat(text("SSH-2.0-y\r\n"), uint32(1 << 30), new Uint8Array(8)), CLIENT_KEX],
    ["a reply too short to hold a key", () => concat(text("SSH-2.0-y\r\n"), packet(kexinit(["curve25519-sha256"])), packet(concat(Uint8Array.of(31), uint32(1000)))), CLIENT_KEX],
  ])("fails closed on %s", (_, server, clientKex) => {
    const check = new HostKeyCheck(PINNED);
    check.fromClient(concat(text("SSH-2.0-x\r\n"), packet(kexinit(clientKex as string[]))));
    expect(() => check.fromServer((server as () => Uint8Array)())).toThrow(HostKeyError);
  });

  test("a server that never sends a version line, or a client that does not start with one, is cut", () => {
    expect(() => new HostKeyCheck(PINNED).fromServer(new Uint8Array(20_000).fill(0x41))).toThrow("no SSH version line");
    expect(() => new HostKeyCheck(PINNED).fromClient(text("GET / HTTP/1.1\r\n"))).toThrow(HostKeyError);
    expect(() => new HostKeyCheck(PINNED).fromClient(concat(text("SSH-2.0-x\r\n"), packet(Uint8Array.of(50))))).toThrow("did not start with a key exchange");
  });
});

describe("addresses a listed host may not resolve to", () => {
  test("loopback, unspecified, link-local (metadata) and multicast are refused; ordinary and private addresses are not", () => {
    for (const address of ["127.0.0.1", "127.8.9.10", "0.0.0.0", "169.254.169.254", "224.0.0.1", "::1", "::", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "not-an-ip"])
      expect(forbiddenAddress(address)).toBe(true);
    for (const address of ["10.1.2.3", "192.168.1.1", "172.17.0.2", "203.0.113.5", "2001:db8::1", "::ffff:10.0.0.1"]) expect(forbiddenAddress(address)).toBe(false);
  });
});

// ---- the real OpenSSH client through the real forwarder ----

const hasSsh = Bun.which("ssh") !== null && Bun.which("ssh-keygen") !== null;

describe.skipIf(!hasSsh)("the real ssh client through the forwarder", () => {
  const servers: Server[] = [];
  const gates: SshGate[] = [];

  afterAll(async () => {
    for (const server of servers) server.close();
    await Promise.all(gates.map((gate) => gate.close()));
  });

  /** A scripted "server": version, KEXINIT, then after the client's first packets a key exchange reply carrying `hostKey`. */
  async function scriptedServer(hostKey: Uint8Array): Promise<{ port: number; received: () => number }> {
    let received = 0;
    const server = createServer((socket: Socket) => {
      socket.on("error", () => undefined);
      let sentReply = false;
      socket.write(concat(text("SSH-2.0-Scripted_1.0\r\n"), packet(kexinit(["mlkem768x25519-sha256", "sntrup761x25519-sha512", "curve25519-sha256"]))));
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (!sentReply) {
          sentReply = true;
          setTimeout(() => socket.write(packet(reply(31, hostKey))), 50);
        }
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { port: (server.address() as { port: number }).port, received: () => received };
  }

  async function throughGate(hostKey: Uint8Array, extra: string[] = []) {
    const dir = tempDir("bottle-ssh-fwd-");
    const upstream = await scriptedServer(hostKey);
    const log: Array<Record<string, unknown>> = [];
    const config = sshGateConfig(dir, [{ host: "listed.test", port: upstream.port, listenPort: 0, hostKey: PINNED_TEXT, user: "deploy" }]);
    const gate = new SshGate({ config, address: "127.0.0.1", resolve: async () => ["127.0.0.1"], addressAllowed: () => true, log: (entry) => log.push(entry) });
    gates.push(gate);
    const [, port] = await gate.start();
    Bun.spawnSync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "id")]);
    const proc = Bun.spawn(
      ["ssh", "-F", "/dev/null", "-p", String(port), "-i", join(dir, "id"), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", `UserKnownHostsFile=${join(dir, "kh")}`, ...extra, "127.0.0.1", "true"],
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir }, stdout: "pipe", stderr: "pipe" },
    );
    const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    for (let i = 0; i < 50 && log.length === 0; i++) await Bun.sleep(20);
    return { exitCode, stderr, log, upstream };
  }

  test("a server presenting another key is cut by the gate even when the client trusts anything", async () => {
    const out = await throughGate(OTHER, ["-o", "StrictHostKeyChecking=no"]);
    expect(out.exitCode).not.toBe(0);
    expect(out.log).toHaveLength(1);
    expect(out.log[0]).toMatchObject({ event: "connect", host: "listed.test", decision: "deny" });
    expect(String(out.log[0]!.detail)).toContain("host key mismatch");
    expect(out.stderr).not.toContain("Warning: Permanently added");
    // The bottle's ssh is told why, in a DISCONNECT the gate sends in clear before the key exchange ends.
    expect(out.stderr).toContain("Received disconnect from 127.0.0.1");
    expect(out.stderr).toContain(`bottle ssh gate: host key mismatch: the server presented ssh-ed25519 ${fingerprintOf(OTHER)}`);
  });

  test("with the pinned key the gate lets the key exchange go on (the scripted server cannot finish it)", async () => {
    const out = await throughGate(PINNED, ["-o", "StrictHostKeyChecking=no"]);
    expect(out.exitCode).not.toBe(0);
    expect(out.log[0]).toMatchObject({ event: "connect", host: "listed.test", decision: "allow", address: "127.0.0.1" });
    expect(out.log[0]!.bytesUp as number).toBeGreaterThan(100);
    expect(out.log[0]!.bytesDown as number).toBeGreaterThan(100);
    expect(typeof out.log[0]!.durationMs).toBe("number");
    // The real client's version line and KEXINIT were read and passed on.
    expect(out.upstream.received()).toBeGreaterThan(100);
  });

  test("a host resolving only to a forbidden address is refused before any connection", async () => {
    const dir = tempDir("bottle-ssh-fwd-");
    const config = sshGateConfig(dir, [{ host: "rebound.test", port: 22, listenPort: 0, hostKey: PINNED_TEXT, user: "deploy" }]);
    const gate = new SshGate({ config, address: "127.0.0.1", resolve: async () => ["169.254.169.254", "127.0.0.1"] });
    gates.push(gate);
    const [, port] = await gate.start();
    const proc = Bun.spawn(["ssh", "-F", "/dev/null", "-p", String(port), "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=/dev/null`, "127.0.0.1", "true"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(exitCode).not.toBe(0);
    // No server ever spoke: the gate answers with its own version line, then says why.
    expect(stderr).toContain("bottle ssh gate: rebound.test resolves to a forbidden address (169.254.169.254, 127.0.0.1)");
    for (let i = 0; i < 50; i++) {
      try {
        if (readFileSync(config.log, "utf8")) break;
      } catch {
        await Bun.sleep(20);
      }
    }
    const line = JSON.parse(readFileSync(config.log, "utf8").trim());
    expect(line).toMatchObject({ event: "connect", host: "rebound.test", decision: "deny", bottle: "bottle-unit" });
    expect(line.detail).toContain("forbidden address");
  });
});

describe("the gate's DISCONNECT", () => {
  test("is a well-formed cleartext packet carrying the reason", () => {
    const packetBytes = disconnectPacket("bottle ssh gate: nope", true);
    expect(packetBytes.length % 8).toBe(0);
    // Read back by the gate's own packet reader, after a version line.
    const reader = new SshStreamReader("server");
    const [payload] = reader.push(concat(text(GATE_IDENT), packetBytes));
    expect(payload![0]).toBe(1);
    expect(new TextDecoder().decode(payload!.subarray(9, 9 + 21))).toBe("bottle ssh gate: nope");
    expect(reader.consumed).toBe(GATE_IDENT.length + packetBytes.length);
  });
});
