/**
 * Reads the server name (SNI) out of the first bytes a client sends through a
 * CONNECT tunnel: TLS records → (possibly fragmented) ClientHello →
 * server_name extension. Pure code, strict: anything malformed is "invalid".
 */

export type ClientHelloResult =
  /** Not enough bytes yet; read more and call again with everything so far. */
  | { kind: "need-more" }
  /** The bytes are not a TLS handshake at all. */
  | { kind: "not-tls" }
  /** TLS-looking but malformed (or too large). */
  | { kind: "invalid"; reason: string }
  /** A complete ClientHello. `sni` is lower-case without a trailing dot, null when absent. */
  | { kind: "hello"; sni: string | null; ech: boolean; length: number };

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const MAX_RECORD = 16384 + 2048;
/** Upper bound for a ClientHello (post-quantum key shares are ~1.2 KB; leave room). */
export const MAX_CLIENT_HELLO = 64 * 1024;
const EXT_SERVER_NAME = 0x0000;
const EXT_ECH = 0xfe0d;

/** Parses the ClientHello at the start of `data`. */
export function parseClientHello(data: Uint8Array): ClientHelloResult {
  if (data.length === 0) return { kind: "need-more" };
  if (data[0] !== CONTENT_HANDSHAKE) return { kind: "not-tls" };
  if (data.length >= 2 && data[1] !== 0x03) return { kind: "not-tls" };
  // Reassemble the handshake layer from consecutive handshake records.
  const fragments: Uint8Array[] = [];
  let handshakeLength = 0;
  let offset = 0;
  let needed = -1;
  for (;;) {
    if (data.length < offset + RECORD_HEADER) return { kind: "need-more" };
    if (data[offset] !== CONTENT_HANDSHAKE) return { kind: "invalid", reason: "non-handshake record before the ClientHello ended" };
    if (data[offset + 1] !== 0x03) return offset === 0 ? { kind: "not-tls" } : { kind: "invalid", reason: "bad record version" };
    const recordLength = ((data[offset + 3] ?? 0) << 8) | (data[offset + 4] ?? 0);
    if (recordLength === 0 || recordLength > MAX_RECORD) return { kind: "invalid", reason: "bad record length" };
    const start = offset + RECORD_HEADER;
    const available = Math.min(recordLength, data.length - start);
    if (available < recordLength) {
      // Even a partial record tells us whether the first byte is a ClientHello.
      if (fragments.length === 0 && available > 0 && data[start] !== HANDSHAKE_CLIENT_HELLO) {
        return { kind: "invalid", reason: "first handshake message is not a ClientHello" };
      }
      return { kind: "need-more" };
    }
    fragments.push(data.subarray(start, start + recordLength));
    handshakeLength += recordLength;
    offset = start + recordLength;
    if (needed === -1 && handshakeLength >= 4) {
      const head = concat(fragments, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "invalid", reason: "first handshake message is not a ClientHello" };
      needed = 4 + (((head[1] ?? 0) << 16) | ((head[2] ?? 0) << 8) | (head[3] ?? 0));
      if (needed > MAX_CLIENT_HELLO) return { kind: "invalid", reason: "ClientHello too large" };
    }
    if (needed !== -1 && handshakeLength >= needed) break;
    if (handshakeLength > MAX_CLIENT_HELLO) return { kind: "invalid", reason: "ClientHello too large" };
  }
  const message = concat(fragments, needed);
  const parsed = parseHelloBody(message.subarray(4));
  if (typeof parsed === "string") return { kind: "invalid", reason: parsed };
  return { kind: "hello", sni: parsed.sni, ech: parsed.ech, length: offset };
}

function concat(parts: Uint8Array[], limit: number): Uint8Array {
  const out = new Uint8Array(limit);
  let at = 0;
  for (const part of parts) {
    if (at >= limit) break;
    const take = Math.min(part.length, limit - at);
    out.set(part.subarray(0, take), at);
    at += take;
  }
  return out;
}

class Reader {
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  get remaining(): number {
    return this.bytes.length - this.offset;
  }
  u8(): number {
    if (this.remaining < 1) throw new RangeError("truncated");
    return this.bytes[this.offset++] ?? 0;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  take(length: number): Uint8Array {
    if (this.remaining < length) throw new RangeError("truncated");
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
}

function parseHelloBody(body: Uint8Array): { sni: string | null; ech: boolean } | string {
  const r = new Reader(body);
  try {
    const major = r.u8();
    r.u8();
    if (major !== 3) return "bad ClientHello version";
    r.take(32); // random
    const sessionIdLength = r.u8();
    if (sessionIdLength > 32) return "bad session id";
    r.take(sessionIdLength);
    const suitesLength = r.u16();
    if (suitesLength < 2 || suitesLength % 2 !== 0) return "bad cipher suites";
    r.take(suitesLength);
    const compressionLength = r.u8();
    if (compressionLength < 1) return "bad compression methods";
    r.take(compressionLength);
    if (r.remaining === 0) return { sni: null, ech: false };
    const extensionsLength = r.u16();
    if (extensionsLength !== r.remaining) return "extensions length mismatch";
    const seen = new Set<number>();
    let sni: string | null = null;
    let ech = false;
    while (r.remaining > 0) {
      const type = r.u16();
      const length = r.u16();
      const data = r.take(length);
      if (seen.has(type)) return "duplicate extension";
      seen.add(type);
      if (type === EXT_ECH) ech = true;
      if (type === EXT_SERVER_NAME) {
        const name = parseServerName(data);
        if (typeof name !== "string" || name === "") return typeof name === "string" ? "empty server name" : name.error;
        sni = name;
      }
    }
    return { sni, ech };
  } catch {
    return "truncated ClientHello";
  }
}

function parseServerName(data: Uint8Array): string | { error: string } {
  const r = new Reader(data);
  const listLength = r.u16();
  if (listLength !== r.remaining || listLength === 0) return { error: "bad server_name list" };
  let hostName: string | null = null;
  while (r.remaining > 0) {
    const nameType = r.u8();
    const length = r.u16();
    const name = r.take(length);
    if (nameType !== 0) continue;
    if (hostName !== null) return { error: "more than one host_name" };
    let text = "";
    for (const byte of name) {
      // LDH labels, dots and underscores only: no NUL tricks, no raw UTF-8 (IDNA is A-labels).
      if (!((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2d || byte === 0x2e || byte === 0x5f)) {
        return { error: "server name has invalid characters" };
      }
      text += String.fromCharCode(byte);
    }
    text = text.toLowerCase();
    if (text.endsWith(".")) text = text.slice(0, -1);
    if (text.length === 0 || text.length > 253) return { error: "bad server name length" };
    hostName = text;
  }
  return hostName ?? { error: "no host_name in server_name" };
}
