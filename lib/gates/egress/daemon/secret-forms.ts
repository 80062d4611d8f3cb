/**
 * The forms of a secret: every spelling of a secret value that the gate
 * recognises. This is the one definition: DLP looks for these forms in what
 * the bottle sends, the custody scrubber replaces them in what an upstream
 * sends back.
 *
 * A form is an encoding of the secret's UTF-8 bytes:
 *  - plain, and reversed (by code point);
 *  - hex, in either case (any mix);
 *  - base64 and base64url at each of the three alignments, as the characters
 *    that the secret alone determines, so that it is found inside a longer
 *    run (`user:secret` in Basic auth);
 * and any character of a form may also appear escaped: percent-encoded
 * (`%2F`, `+` for a space) or JSON-escaped (`\u002f`, `\/`, `\"`, `\\`, …).
 */

/** One way a character may appear. `fold`: ASCII letters compare case-insensitively (the hex digits of an escape); `bytes` are stored lower-case then. */
export interface Spelling {
  bytes: Uint8Array;
  fold: boolean;
}

/** One character of a form: the spellings it may appear as. */
export type Unit = readonly Spelling[];

export interface SecretForm {
  /** "plain", "reversed", "hex", "base64+1", "base64url+2", … */
  name: string;
  units: readonly Unit[];
}

interface Encoding {
  name: string;
  text: string;
  /** Letters may be upper- or lower-case (hex). */
  caseless: boolean;
}

/** The base64 characters determined by `bytes` alone when they start `shift` bytes into a base64 run. */
function base64Middle(bytes: Buffer, shift: number): string {
  const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString("base64");
  const start = Math.ceil((8 * shift) / 6);
  const end = Math.floor((8 * (shift + bytes.length)) / 6);
  return encoded.slice(start, end);
}

function encodings(secret: string): Encoding[] {
  const bytes = Buffer.from(secret, "utf8");
  const out: Encoding[] = [
    { name: "plain", text: secret, caseless: false },
    { name: "reversed", text: [...secret].reverse().join(""), caseless: false },
    { name: "hex", text: bytes.toString("hex"), caseless: true },
  ];
  for (let shift = 0; shift < 3; shift++) {
    const middle = base64Middle(bytes, shift);
    // Too few characters would match ordinary text.
    if (middle.length < 4) continue;
    out.push({ name: `base64+${shift}`, text: middle, caseless: false });
    out.push({ name: `base64url+${shift}`, text: middle.replace(/\+/g, "-").replace(/\//g, "_"), caseless: false });
  }
  const seen = new Set<string>();
  return out.filter((encoding) => !seen.has(encoding.text) && seen.add(encoding.text));
}

const JSON_SHORT: Record<string, string> = { '"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

const ascii = (text: string): Uint8Array => Buffer.from(text, "latin1");
const hex = (value: number, digits: number): string => value.toString(16).padStart(digits, "0");

/** Spellings by character: secrets share most of their characters (hex digits, the base64 alphabet). */
const memo = new Map<string, Spelling[]>();

/** The spellings of one character (a code point): raw, percent-encoded, JSON-escaped. */
function spellings(char: string, caseless: boolean): Spelling[] {
  const key = `${caseless ? "i" : "s"}${char}`;
  let known = memo.get(key);
  if (known === undefined) {
    known = makeSpellings(char, caseless);
    memo.set(key, known);
  }
  return known;
}

function makeSpellings(char: string, caseless: boolean): Spelling[] {
  const variants = caseless ? [...new Set([char.toLowerCase(), char.toUpperCase()])] : [char];
  const out: Spelling[] = [];
  for (const variant of variants) {
    const raw = Buffer.from(variant, "utf8");
    out.push({ bytes: raw, fold: false });
    out.push({ bytes: ascii([...raw].map((byte) => `%${hex(byte, 2)}`).join("")), fold: true });
    if (variant === " ") out.push({ bytes: ascii("+"), fold: false });
    let escaped = "";
    for (let i = 0; i < variant.length; i++) escaped += `\\u${hex(variant.charCodeAt(i), 4)}`;
    out.push({ bytes: ascii(escaped), fold: true });
    const short = JSON_SHORT[variant];
    if (short !== undefined) out.push({ bytes: ascii(short), fold: false });
  }
  const seen = new Set<string>();
  return out.filter((spelling) => {
    const key = `${spelling.fold}:${Buffer.from(spelling.bytes).toString("latin1")}`;
    return !seen.has(key) && seen.add(key);
  });
}

/** Every form of `secret` (callers decide which secrets are long enough to look for). */
export function secretForms(secret: string): SecretForm[] {
  return encodings(secret).map(({ name, text, caseless }) => ({ name, units: [...text].map((char) => spellings(char, caseless)) }));
}

/** A form as text, each character in its first spelling (raw; hex in lower case): what the form looks like, for tests. */
export function formText(form: SecretForm): string {
  return form.units.map((unit) => Buffer.from(unit[0]?.bytes ?? new Uint8Array()).toString("latin1")).join("");
}
