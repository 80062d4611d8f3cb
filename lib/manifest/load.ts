import { readFileSync } from "node:fs";
import * as v from "valibot";
import { errorMessage } from "../errors.ts";
import { formatPath, type ManifestIssue } from "./errors.ts";
import { agentSchema, bottleSchema, describeValue, type AgentManifest, type BottleFileManifest } from "./schema.ts";
import { parseYaml, type Locate, type ParsedYaml, type PathSegment } from "./yaml-positions.ts";

/** A validated manifest file and a way back to positions in it. */
export interface LoadedFile<T> {
  file: string;
  value: T;
  locate: Locate;
}

/** On failure, `raw` is the parsed (unvalidated) value when the YAML itself was readable. */
export type LoadResult<T> = { ok: true; loaded: LoadedFile<T> } | { ok: false; issues: ManifestIssue[]; raw?: unknown; locate?: Locate };

export interface LoadedAgentFile {
  manifest: AgentManifest;
  prompt: string;
}

function fallbackMessage(issue: v.BaseIssue<unknown>): string {
  return `expected ${issue.expected ?? "something else"}, got ${describeValue(issue.input)}`;
}

function issuePath(issue: v.BaseIssue<unknown>): { path: PathSegment[]; at: "key" | "value" } {
  const path: PathSegment[] = [];
  let at: "key" | "value" = "value";
  for (const item of issue.path ?? []) {
    const key: unknown = "key" in item ? item.key : undefined;
    path.push(typeof key === "number" ? key : String(key));
    at = "origin" in item && item.origin === "key" ? "key" : "value";
  }
  return { path, at };
}

