import { describe, expect, test } from "bun:test";
import { Dlp } from "../../../../lib/gates/egress/daemon/dlp.ts";
import type { BodyFraming } from "../../../../lib/gates/egress/daemon/http1.ts";
import { RequestBody } from "../../../../lib/gates/egress/daemon/request-body.ts";
import { b64, spellings } from "../../../helpers/spellings.ts";

const j = (...parts: string[]): string => parts.join("");
const SECRET = j("body-", "secret-", "5d1c9e7a");
const dlp = new Dlp([SECRET]);

type Framing = Exclude<BodyFraming, { kind: "error" }>;

interface Outcome {
  /** Everything released upstream (until the finding, if any). */
  sent: string;
  finding: string | null;
  error: string | null;
  done: boolean;
}

function feed(framing: Framing, chunks: string[], guards = dlp): Outcome {
  const body = new RequestBody(framing, guards);
  let sent = "";
  for (const chunk of chunks) {
    const step = body.feed(Buffer.from(chunk, "latin1"));
    if ("error" in step) return { sent, finding: null, error: step.error, done: body.done };
    if ("finding" in step) return { sent, finding: step.finding.rule, error: null, done: body.done };
    sent += step.out.toString("latin1");
  }
  return { sent, finding: null, error: null, done: body.done };
}

/** `text` cut into two at `cut`. */
const halves = (text: string, cut: number): string[] => [text.slice(0, cut), text.slice(cut)];

function chunked(...pieces: string[]): string {
  return `${pieces.map((piece) => `${piece.length.toString(16)}\r\n${piece}\r\n`).join("")}0\r\n\r\n`;
}

describe("a request body through DLP's guard", () => {
  test("Content-Length: a clean body goes on byte for byte however it arrives; bytes after it are dropped", () => {
    const text = "name=value&other=1%202+3";
    for (let cut = 0; cut <= text.length; cut++) {
      expect(feed({ kind: "length", length: text.length }, halves(`${text}NEXT`, cut))).toEqual({ sent: text, finding: null, error: null, done: true });
    }
  });

  test("Content-Length: a secret in any form, cut anywhere, is found before any byte of it was released", () => {
    for (const [form, text] of Object.entries(spellings(SECRET))) {
      const payload = `{"note":"hello","data":"${text}"}`;
      // Not the secret's: a JSON quote, and inside a base64 run the characters before the secret's own (at most three), which carry a few bits of it.
      const lead = (text.startsWith('"') ? 1 : 0) + (form.includes("base64") ? 3 : 0);
      const starts = payload.indexOf(text) + lead;
      for (let cut = 0; cut <= payload.length; cut++) {
        const outcome = feed({ kind: "length", length: payload.length }, halves(payload, cut));
        expect({ form, cut, finding: outcome.finding, early: outcome.sent.length > starts, leaked: dlp.scan([outcome.sent]) }).toEqual({
          form,
          cut,
          finding: "dlp-secret",
          early: false,
          leaked: null,
        });
      }
    }
  });

  test("chunked: a clean body, with extensions and trailers, goes on byte for byte; bytes after it are dropped", () => {
    const raw = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    for (let cut = 0; cut <= raw.length; cut++) {
      expect(feed({ kind: "chunked" }, halves(`${raw}JUNK`, cut))).toEqual({ sent: raw, finding: null, error: null, done: true });
    }
    expect(feed({ kind: "chunked" }, [...raw])).toEqual({ sent: raw, finding: null, error: null, done: true });
  });

  test("chunked: a secret split across chunks (plain and base64), cut anywhere, is found before its first byte left", () => {
    for (const text of [SECRET, b64(SECRET)]) {
      for (let split = 1; split < text.length; split++) {
        const raw = chunked("data=", text.slice(0, split), text.slice(split), "&end");
        const starts = raw.indexOf(text.slice(0, split));
        for (let cut = 0; cut <= raw.length; cut += 3) {
          const outcome = feed({ kind: "chunked" }, halves(raw, cut));
          expect({ split, cut, finding: outcome.finding, early: outcome.sent.length > starts }).toEqual({ split, cut, finding: "dlp-secret", early: false });
        }
      }
    }
  });

  test("chunked: a secret in a chunk extension or a trailer is found too", () => {
    expect(feed({ kind: "chunked" }, [`3;x=${SECRET}\r\nabc\r\n0\r\n\r\n`]).finding).toBe("dlp-secret");
    expect(feed({ kind: "chunked" }, [`3\r\nabc\r\n0\r\nX-Leak: ${b64(SECRET)}\r\n\r\n`]).finding).toBe("dlp-secret");
  });

  test("broken chunked framing is an error; a body without framing is done at once", () => {
    expect(feed({ kind: "chunked" }, ["zz\r\n"]).error).toBe("malformed chunk size");
    expect(feed({ kind: "none" }, ["anything"])).toEqual({ sent: "", finding: null, error: null, done: true });
  });

  test("without secrets to look for, nothing is held back", () => {
    const none = new Dlp([]);
    expect(none.bodyGuard()).toBeNull();
    expect(feed({ kind: "length", length: 10 }, ["abc"], none)).toEqual({ sent: "abc", finding: null, error: null, done: false });
    expect(feed({ kind: "chunked" }, ["3\r\nab"], none)).toEqual({ sent: "3\r\nab", finding: null, error: null, done: false });
  });

  test("what cannot begin a secret is released at once (a streamed upload keeps moving)", () => {
    const body = new RequestBody({ kind: "length", length: 100 }, dlp);
    const first = body.feed(Buffer.from("line one\n"));
    expect("out" in first && first.out.toString()).toBe("line one\n");
    // "body-se" could be the start of the secret: held.
    const second = body.feed(Buffer.from("x body-se"));
    expect("out" in second && second.out.toString()).toBe("x ");
    const third = body.feed(Buffer.from("cond\n"));
    expect("out" in third && third.out.toString()).toBe("body-second\n");
  });
});
