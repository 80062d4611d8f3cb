/**
 * A minimal ustar writer: provisioning builds one archive in memory and
 * streams it into the bottle with `docker cp -` (ownership and modes come
 * from the headers, so no root step runs inside the bottle); the gate's
 * config travels the same way on the gate's stdin, read by its entrypoint.
 */

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface TarEntry {
  path: string;
  /** Directories have no content. */
  content?: string | Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  type?: "file" | "dir";
}

/**
 * A host directory as entries under `targetDir`, owned by uid:gid: regular
 * files (executable or not) and directories; symlinks and special files are
 * left out, so nothing outside the directory comes along.
 */
export function dirEntries(hostDir: string, targetDir: string, uid: number, gid: number, skip: (name: string) => boolean = () => false): TarEntry[] {
  const entries: TarEntry[] = [{ path: targetDir, type: "dir", mode: 0o755, uid, gid }];
  for (const entry of readdirSync(hostDir, { withFileTypes: true })) {
    if (skip(entry.name)) continue;
    const source = join(hostDir, entry.name);
    const target = `${targetDir}/${entry.name}`;
    if (entry.isDirectory()) entries.push(...dirEntries(source, target, uid, gid, skip));
    else if (entry.isFile()) {
      const mode = statSync(source).mode & 0o777;
      entries.push({ path: target, content: readFileSync(source), mode: mode & 0o111 ? 0o755 : 0o644, uid, gid });
    }
  }
  return entries;
}

const encoder = new TextEncoder();
/** One timestamp per process: files in a bottle look freshly written, not from 1970. */
const MTIME = Math.floor(Date.now() / 1000);

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** A numeric field: octal when it fits, else GNU base-256 (large uids from AD/LDAP hosts). */
function numeric(block: Uint8Array, offset: number, width: number, value: number): void {
  if (value < 8 ** (width - 1)) {
    block.set(encoder.encode(octal(value, width)), offset);
    return;
  }
  block[offset] = 0x80;
  let rest = value;
  for (let i = width - 1; i > 0; i--) {
    block[offset + i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
}

/** Split a long path at a slash so the prefix fits 155 bytes and the name 100. */
function splitPath(path: string): { prefix: string; name: string } {
  if (encoder.encode(path).length <= 100) return { prefix: "", name: path };
  for (let cut = path.indexOf("/"); cut !== -1; cut = path.indexOf("/", cut + 1)) {
    const prefix = path.slice(0, cut);
    const name = path.slice(cut + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(name).length <= 100 && name.length > 0) return { prefix, name };
  }
  throw new Error(`path too long for tar: ${path}`);
}

function header(entry: TarEntry, size: number): Uint8Array {
  const block = new Uint8Array(512);
  const isDir = entry.type === "dir";
  const { prefix, name } = splitPath(entry.path.replace(/^\/+/, "") + (isDir && !entry.path.endsWith("/") ? "/" : ""));
  const put = (offset: number, text: string) => block.set(encoder.encode(text), offset);
  put(0, name);
  put(100, octal(entry.mode & 0o7777, 8));
  numeric(block, 108, 8, entry.uid);
  numeric(block, 116, 8, entry.gid);
  numeric(block, 124, 12, size);
  numeric(block, 136, 12, MTIME);
  put(148, "        ");
  put(156, isDir ? "5" : "0");
  put(257, "ustar\0");
  put(263, "00");
  put(345, prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(148, octal(sum, 7) + " ");
  return block;
}

export function createTar(entries: TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    const data = entry.type === "dir" ? new Uint8Array() : typeof entry.content === "string" ? encoder.encode(entry.content) : (entry.content ?? new Uint8Array());
    parts.push(header(entry, data.length));
    if (data.length) {
      parts.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) parts.push(new Uint8Array(pad));
    }
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, part) => n + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
