/**
 * Spellings of a secret that the gate claims to see through (DLP) and to
 * replace (custody's scrubber), each computed here with the platform's own
 * encoders, independently of lib/.
 */

export const b64 = (text: string): string => Buffer.from(text).toString("base64");
export const b64url = (text: string): string => Buffer.from(text).toString("base64url");
export const hex = (text: string): string => Buffer.from(text).toString("hex");
export const reversed = (text: string): string => [...text].reverse().join("");

/** Every UTF-8 byte as %XX. */
export const everyByte = (text: string, upper = false): string =>
  [...Buffer.from(text)].map((byte) => `%${byte.toString(16).padStart(2, "0")}`).map((s) => (upper ? s.toUpperCase() : s)).join("");

/** Every UTF-16 unit as \uXXXX. */
export const jsonEveryChar = (text: string, upper = false): string =>
  [...text]
    .flatMap((char) => [...Array(char.length).keys()].map((i) => char.charCodeAt(i)))
    .map((unit) => `\\u${unit.toString(16).padStart(4, "0")}`)
    .map((s) => (upper ? s.replace(/[a-f]/g, (c) => c.toUpperCase()) : s))
    .join("");

export function spellings(secret: string): Record<string, string> {
  return {
    plain: secret,
    reversed: reversed(secret),
    hex: hex(secret),
    HEX: hex(secret).toUpperCase(),
    "hex, mixed case": hex(secret).replace(/[a-f]/g, (c, i: number) => (i % 3 === 0 ? c.toUpperCase() : c)),
    "base64 at offset 0": b64(secret),
    "base64 at offset 1 (inside a run)": b64(`u${secret}tail`),
    "base64 at offset 2 (user:secret)": b64(`u:${secret}`),
    "base64url at offset 0": b64url(secret),
    "base64url at offset 1": b64url(`~${secret}??`),
    "base64url at offset 2": b64url(`~~${secret}`),
    "URL-encoded": encodeURIComponent(secret),
    "every byte percent-encoded": everyByte(secret),
    "every byte percent-encoded, upper case": everyByte(secret, true),
    "form-encoded (+ for space)": new URLSearchParams({ k: secret }).toString().slice(2),
    "URL-encoded base64": encodeURIComponent(b64(`ab${secret}`)),
    "JSON.stringify": JSON.stringify(secret),
    "JSON with \\/ (PHP)": JSON.stringify(secret).replace(/\//g, "\\/"),
    "JSON, every character \\u-escaped": jsonEveryChar(secret),
    "JSON, every character \\u-escaped, upper case": jsonEveryChar(secret, true),
    "JSON, reversed and escaped": jsonEveryChar(reversed(secret)),
    "JSON, base64 with \\/": JSON.stringify(b64(`a${secret}`)).replace(/\//g, "\\/"),
  };
}
