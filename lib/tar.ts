/**
 * A minimal ustar writer: provisioning builds one archive in memory and
 * streams it into the bottle with `docker cp -a -` (ownership and modes come
 * from the headers, so no root step runs inside the bottle).
 */

export interface TarEntry {
  path: string;
  /** Directories have no content. */
  content?: string | Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  type?: "file" | "dir";
}

const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(entry: TarEntry, size: number): Uint8Array {
  const block = new Uint8Array(512);
  const isDir = entry.type === "dir";
  let name = entry.path.replace(/^\/+/, "") + (isDir && !entry.path.endsWith("/") ? "/" : "");
  let prefix = "";
  if (encoder.encode(name).length > 100) {
    const cut = name.lastIndexOf("/", name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (encoder.encode(name).length > 100 || encoder.encode(prefix).length > 155) throw new Error(`path too long for tar: ${entry.path}`);
  }
  const put = (offset: number, text: string) => block.set(encoder.encode(text), offset);
  put(0, name);
  put(100, octal(entry.mode & 0o7777, 8));
  put(108, octal(entry.uid, 8));
  put(116, octal(entry.gid, 8));
  put(124, octal(size, 12));
  put(136, octal(0, 12));
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
