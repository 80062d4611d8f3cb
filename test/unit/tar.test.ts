import { describe, expect, test } from "bun:test";
import { createTar, type TarEntry } from "../../lib/tar.ts";

/** A tiny ustar reader, independent of lib/tar.ts. */
interface ParsedEntry {
  /** prefix + "/" + name when a prefix is present. */
  path: string;
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  magic: string;
  version: string;
  data: Uint8Array;
  /** Offset of the header block. */
  offset: number;
}

const decoder = new TextDecoder();

function cString(block: Uint8Array, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return decoder.decode(end === -1 ? field : field.subarray(0, end));
}

/** Octal, NUL/space terminated; or GNU base-256 when the high bit of the first byte is set. */
function numeric(block: Uint8Array, offset: number, length: number): number {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = cString(block, offset, length).trim();
  if (!/^[0-7]*$/.test(text)) throw new Error(`bad octal field at ${offset}: ${JSON.stringify(text)}`);
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function isZero(block: Uint8Array): boolean {
  return block.every((byte) => byte === 0);
}

function readTar(archive: Uint8Array): ParsedEntry[] {
  if (archive.length % 512 !== 0) throw new Error(`archive length ${archive.length} is not a multiple of 512`);
  const entries: ParsedEntry[] = [];
  let offset = 0;
  for (;;) {
    if (offset + 1024 > archive.length) throw new Error("archive does not end with two zero blocks");
    const block = archive.subarray(offset, offset + 512);
    if (isZero(block)) {
      const next = archive.subarray(offset + 512, offset + 1024);
      if (!isZero(next)) throw new Error("a single zero block in the middle of the archive");
      if (offset + 1024 !== archive.length) throw new Error("data after the end-of-archive blocks");
      return entries;
    }
    // Checksum: sum of all header bytes with the checksum field read as spaces.
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    const stored = numeric(block, 148, 8);
    if (stored !== sum) throw new Error(`bad checksum at ${offset}: stored ${stored}, computed ${sum}`);
    const size = numeric(block, 124, 12);
    const name = cString(block, 0, 100);
    const prefix = cString(block, 345, 155);
    const dataStart = offset + 512;
    const padded = Math.ceil(size / 512) * 512;
    entries.push({
      path: prefix ? `${prefix}/${name}` : name,
      name,
      prefix,
      mode: numeric(block, 100, 8),
      uid: numeric(block, 108, 8),
      gid: numeric(block, 116, 8),
      size,
      mtime: numeric(block, 136, 12),
      typeflag: String.fromCharCode(block[156]!),
      magic: decoder.decode(block.subarray(257, 263)),
      version: decoder.decode(block.subarray(263, 265)),
      data: archive.slice(dataStart, dataStart + size),
      offset,
    });
    // Padding after the data must be zeros.
    if (!isZero(archive.subarray(dataStart + size, dataStart + padded))) throw new Error(`non-zero padding after ${name}`);
    offset = dataStart + padded;
  }
}

const text = (bytes: Uint8Array) => decoder.decode(bytes);

describe("createTar", () => {
  test("an empty archive is just the two zero end blocks", () => {
    const archive = createTar([]);
    expect(archive.length).toBe(1024);
    expect(isZero(archive)).toBe(true);
    expect(readTar(archive)).toEqual([]);
  });

  test("a file: ustar header fields, valid checksum, content padded to 512, two zero blocks", () => {
    const archive = createTar([{ path: "/home/agent/.gitconfig", content: "hello\n", mode: 0o644, uid: 1000, gid: 1001 }]);
    expect(archive.length).toBe(512 + 512 + 1024);
    const [entry, ...rest] = readTar(archive);
    expect(rest).toEqual([]);
    expect(entry!.path).toBe("home/agent/.gitconfig"); // leading slash stripped
    expect(entry!.prefix).toBe("");
    expect(entry!.mode).toBe(0o644);
    expect(entry!.uid).toBe(1000);
    expect(entry!.gid).toBe(1001);
    expect(entry!.size).toBe(6);
    expect(entry!.typeflag).toBe("0");
    expect(entry!.magic).toBe("ustar\0");
    expect(entry!.version).toBe("00");
    // Files look freshly written inside the bottle (not 1970).
    expect(Math.abs(entry!.mtime - Date.now() / 1000)).toBeLessThan(3600);
    expect(text(entry!.data)).toBe("hello\n");
    expect(isZero(archive.subarray(512 + 6, 1024))).toBe(true);
    expect(isZero(archive.subarray(1024))).toBe(true);
  });

  test("the checksum field is six octal digits, NUL, space", () => {
    const archive = createTar([{ path: "a", content: "x", mode: 0o600, uid: 0, gid: 0 }]);
    const field = archive.subarray(148, 156);
    expect(/^[0-7]{6}$/.test(decoder.decode(field.subarray(0, 6)))).toBe(true);
    expect([field[6], field[7]]).toEqual([0, 0x20]);
  });

  test("a directory has typeflag 5, a trailing slash, size 0 and no data block", () => {
    const archive = createTar([
      { path: "/run/bottle", type: "dir", mode: 0o700, uid: 1000, gid: 1000 },
      { path: "/already/slashed/", type: "dir", mode: 0o755, uid: 0, gid: 0, content: "ignored" },
    ]);
    expect(archive.length).toBe(512 * 2 + 1024);
    const entries = readTar(archive);
    expect(entries.map((e) => [e.path, e.typeflag, e.size, e.mode])).toEqual([
      ["run/bottle/", "5", 0, 0o700],
      ["already/slashed/", "5", 0, 0o755],
    ]);
  });

  test("sizes and padding: empty, exactly 512, 513 bytes, binary content", () => {
    const binary = new Uint8Array(513).map((_, i) => (i * 7) % 256);
    const entries: TarEntry[] = [
      { path: "empty", content: "", mode: 0o644, uid: 1, gid: 1 },
      { path: "none", mode: 0o644, uid: 1, gid: 1 },
      { path: "exact", content: "e".repeat(512), mode: 0o644, uid: 1, gid: 1 },
      { path: "binary", content: binary, mode: 0o755, uid: 1, gid: 1 },
    ];
    const archive = createTar(entries);
    // headers: 4; data blocks: 0 + 0 + 1 + 2; end: 2
    expect(archive.length).toBe(512 * (4 + 3 + 2));
    const parsed = readTar(archive);
    expect(parsed.map((e) => [e.path, e.size])).toEqual([
      ["empty", 0],
      ["none", 0],
      ["exact", 512],
      ["binary", 513],
    ]);
    expect(parsed.map((e) => e.offset)).toEqual([0, 512, 1024, 2048]);
    expect(text(parsed[2]!.data)).toBe("e".repeat(512));
    expect(parsed[3]!.data).toEqual(binary);
    expect(parsed[3]!.mode).toBe(0o755);
  });

  test("multi-byte UTF-8 content: size counts bytes, not characters", () => {
    const content = "héllo ✓ 🍾\n";
    const [entry] = readTar(createTar([{ path: "utf8.txt", content, mode: 0o644, uid: 0, gid: 0 }]));
    expect(entry!.size).toBe(new TextEncoder().encode(content).length);
    expect(entry!.size).toBeGreaterThan(content.length);
    expect(text(entry!.data)).toBe(content);
  });

  test("only permission bits (0o7777) go into the mode field", () => {
    const parsed = readTar(
      createTar([
        { path: "regular", content: "x", mode: 0o100644, uid: 0, gid: 0 },
        { path: "setuid", content: "x", mode: 0o4755, uid: 0, gid: 0 },
        { path: "env", content: "x", mode: 0o400, uid: 0, gid: 0 },
      ]),
    );
    expect(parsed.map((e) => e.mode)).toEqual([0o644, 0o4755, 0o400]);
  });

  test("entries keep their order", () => {
    const paths = ["z", "a", "m/n", "b"];
    const parsed = readTar(createTar(paths.map((path) => ({ path, content: path, mode: 0o644, uid: 0, gid: 0 }))));
    expect(parsed.map((e) => e.path)).toEqual(paths);
    expect(parsed.map((e) => text(e.data))).toEqual(paths);
  });

  test("a 100-byte name fits the name field without a prefix", () => {
    const path = `dir/${"n".repeat(96)}`;
    expect(path.length).toBe(100);
    const [entry] = readTar(createTar([{ path, content: "x", mode: 0o644, uid: 0, gid: 0 }]));
    expect(entry!.prefix).toBe("");
    expect(entry!.name).toBe(path);
  });

  test("paths longer than 100 bytes are split into prefix and name at a slash", () => {
    const path = `/home/agent/.claude/skills/${"long-skill-name-".repeat(4)}/references/${"deeply-nested-file-".repeat(3)}.md`;
    expect(path.length).toBeGreaterThan(100);
    const [entry] = readTar(createTar([{ path, content: "# doc\n", mode: 0o644, uid: 1000, gid: 1000 }]));
    expect(entry!.prefix).not.toBe("");
    expect(new TextEncoder().encode(entry!.name).length).toBeLessThanOrEqual(100);
    expect(new TextEncoder().encode(entry!.prefix).length).toBeLessThanOrEqual(155);
    expect(entry!.path).toBe(path.slice(1));
    expect(text(entry!.data)).toBe("# doc\n");
  });

  test("a long directory path keeps its trailing slash in the name part", () => {
    const path = `/workspace/${"segment/".repeat(14)}leaf`;
    expect(path.length).toBeGreaterThan(100);
    const [entry] = readTar(createTar([{ path, type: "dir", mode: 0o755, uid: 0, gid: 0 }]));
    expect(entry!.prefix).not.toBe("");
    expect(entry!.path).toBe(`${path.slice(1)}/`);
    expect(entry!.name.endsWith("/")).toBe(true);
  });

  test("a path that cannot be represented is refused", () => {
    expect(() => createTar([{ path: `/dir/${"x".repeat(101)}`, content: "", mode: 0o644, uid: 0, gid: 0 }])).toThrow("path too long for tar");
    expect(() => createTar([{ path: `/${"d".repeat(160)}/file`, content: "", mode: 0o644, uid: 0, gid: 0 }])).toThrow("path too long for tar");
  });

  test("a long path is split at any slash that fits, not only the last one", () => {
    // 160 bytes of directories + a 60-byte file name = 221 bytes: fits as
    // prefix "a…/b…" (≤155) + name "c…/file…" (≤100), but the last slash
    // leaves a 160-byte prefix.
    const path = `${"a".repeat(100)}/${"b".repeat(40)}/${"c".repeat(18)}/${"f".repeat(60)}`;
    expect(path.length).toBe(221);
    const [entry] = readTar(createTar([{ path, content: "ok", mode: 0o644, uid: 0, gid: 0 }]));
    expect(entry!.path).toBe(path);
  });

  test("large uids and gids (directory-service accounts) survive the header", () => {
    // Hosts joined to AD/LDAP (sssd) hand out uids like 1868400001, above
    // ustar's 7 octal digits (2097151); the owner of a mounted workspace can be one.
    const uid = 1_868_400_001;
    const gid = 1_868_400_513;
    const [entry] = readTar(createTar([{ path: "f", content: "data", mode: 0o644, uid, gid }]));
    expect([entry!.uid, entry!.gid]).toEqual([uid, gid]);
    expect(entry!.size).toBe(4);
  });

  test("ids up to 7 octal digits round-trip", () => {
    const [entry] = readTar(createTar([{ path: "f", content: "", mode: 0o644, uid: 0o7777777, gid: 65534 }]));
    expect([entry!.uid, entry!.gid]).toEqual([0o7777777, 65534]);
  });
});
