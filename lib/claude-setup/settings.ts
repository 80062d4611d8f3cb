import { readFileSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import { ManifestError } from "../manifest/errors.ts";

/**
 * The user's settings.json in a bottle: what comes in (all of it, or only
 * its hooks), without the keys that carry or fetch a secret, merged with the
 * hooks an agent file brings. Keys are named in notes, never their values.
 */

/** Settings keys that hold a secret or run a command to fetch one, each with where that belongs in a bottle instead. */
export const SECRET_SETTINGS: Readonly<Record<string, string>> = {
  env: "its values may be secrets: give a variable through the bottle's env:, a credential through egress.routes (the gate holds it)",
  apiKeyHelper: "it fetches Claude Code's key: the gate holds Claude Code's credential (auth:)",
  awsAuthRefresh: "it fetches AWS credentials: a bottle gets none",
  awsCredentialExport: "it exports AWS credentials: a bottle gets none",
  otelHeadersHelper: "it fetches telemetry credentials: a bottle gets none",
};

type Json = Record<string, unknown>;

/** A JSON file as an object; a broken one is an error naming the file and the position. */
export function readJsonObject(path: string, env: Record<string, string | undefined>): Json | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Json;
    throw new ManifestError([{ file: path, line: 1, col: 1, path: "", message: "expected a JSON object" }], { env, fix: "fix the file, or leave it out of claude:" });
  } catch (error) {
    if (error instanceof ManifestError) throw error;
    // JSON.parse says what, not where: the YAML parser (JSON is YAML) finds the place.
    const counter = new LineCounter();
    const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
    const at = doc.errors[0] ? counter.linePos(doc.errors[0].pos[0]) : { line: 0, col: 0 };
    throw new ManifestError([{ file: path, line: at.line, col: at.col, path: "", message: "is not valid JSON" }], { env, fix: "fix the file (claude: reads it as Claude Code does), or leave it out of claude:" });
  }
}

export interface SettingsChoice {
  /** The whole file comes in (less its secret keys). */
  all: boolean;
  /** Its hooks come in. */
  hooks: boolean;
}

export interface BottleSettings {
  settings: Json;
  /** One line per key left out, with why (never a value). */
  dropped: string[];
  /** The hook events the bottle runs. */
  hookEvents: string[];
}

type Hooks = Record<string, unknown[]>;

function hooksOf(value: unknown): Hooks {
  if (!value || typeof value !== "object" || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, unknown[]] => Array.isArray(entry[1])));
}

/** The hooks of both, per event, the user's first. */
export function mergeHooks(a: Hooks, b: Hooks): Hooks {
  const out: Hooks = { ...a };
  for (const [event, matchers] of Object.entries(b)) out[event] = [...(out[event] ?? []), ...matchers];
  return out;
}

/** What of `host` (the parsed settings.json, if any) goes into the bottle, with `agentHooks` added. */
export function bottleSettings(host: Json | undefined, choice: SettingsChoice, agentHooks: Hooks = {}): BottleSettings {
  const settings: Json = {};
  const dropped: string[] = [];
  if (host && choice.all)
    for (const [key, value] of Object.entries(host)) {
      if (key === "hooks") continue;
      const why = SECRET_SETTINGS[key];
      if (why) dropped.push(`settings.json ${key} left out: ${why}`);
      else settings[key] = value;
    }
  const hostHooks = hooksOf(host?.hooks);
  if (host && choice.all && !choice.hooks && Object.keys(hostHooks).length) dropped.push("settings.json hooks left out: claude.hooks is false");
  const hooks = mergeHooks(choice.hooks ? hostHooks : {}, agentHooks);
  if (Object.keys(hooks).length) settings.hooks = hooks;
  return { settings, dropped, hookEvents: Object.keys(hooks) };
}
