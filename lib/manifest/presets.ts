import * as v from "valibot";
import data from "../../assets/egress-presets.json" with { type: "json" };
import { didYouMean } from "../suggest.ts";

/**
 * Egress presets: named, versioned host lists shipped inside the binary
 * (assets/egress-presets.json), so a bottle can say `presets: [npm, github]`
 * instead of listing each registry's hosts. `npm` is the newest version of
 * the list, `npm@1` pins one: a pinned preset never changes under a bottle
 * when bottle is updated.
 */

const PRESET_NAME = /^[a-z][a-z0-9-]*$/;

const presetVersionSchema = v.object({
  version: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** Each host, and what a client uses it for. */
  hosts: v.pipe(v.array(v.object({ host: v.string(), for: v.string() })), v.minLength(1)),
  /** Where the host names come from (the ecosystem's own documentation). */
  sources: v.pipe(v.array(v.pipe(v.string(), v.url())), v.minLength(1)),
  /** What a user should know before using it (a host broader than the registry). */
  notes: v.optional(v.array(v.string())),
});

export const presetFileSchema = v.record(
  v.pipe(v.string(), v.regex(PRESET_NAME)),
  v.object({ description: v.string(), versions: v.pipe(v.array(presetVersionSchema), v.minLength(1)) }),
);

export type PresetVersion = v.InferOutput<typeof presetVersionSchema>;

/** The embedded presets; checked when the binary starts (a unit test proves the file passes). */
export const PRESETS: Readonly<v.InferOutput<typeof presetFileSchema>> = v.parse(presetFileSchema, data);

/** One preset at one version, as a bottle uses it. */
export interface PresetRef {
  name: string;
  version: number;
}

export function presetNames(): string[] {
  return Object.keys(PRESETS).sort();
}

/** Every way to write a preset: `npm`, `npm@1`, … (for editors' completion). */
export function presetSpellings(): string[] {
  return presetNames().flatMap((name) => [name, ...PRESETS[name]!.versions.map((entry) => `${name}@${entry.version}`)]);
}

function latest(name: string): number {
  return Math.max(...PRESETS[name]!.versions.map((entry) => entry.version));
}

export function formatPresetRef(ref: PresetRef): string {
  return `${ref.name}@${ref.version}`;
}

/** `npm` (its newest version) or `npm@1`; a problem (a message naming the fix) when there is no such preset. */
export function parsePresetRef(text: string): PresetRef | { problem: string } {
  const names = presetNames();
  const known = `(presets: ${names.join(", ")})`;
  const match = /^([^@]*)(?:@(.*))?$/.exec(text);
  const name = match?.[1] ?? "";
  const version = match?.[2];
  if (!Object.hasOwn(PRESETS, name) || !PRESET_NAME.test(name)) {
    return { problem: `unknown preset "${text}" ${known}${didYouMean(name, names)}` };
  }
  const versions = PRESETS[name]!.versions.map((entry) => entry.version);
  if (version === undefined) return { name, version: latest(name) };
  if (!/^[1-9][0-9]*$/.test(version)) {
    return { problem: `"${text}" is not a preset version — write ${name} (the newest) or ${name}@${latest(name)}` };
  }
  if (!versions.includes(Number(version))) {
    return { problem: `${name} has no version ${version} — versions: ${versions.join(", ")}; write ${name} for the newest` };
  }
  return { name, version: Number(version) };
}

export function presetProblem(text: string): string | undefined {
  const parsed = parsePresetRef(text);
  return "problem" in parsed ? parsed.problem : undefined;
}

/** A preset's description and, at this version, its hosts. */
export function presetVersion(ref: PresetRef): PresetVersion & { description: string } {
  const preset = PRESETS[ref.name];
  const entry = preset?.versions.find((candidate) => candidate.version === ref.version);
  if (!preset || !entry) throw new Error(`no preset ${formatPresetRef(ref)}`);
  return { ...entry, description: preset.description };
}

export function presetHosts(ref: PresetRef): string[] {
  return presetVersion(ref).hosts.map((entry) => entry.host);
}

/** The hosts a bottle's egress names: its own entries, then its presets' hosts, each once. */
export function egressHosts(egress: { allow: readonly string[]; presets: readonly PresetRef[] }): string[] {
  return [...new Set([...egress.allow, ...egress.presets.flatMap(presetHosts)])];
}

/** The presets (at their newest version) that list `host` itself. */
export function presetsWithHost(host: string): string[] {
  return presetNames().filter((name) => presetHosts({ name, version: latest(name) }).includes(host));
}
