/** A byte count for people: "512 B", "1.5 KiB", "663.0 MiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** A size as a manifest may write it: "256 MiB", "4 GiB", "1.5 GiB" (formatBytes without a trailing ".0"). */
export function formatSize(bytes: number): string {
  return formatBytes(bytes).replace(/\.0 /, " ");
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i;
const SIZE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Bytes from a size written as Docker reads one: "4g", "512m", "4GiB",
 * "4 GB", "1.5g" or plain bytes; every unit is a power of 1024 (Docker's
 * "g" is a GiB, and so is "GB" here). Undefined when it is not a size.
 */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * (match[2] ? SIZE_UNITS[match[2].toLowerCase()]! : 1));
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
