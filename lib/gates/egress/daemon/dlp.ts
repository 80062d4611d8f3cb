/**
 * Outbound data-loss prevention for what the gate can see of a request: the
 * URL and the header lines (for CONNECT only the CONNECT line and its
 * headers), and as a stream the bodies the gate forwards itself
 * (`bodyGuard`). Two kinds of detectors:
 *
 *  - the bottle's own secret values (`secretsFile`, custody credentials) in
 *    every form of secret-forms.ts (plain, hex, base64 at any alignment,
 *    base64url, reversed, each character possibly percent- or JSON-escaped);
 *  - well-known credential shapes, after gitleaks' default rules (URL and
 *    headers only).
 *
 * A URL or header text is scanned as is, percent-decoded (up to three
 * times), and with embedded base64/hex runs decoded; a body only for the
 * forms (it streams by). A finding names the rule, never the value. All
 * haystacks are "byte strings" (latin1), so UTF-8 secrets match too.
 * Credential placeholders (`bottle-placeholder-NAME`) are never secrets.
 */
import { isPlaceholder } from "./custody.ts";
import { SecretMatcher, SecretStream, type StreamPart } from "./secret-match.ts";

export interface DlpPattern {
  id: string;
  description: string;
  re: RegExp;
}

/** Credential patterns (ids follow gitleaks' rule ids where one exists). */
export const DLP_PATTERNS: readonly DlpPattern[] = [
  { id: "aws-access-token", description: "AWS access key id", re: /(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}/ },
  { id: "github-pat", description: "GitHub personal access token", re: /ghp_[0-9A-Za-z]{36}/ },
  { id: "github-oauth", description: "GitHub OAuth token", re: /gho_[0-9A-Za-z]{36}/ },
  { id: "github-app-token", description: "GitHub app token", re: /(?:ghu|ghs)_[0-9A-Za-z]{36}/ },
  { id: "github-refresh-token", description: "GitHub refresh token", re: /ghr_[0-9A-Za-z]{36}/ },
  { id: "github-fine-grained-pat", description: "GitHub fine-grained token", re: /github_pat_[0-9A-Za-z_]{82}/ },
  { id: "gitlab-pat", description: "GitLab personal access token", re: /glpat-[0-9A-Za-z_-]{20}/ },
  { id: "slack-token", description: "Slack token", re: /xox[baprse]-[0-9A-Za-z-]{10,}/ },
  { id: "slack-app-token", description: "Slack app token", re: /xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]+/i },
  { id: "private-key", description: "private key", re: /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----/ },
  { id: "anthropic-api-key", description: "Anthropic API key", re: /sk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_-]{20,}/ },
  { id: "openai-api-key", description: "OpenAI API key", re: /sk-[A-Za-z0-9_-]{0,80}T3BlbkFJ[A-Za-z0-9_-]{20,}/ },
  { id: "gcp-api-key", description: "Google API key", re: /AIza[0-9A-Za-z_-]{35}/ },
  { id: "stripe-access-token", description: "Stripe key", re: /(?:sk|rk)_(?:test|live|prod)_[0-9A-Za-z]{10,99}/ },
  { id: "npm-access-token", description: "npm token", re: /npm_[A-Za-z0-9]{36}/ },
  { id: "pypi-upload-token", description: "PyPI token", re: /pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}/ },
  { id: "huggingface-access-token", description: "Hugging Face token", re: /hf_[A-Za-z]{34}/ },
];

/** Secrets shorter than this are ignored (they would match ordinary text). */
export const MIN_SECRET_LENGTH = 6;

