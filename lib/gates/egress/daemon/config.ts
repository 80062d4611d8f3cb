/**
 * The egress gate's config file (`/etc/bottle/egress.json`), written by the
 * host side and read by the gate at start and on SIGHUP: checked against its
 * schema (config-schema.ts); and the secrets and credentials files it names.
 */
import { readFileSync } from "node:fs";
import * as v from "valibot";
import { issueText } from "../../common/schema-issue.ts";
import { type EgressConfig, EgressConfigSchema } from "./config-schema.ts";
import { isCredentialName } from "./config-schema.ts";

export class EgressConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EgressConfigError";
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates a parsed config object; throws EgressConfigError naming the bad field. */
export function validateConfig(value: unknown): EgressConfig {
  const result = v.safeParse(EgressConfigSchema, value, { abortEarly: true });
  if (!result.success) throw new EgressConfigError(issueText(result.issues[0]));
  return result.output;
}

export function parseConfig(text: string): EgressConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new EgressConfigError(`not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return validateConfig(value);
}

export function loadConfig(path: string): EgressConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new EgressConfigError(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return parseConfig(text);
  } catch (error) {
    throw new EgressConfigError(`${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Reads the secrets file: a JSON array of strings. Errors never include file contents. */
export function loadSecrets(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = isRecord(error) && typeof error.code === "string" ? error.code : "error";
    throw new EgressConfigError(`cannot read secrets file ${path} (${code})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EgressConfigError(`secrets file ${path} is not valid JSON`);
  }
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === "string")) {
    throw new EgressConfigError(`secrets file ${path} must be a JSON array of strings`);
  }
  return value;
}

/**
 * Reads the credentials file: a JSON object of name → value. Every name in
 * `needed` must be there. Errors name the file and the credential, never a value.
 */
export function loadCredentials(path: string, needed: readonly string[]): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = isRecord(error) && typeof error.code === "string" ? error.code : "error";
    throw new EgressConfigError(`cannot read credentials file ${path} (${code})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EgressConfigError(`credentials file ${path} is not valid JSON`);
  }
  if (!isRecord(value)) throw new EgressConfigError(`credentials file ${path} must be a JSON object of name: value`);
  const credentials = new Map<string, string>();
  for (const [name, secret] of Object.entries(value)) {
    if (!isCredentialName(name) || typeof secret !== "string" || secret === "") {
      throw new EgressConfigError(`credentials file ${path}: ${isCredentialName(name) ? name : "an entry"} must be a non-empty string`);
    }
    credentials.set(name, secret);
  }
  for (const name of needed) if (!credentials.has(name)) throw new EgressConfigError(`credentials file ${path} has no ${name}`);
  return credentials;
}

/** The credential names a config refers to. */
export function neededCredentials(config: EgressConfig): string[] {
  const names = new Set<string>();
  for (const route of config.routes ?? []) names.add(route.credential);
  if (config.anthropic) names.add(config.anthropic.credential);
  return [...names];
}
