import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document } from "yaml";
import type { ManifestIssue } from "./errors.ts";

/** 1-based line and column. */
export interface Position {
  line: number;
  col: number;
}

export type PathSegment = string | number;

/** Find where a field path sits in the source; `at: "key"` points at the key instead of its value. */
export type Locate = (path: ReadonlyArray<PathSegment>, at?: "key" | "value") => Position;

export interface ParsedYaml {
  file: string;
  /** The plain JS value; `undefined` when the text has syntax errors. */
  value: unknown;
  /** Syntax errors, already located. */
  issues: ManifestIssue[];
  locate: Locate;
}

/**
 * Parse YAML keeping source positions. Never throws: syntax errors (and the
 * errors `toJS` can raise, such as alias bombs) come back as issues.
 * `lineOffset` shifts reported lines (front matter starts on line 2).
 */
export function parseYaml(text: string, file: string, lineOffset = 0): ParsedYaml {
  const lineCounter = new LineCounter();
  let doc: Document.Parsed | undefined;
  const issues: ManifestIssue[] = [];
  const position = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(Math.max(0, offset));
    return { line: line + lineOffset, col };
  };
  try {
    doc = parseDocument(text, { keepSourceTokens: true, lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: "error" });
  } catch (error) {
    issues.push({ file, line: 1 + lineOffset, col: 1, path: "", message: `cannot parse YAML: ${plainMessage(error)}` });
  }
  let value: unknown;
  if (doc) {
    for (const error of doc.errors) {
      const { line, col } = position(error.pos[0]);
      issues.push({ file, line, col, path: "", message: `YAML syntax error: ${safeMessage(error.code, error.message)}` });
    }
    if (issues.length === 0) {
      // toJS would stringify a list or mapping used as a key (and print a warning quoting it).
      visit(doc, {
        Pair(_, pair) {
          if (isCollection(pair.key) || isAlias(pair.key)) {
            const { line, col } = position(start(pair.key) ?? 0);
            issues.push({ file, line, col, path: "", message: "a key must be a plain name, not a list, mapping or alias" });
          }
        },
      });
    }
    if (issues.length === 0) {
      try {
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (error) {
        issues.push({ file, line: 1 + lineOffset, col: 1, path: "", message: `cannot read YAML: ${plainMessage(error)}` });
      }
    }
  }
  const parsed = doc;
  const locate: Locate = (path, at = "value") => {
    if (!parsed) return { line: 1 + lineOffset, col: 1 };
    const offset = locateOffset(parsed, path, at);
    return position(offset ?? 0);
  };
  return { file, value: issues.length ? undefined : value, issues, locate };
}

/**
 * The yaml library's message, except where it quotes source text (which may
 * be a secret value): those get a message of our own.
 */
function safeMessage(code: string, message: string): string {
  if (code === "BAD_DQ_ESCAPE") return "invalid escape sequence in a double-quoted string (write \\\\ for a backslash, or use single quotes)";
  if (message.startsWith("Block scalar header includes extra characters")) return "a block scalar header (| or >) has extra characters after it; start the text on the next line";
  if (message.startsWith("Unresolved plain scalar")) return "a plain value could not be resolved; quote it";
  return sentence(message);
}

function plainMessage(error: unknown): string {
  return sentence(error instanceof Error ? error.message : String(error));
}

/** The yaml library's messages, first line only, without a trailing period. */
function sentence(message: string): string {
  const first = message.split("\n")[0] ?? message;
  const trimmed = first.trim().replace(/\.$/, "");
  return trimmed.charAt(0).toLowerCase() + trimmed.slice(1);
}

function start(node: unknown): number | undefined {
  if (node && typeof node === "object" && "range" in node) {
    const range = (node as { range?: [number, number, number] | null }).range;
    if (range) return range[0];
  }
  return undefined;
}

function locateOffset(doc: Document.Parsed, path: ReadonlyArray<PathSegment>, at: "key" | "value"): number | undefined {
  let node: unknown = doc.contents;
  let best = start(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]!;
    const last = i === path.length - 1;
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && keyText(item.key) === String(segment));
      if (!pair) return best;
      const keyStart = start(pair.key);
      if (keyStart !== undefined) best = keyStart;
      if (last && at === "key") return best;
      if (pair.value === null || pair.value === undefined) return best;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = typeof segment === "number" ? segment : Number(segment);
      const item = Number.isInteger(index) ? node.items[index] : undefined;
      if (item === undefined || item === null) return best;
      node = item;
    } else {
      return best;
    }
    const nodeStart = start(node);
    if (nodeStart !== undefined) best = nodeStart;
  }
  return best;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  if (key === null || key === undefined) return undefined;
  if (typeof key === "object") return undefined;
  return String(key);
}