function sortIssues(issues: ManifestIssue[]): ManifestIssue[] {
  const seen = new Set<string>();
  return issues
    .filter((issue) => {
      const key = `${issue.file}\0${issue.line}\0${issue.col}\0${issue.path}\0${issue.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => (a.file === b.file ? a.line - b.line || a.col - b.col : 0));
}

/** Validate parsed YAML against a schema; every issue located, none dropped. */
export function validateParsed<TSchema extends v.GenericSchema>(schema: TSchema, parsed: ParsedYaml): LoadResult<v.InferOutput<TSchema>> {
  if (parsed.issues.length > 0) return { ok: false, issues: sortIssues(parsed.issues) };
  const input = parsed.value === null || parsed.value === undefined ? {} : parsed.value;
  const result = v.safeParse(schema, input, { abortEarly: false, abortPipeEarly: true, message: fallbackMessage });
  // valibot takes a list where a mapping is expected (as an object with keys 0, 1, …): say "list" instead.
  const lists = listsForMappings(schema, input, []);
  const under = (path: PathSegment[]) => lists.some((list) => list.every((segment, i) => path[i] === segment));
  const issues = lists.map((path): ManifestIssue => {
    const { line, col } = parsed.locate(path);
    return { file: parsed.file, line, col, path: formatPath(path), message: "expected a mapping, got a list" };
  });
  const schemaIssues = (result.issues ?? []).filter((issue) => !under(issuePath(issue).path));
  issues.push(...schemaIssues.map((issue): ManifestIssue => {
    const { path, at } = issuePath(issue);
    const { line, col } = parsed.locate(path, at);
    return { file: parsed.file, line, col, path: formatPath(path), message: issue.message };
  }));
  // valibot silently drops these keys from records; a dropped env var must not go unnoticed.
  const reported = new Set(issues.map((issue) => issue.path));
  for (const path of reservedKeys(input, [])) {
    const shown = formatPath(path);
    if (reported.has(shown)) continue;
    const { line, col } = parsed.locate(path, "key");
    issues.push({ file: parsed.file, line, col, path: shown, message: `"${String(path.at(-1))}" cannot be used as a name here` });
  }
  if (result.success && issues.length === 0) return { ok: true, loaded: { file: parsed.file, value: result.output, locate: parsed.locate } };
  return { ok: false, issues: sortIssues(issues), raw: input, locate: parsed.locate };
}

type SchemaNode = { type: string; entries?: Record<string, SchemaNode>; value?: SchemaNode; item?: SchemaNode; wrapped?: SchemaNode };

/** Paths where the schema wants a mapping and the input has a list. */
function listsForMappings(schema: unknown, input: unknown, path: PathSegment[]): PathSegment[][] {
  let node = schema as SchemaNode;
  while (node.type === "optional" && node.wrapped) node = node.wrapped;
  if (input === null || typeof input !== "object") return [];
  const isMapping = node.type === "strict_object" || node.type === "object" || node.type === "loose_object" || node.type === "record";
  if (isMapping && Array.isArray(input)) return [path];
  const found: PathSegment[][] = [];
  const record = input as Record<string, unknown>;
  if (node.entries) {
    for (const [key, child] of Object.entries(node.entries)) if (Object.hasOwn(record, key)) found.push(...listsForMappings(child, record[key], [...path, key]));
  } else if (node.type === "record" && node.value) {
    for (const [key, child] of Object.entries(record)) found.push(...listsForMappings(node.value, child, [...path, key]));
  } else if (node.type === "array" && node.item && Array.isArray(input)) {
    input.forEach((child, index) => found.push(...listsForMappings(node.item, child, [...path, index])));
  }
  return found;
}

const RESERVED = new Set(["__proto__", "constructor", "prototype"]);

function reservedKeys(value: unknown, path: PathSegment[]): PathSegment[][] {
  if (value === null || typeof value !== "object") return [];
  const found: PathSegment[][] = [];
  const entries: Array<[PathSegment, unknown]> = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  for (const [key, child] of entries) {
    if (typeof key === "string" && RESERVED.has(key)) found.push([...path, key]);
    else found.push(...reservedKeys(child, [...path, key]));
  }
  return found;
}

/** The text of a manifest file, or an issue saying why it cannot be read. */
export function readManifestText(file: string): { text: string } | { issues: ManifestIssue[] } {
  try {
    return { text: readFileSync(file, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "file not found" : code === "EISDIR" ? "is a directory, not a file" : errorMessage(error);
    return { issues: [{ file, line: 0, col: 0, path: "", message: `cannot read: ${reason}` }] };
  }
}

export function loadBottleText(text: string, file: string): LoadResult<BottleFileManifest> {
  return validateParsed(bottleSchema, parseYaml(text, file));
}

export function loadBottleFile(file: string): LoadResult<BottleFileManifest> {
  const read = readManifestText(file);
  return "text" in read ? loadBottleText(read.text, file) : { ok: false, issues: read.issues };
}

type FrontMatter = { yaml?: string; body: string } | { problem: string };

/** Split `---\nyaml\n---\nbody`. No front matter means the whole file is the prompt. */
export function splitFrontMatter(text: string): FrontMatter {
  const source = text.replace(/^\uFEFF/, "");
  const lines = source.split(/\r?\n/);
  if ((lines[0] ?? "").trimEnd() !== "---") return { body: source };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trimEnd();
    if (line === "---" || line === "...") {
      return { yaml: lines.slice(1, i).join("\n"), body: lines.slice(i + 1).join("\n") };
    }
  }
  return { problem: "the front matter opened by --- on line 1 is never closed — end it with a line holding only ---" };
}

export function loadAgentText(text: string, file: string): LoadResult<LoadedAgentFile> {
  const split = splitFrontMatter(text);
  if ("problem" in split) return { ok: false, issues: [{ file, line: 1, col: 1, path: "", message: split.problem }] };
  const parsed = parseYaml(split.yaml ?? "", file, 1);
  const result = validateParsed(agentSchema, parsed);
  if (!result.ok) return result;
  return { ok: true, loaded: { file, value: { manifest: result.loaded.value, prompt: split.body.trim() }, locate: result.loaded.locate } };
}

export function loadAgentFile(file: string): LoadResult<LoadedAgentFile> {
  const read = readManifestText(file);
  return "text" in read ? loadAgentText(read.text, file) : { ok: false, issues: read.issues };
}
