/**
 * SSH wire encoding (RFC 4251 §5) shared by the SSH gate's agent-protocol
 * filter and its host-key check: big-endian uint32, length-prefixed strings,
 * name-lists. Pure code, no node:* imports, so it bundles for the gate and
 * unit-tests on the host.
 */

export class WireError extends Error {}

/** Reads SSH wire types from a byte array; every read past the end throws. */
export class WireReader {
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  byte(): number {
    if (this.remaining < 1) throw new WireError("truncated");
    return this.bytes[this.offset++]!;
  }

  boolean(): boolean {
    return this.byte() !== 0;
  }

  uint32(): number {
    if (this.remaining < 4) throw new WireError("truncated");
    const value = readUint32(this.bytes, this.offset);
    this.offset += 4;
    return value;
  }

  skip(count: number): void {
    if (this.remaining < count) throw new WireError("truncated");
    this.offset += count;
  }

  string(): Uint8Array {
    const length = this.uint32();
    if (this.remaining < length) throw new WireError("truncated string");
    const value = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  text(): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(this.string());
  }

  nameList(): string[] {
    const text = this.text();
    return text === "" ? [] : text.split(",");
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.remaining !== 0) throw new WireError("trailing bytes");
  }
}

export function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

export function uint32(value: number): Uint8Array {
  return Uint8Array.of((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** An SSH `string`: uint32 length, then the bytes. */
export function sshString(value: string | Uint8Array): Uint8Array {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  return concat(uint32(bytes.length), bytes);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The public key blob of `<type> <base64> [comment]` (a known_hosts key or a .pub line). */
export function keyBlob(key: string): Uint8Array {
  const parts = key.trim().split(/\s+/);
  const base64 = parts[1];
  if (!parts[0] || !base64 || !/^[A-Za-z0-9+/]+={0,3}$/.test(base64)) throw new WireError('expected "<type> <base64>"');
  const blob = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  // The blob starts with its own type name; it must agree with the text.
  const type = new WireReader(blob).text();
  if (type !== parts[0]) throw new WireError(`the key's type ${parts[0]} does not match its data (${type})`);
  return blob;
}

/** The key type named at the start of a key blob ("ssh-ed25519", …), or "?" */
export function blobType(blob: Uint8Array): string {
  try {
    return new WireReader(blob).text();
  } catch {
    return "?";
  }
}
