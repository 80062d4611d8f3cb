import { createHash } from "node:crypto";

/**
 * SHA256SUMS in the format `sha256sum` writes and `sha256sum -c` reads:
 * `<64 hex>  <name>` (text mode) or `<64 hex> *<name>` (binary mode).
 */

export interface ChecksumEntry {
  sha256: string;
  name: string;
}

export interface ParsedSums {
  entries: Map<string, string>;
  /** Lines that are neither blank nor a checksum line (1-based line numbers). */
  invalid: Array<{ line: number; text: string }>;
}

const LINE = /^([0-9a-fA-F]{64}) [ *](.+)$/;

export function parseSha256Sums(text: string): ParsedSums {
  const entries = new Map<string, string>();
  const invalid: ParsedSums["invalid"] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    if (raw.trim() === "") return;
    const match = LINE.exec(raw);
    if (!match) {
      invalid.push({ line: index + 1, text: raw });
      return;
    }
    const name = match[2]!.replace(/^\.\//, "");
    // A name listed twice with different sums is ambiguous: trust neither.
    const seen = entries.get(name);
    const sum = match[1]!.toLowerCase();
    if (seen !== undefined && seen !== sum) {
      invalid.push({ line: index + 1, text: raw });
      entries.set(name, "");
      return;
    }
    entries.set(name, sum);
  });
  for (const [name, sum] of entries) if (sum === "") entries.delete(name);
  return { entries, invalid };
}

/** The expected sum of `name`, or undefined when SHA256SUMS has no (unambiguous) line for it. */
export function expectedSum(text: string, name: string): string | undefined {
  return parseSha256Sums(text).entries.get(name);
}

/** Sorted by name, two spaces, trailing newline: byte-identical to `sha256sum *` in the dir. */
export function formatSha256Sums(entries: Iterable<ChecksumEntry>): string {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sorted.map((entry) => `${entry.sha256.toLowerCase()}  ${entry.name}\n`).join("");
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(path: string): Promise<string> {
  return sha256Hex(new Uint8Array(await Bun.file(path).arrayBuffer()));
}

/** Hex sums compare case-insensitively (the sums are public: no need for constant time). */
export function sumsMatch(expected: string, actual: string): boolean {
  return expected.toLowerCase() === actual.toLowerCase();
}
