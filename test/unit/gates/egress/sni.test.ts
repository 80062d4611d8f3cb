import { beforeAll, describe, expect, test } from "bun:test";
import { parseClientHello } from "../../../../lib/gates/egress/daemon/sni.ts";
import { buildHello, captureClientHello, echExtension, sniExtension } from "./helpers.ts";

/** Re-packs the handshake bytes of a single-record ClientHello into records of `size` bytes. */
function fragment(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const part = body.subarray(at, at + size);
    const header = Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]);
    records.push(header, part);
  }
  return Buffer.concat(records);
}

describe("parseClientHello with a real node:tls ClientHello", () => {
  let hello: Buffer;
  let noSni: Buffer;
  beforeAll(async () => {
    hello = await captureClientHello("Origin.Test");
    noSni = await captureClientHello(null);
  });

  test("finds the SNI (lower-cased)", () => {
    expect(parseClientHello(hello)).toMatchObject({ kind: "hello", sni: "origin.test" });
  });

  test("no SNI when connecting to an address without servername", () => {
    expect(parseClientHello(noSni)).toMatchObject({ kind: "hello", sni: null });
  });

  test("needs more bytes while incomplete, at every cut", () => {
    for (const cut of [1, 2, 5, 6, 9, 43, hello.length - 1]) {
      expect(parseClientHello(hello.subarray(0, cut))).toEqual({ kind: "need-more" });
    }
  });

  test("reassembles a ClientHello fragmented over several records", () => {
    for (const size of [1, 3, 64, 300]) {
      const fragmented = fragment(hello, size);
      expect(parseClientHello(fragmented)).toMatchObject({ kind: "hello", sni: "origin.test" });
      expect(parseClientHello(fragmented.subarray(0, fragmented.length - 1))).toEqual({ kind: "need-more" });
    }
  });

  test("trailing bytes after the hello are fine", () => {
    expect(parseClientHello(Buffer.concat([hello, Buffer.from([0x14, 0x03, 0x03, 0, 1, 1])]))).toMatchObject({ kind: "hello" });
  });
});

describe("parseClientHello on other bytes", () => {
  test("plain HTTP or SSH is not TLS", () => {
    expect(parseClientHello(Buffer.from("GET / HTTP/1.1\r\n"))).toEqual({ kind: "not-tls" });
    expect(parseClientHello(Buffer.from("SSH-2.0-OpenSSH\r\n"))).toEqual({ kind: "not-tls" });
    expect(parseClientHello(Buffer.from([0x16, 0x02]))).toEqual({ kind: "not-tls" });
    expect(parseClientHello(Buffer.from([0x80, 0x2e, 0x01]))).toEqual({ kind: "not-tls" }); // SSLv2
  });

  test("handshake that is not a ClientHello", () => {
    const serverHello = Buffer.from([0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]);
    expect(parseClientHello(serverHello).kind).toBe("invalid");
  });

  test("a non-handshake record in the middle is invalid", () => {
    const hello = buildHello([sniExtension("a.test")]);
    const first = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04]), hello.subarray(5, 9)]);
    const alert = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    expect(parseClientHello(Buffer.concat([first, alert])).kind).toBe("invalid");
  });

  test("built hellos", () => {
    expect(parseClientHello(buildHello([sniExtension("A.Test.")]))).toMatchObject({ kind: "hello", sni: "a.test" });
    expect(parseClientHello(buildHello([]))).toMatchObject({ kind: "hello", sni: null });
    expect(parseClientHello(buildHello([echExtension(), sniExtension("a.test")]))).toMatchObject({ ech: true });
  });

  test("tricks in the server name are invalid", () => {
    expect(parseClientHello(buildHello([sniExtension("a.test", "b.test")])).kind).toBe("invalid");
    expect(parseClientHello(buildHello([sniExtension("a.test\u0000.evil.test")])).kind).toBe("invalid");
    expect(parseClientHello(buildHello([sniExtension("")])).kind).toBe("invalid");
    expect(parseClientHello(buildHello([sniExtension("a test")])).kind).toBe("invalid");
    expect(parseClientHello(buildHello([sniExtension("a.test"), sniExtension("b.test")])).kind).toBe("invalid");
  });

  test("length fields that lie are invalid", () => {
    const hello = buildHello([sniExtension("a.test")]);
    const broken = Buffer.from(hello);
    // Extensions length one too large.
    const extLengthAt = 5 + 4 + 2 + 32 + 1 + 4 + 2;
    broken.writeUInt16BE(broken.readUInt16BE(extLengthAt) + 1, extLengthAt);
    expect(parseClientHello(broken).kind).toBe("invalid");
    const zeroRecord = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]);
    expect(parseClientHello(zeroRecord).kind).toBe("invalid");
    const huge = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff]);
    expect(parseClientHello(huge).kind).toBe("invalid");
  });
});