export interface DlpFinding {
  /** `dlp-secret` or `dlp-<pattern id>`. */
  rule: string;
  description: string;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

/** Lenient percent-decoding of a byte string (invalid escapes stay as they are; `+` becomes a space). */
export function percentDecode(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? "";
    if (ch === "%" && i + 2 < text.length) {
      const hi = hexValue(text.charCodeAt(i + 1));
      const lo = hexValue(text.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        out += String.fromCharCode(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += ch === "+" ? " " : ch;
  }
  return out;
}

const BASE64_RUN = /[A-Za-z0-9+/_-]{16,}={0,2}/g;
const HEX_RUN = /[0-9A-Fa-f]{16,}/g;

/** Decodes the base64/base64url and hex runs inside `text` (each at every alignment). */
export function decodedRuns(text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(BASE64_RUN)) {
    const run = match[0].replace(/=+$/, "");
    for (let skip = 0; skip < 4 && run.length - skip >= 16; skip++) {
      const part = run.slice(skip).replace(/-/g, "+").replace(/_/g, "/");
      out.push(Buffer.from(part, "base64").toString("latin1"));
    }
  }
  for (const match of text.matchAll(HEX_RUN)) {
    const run = match[0];
    for (let skip = 0; skip < 2; skip++) {
      const part = run.slice(skip, skip + Math.floor((run.length - skip) / 2) * 2);
      out.push(Buffer.from(part, "hex").toString("latin1"));
    }
  }
  return out;
}

export interface DlpOptions {
  /** Also look for the well-known credential shapes (default true). */
  patterns?: boolean;
}

export class Dlp {
  private readonly matcher: SecretMatcher;
  private readonly patterns: boolean;
  readonly secretCount: number;
  readonly skippedShort: number;

  constructor(secrets: readonly string[] = [], options: DlpOptions = {}) {
    // Placeholders are harmless by design: the bottle sends them all the time.
    const real = secrets.filter((secret) => !isPlaceholder(secret));
    const usable = real.filter((secret) => secret.length >= MIN_SECRET_LENGTH);
    this.secretCount = usable.length;
    this.skippedShort = real.length - usable.length;
    this.matcher = new SecretMatcher(usable);
    this.patterns = options.patterns ?? true;
  }

  /** The first finding over all `texts` (byte strings, e.g. latin1-decoded request lines), or null. */
  scan(texts: readonly string[]): DlpFinding | null {
    for (const text of texts) {
      const finding = this.scanOne(text);
      if (finding) return finding;
    }
    return null;
  }

  /** A guard for one body that streams by; null when there is nothing to look for. */
  bodyGuard(): BodyGuard | null {
    return this.matcher.empty ? null : new BodyGuard(new SecretStream(this.matcher));
  }

  private scanOne(text: string): DlpFinding | null {
    const layers: string[] = [text];
    let current = text;
    for (let i = 0; i < 3; i++) {
      const decoded = percentDecode(current);
      if (decoded === current) break;
      layers.push(decoded);
      current = decoded;
    }
    for (const layer of layers) {
      const finding = this.match(layer);
      if (finding) return finding;
    }
    for (const layer of layers) {
      for (const decoded of decodedRuns(layer)) {
        const finding = this.match(decoded);
        if (finding) return finding;
      }
    }
    return null;
  }

  private match(text: string): DlpFinding | null {
    if (this.matcher.test(Buffer.from(text, "latin1"))) return SECRET_FINDING;
    return this.patterns ? matchPatterns(text) : null;
  }
}

/**
 * DLP over one request body as it streams by: bytes are released only once
 * they cannot be the start of a secret, so a secret is caught before any of
 * it leaves, also when it is split across chunks.
 */
export class BodyGuard {
  private finding: DlpFinding | null = null;

  constructor(private readonly stream: SecretStream) {}

  /** The bytes that may go on now, or the finding (then nothing more is ever released). */
  push(chunk: Buffer): Buffer | DlpFinding {
    return this.finding ?? this.release(this.stream.push(chunk));
  }

  /** The body ended: what was held back, or the finding. */
  end(): Buffer | DlpFinding {
    return this.finding ?? this.release(this.stream.flush());
  }

  private release(parts: StreamPart[]): Buffer | DlpFinding {
    const bytes: Buffer[] = [];
    for (const part of parts) {
      if (typeof part === "number") {
        this.finding = SECRET_FINDING;
        return SECRET_FINDING;
      }
      bytes.push(part);
    }
    return bytes.length === 1 ? (bytes[0] ?? Buffer.alloc(0)) : Buffer.concat(bytes);
  }
}

const SECRET_FINDING: DlpFinding = { rule: "dlp-secret", description: "one of this bottle's secrets" };

function matchPatterns(text: string): DlpFinding | null {
  for (const pattern of DLP_PATTERNS) {
    if (pattern.re.test(text)) return { rule: `dlp-${pattern.id}`, description: pattern.description };
  }
  return null;
}
