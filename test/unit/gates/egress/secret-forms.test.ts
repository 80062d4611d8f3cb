import { describe, expect, test } from "bun:test";
import { Scrubber } from "../../../../lib/gates/egress/daemon/custody.ts";
import { Dlp } from "../../../../lib/gates/egress/daemon/dlp.ts";
import { formText, secretForms } from "../../../../lib/gates/egress/daemon/secret-forms.ts";
import { SecretMatcher, SecretStream } from "../../../../lib/gates/egress/daemon/secret-match.ts";
import { b64, everyByte, hex, jsonEveryChar, spellings } from "../../../helpers/spellings.ts";

// Test values are assembled at run time so that the source never looks like it carries a secret.
const j = (...parts: string[]): string => parts.join("");
/** Has a slash, a plus, a space, a quote and a backslash: every escape has something to do. */
const SECRET = j("s3cr3t/Va", "lue+9f 8e", '"7d\\q');
const UNICODE = j("pässwörd-", "geheim-😀");

describe("the forms of a secret", () => {
  test("plain, reversed, hex, and base64 / base64url at each alignment", () => {
    const forms = secretForms("abcdefgh");
    expect(forms.map((form) => form.name)).toEqual(["plain", "reversed", "hex", "base64+0", "base64+1", "base64+2"]);
    expect(forms.map(formText)).toEqual(["abcdefgh", "hgfedcba", "6162636465666768", "YWJjZGVmZ2", "FiY2RlZmdo", "hYmNkZWZna"]);
    // The base64 characters of each alignment are the ones the secret alone determines.
    expect(b64("abcdefgh")).toContain("YWJjZGVmZ2");
    expect(b64("xabcdefgh")).toContain("FiY2RlZmdo");
    expect(b64("xyabcdefgh")).toContain("hYmNkZWZna");
    // base64url only where it differs from base64.
    expect(secretForms(j("\u00ff\u00fe", "\u00fd\u00fc\u00fb\u00fa")).map((form) => form.name)).toContain("base64url+0");
  });

  for (const [name, secret] of [
    ["ASCII with every escapable character", SECRET],
    ["UTF-8, with a character outside the BMP", UNICODE],
  ] as const) {
    describe(name, () => {
      const matcher = new SecretMatcher([secret]);
      for (const [form, text] of Object.entries(spellings(secret))) {
        test(`found: ${form}`, () => {
          const hay = Buffer.from(`prefix ${text} suffix`, "utf8");
          expect(matcher.test(hay)).toBe(true);
        });
      }
    });
  }

  test("non-ASCII characters: raw UTF-8, percent-encoded bytes, \\u escapes of UTF-16 units (surrogate pairs)", () => {
    const matcher = new SecretMatcher([UNICODE]);
    expect(jsonEveryChar("😀")).toBe("\\ud83d\\ude00");
    expect(matcher.test(Buffer.from(JSON.stringify(UNICODE).replace("😀", "\\ud83d\\ude00")))).toBe(true);
    expect(matcher.test(Buffer.from(encodeURIComponent(UNICODE)))).toBe(true);
  });

  test("not found: a changed character, a cut-off secret, a doubly percent-encoded one (DLP decodes that in URL and headers)", () => {
    const matcher = new SecretMatcher([SECRET]);
    expect(matcher.test(Buffer.from(SECRET.replace("V", "W")))).toBe(false);
    expect(matcher.test(Buffer.from(SECRET.slice(0, -1)))).toBe(false);
    expect(matcher.test(Buffer.from(hex(SECRET).slice(1)))).toBe(false);
    const doubled = encodeURIComponent(everyByte(SECRET));
    expect(matcher.test(Buffer.from(doubled))).toBe(false);
    expect(new Dlp([SECRET]).scan([`GET /?q=${doubled} HTTP/1.1`])?.rule).toBe("dlp-secret");
  });

  test("ordinary text, JSON and binary data hold no form of a secret", () => {
    const matcher = new SecretMatcher([SECRET, UNICODE]);
    const ordinary = JSON.stringify({ text: "a \"quoted\" path/to/file 100% sure \\n", list: [1, 2, 3], sha: "2f5c1e8a9b7d6c4e3f2a1b0c" });
    expect(matcher.test(Buffer.from(ordinary.repeat(50)))).toBe(false);
    const random = Buffer.alloc(1 << 16);
    for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
    expect(matcher.test(random)).toBe(false);
  });

  test("one definition: whatever DLP finds, the scrubber replaces, and DLP finds nothing afterwards", () => {
    for (const secret of [SECRET, UNICODE]) {
      const dlp = new Dlp([secret]);
      for (const [form, text] of Object.entries(spellings(secret))) {
        const line = Buffer.from(`X-Echo: <${text}>`, "utf8").toString("latin1");
        expect({ form, found: dlp.scan([line])?.rule }).toEqual({ form, found: "dlp-secret" });
        const scrubber = new Scrubber([[secret, "bottle-placeholder-X"]]);
        const scrubbed = scrubber.text(line);
        expect({ form, replaced: scrubber.replaced > 0, left: dlp.scan([scrubbed]) }).toEqual({ form, replaced: true, left: null });
        expect(scrubbed).toContain("bottle-placeholder-X");
      }
    }
  });
});

describe("the matcher as a stream", () => {
  const run = (stream: SecretStream, chunks: string[]): string =>
    [...chunks.flatMap((chunk) => stream.push(Buffer.from(chunk, "latin1"))), ...stream.flush()]
      .map((part) => (typeof part === "number" ? `<${part}>` : part.toString("latin1")))
      .join("");

  test("a secret split anywhere is found once, whole; what cannot start one is released at once", () => {
    const matcher = new SecretMatcher(["first-secret", "second-secret"]);
    const text = `a first-secret b ${b64("xsecond-secret")} c \\u0066irst-secret`;
    const whole = run(new SecretStream(matcher), [text]);
    expect(whole).toBe(`a <0> b eH<1>Q= c <0>`);
    for (let cut = 0; cut <= text.length; cut++) {
      expect(run(new SecretStream(matcher), [text.slice(0, cut), text.slice(cut)])).toBe(whole);
    }
    expect(run(new SecretStream(matcher), [...text])).toBe(whole);
    const stream = new SecretStream(matcher);
    expect(stream.push(Buffer.from("data: 1\n\n")).map(String)).toEqual(["data: 1\n\n"]);
    // "%6" could begin "%66irst-secret": held until the next byte says otherwise.
    expect(stream.push(Buffer.from("x %6")).map(String)).toEqual(["x "]);
    expect(stream.push(Buffer.from("0 y")).map(String)).toEqual(["%60 y"]);
  });

  test("an overlapping secret that started earlier wins over one inside it, however the stream is cut", () => {
    const matcher = new SecretMatcher(["hello-world-secret", "world-s"]);
    for (let cut = 0; cut <= 18; cut++) {
      const text = "hello-world-secret";
      expect(run(new SecretStream(matcher), [text.slice(0, cut), text.slice(cut)])).toBe("<0>");
    }
  });
});
