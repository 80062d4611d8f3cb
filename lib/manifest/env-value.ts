/**
 * The three kinds of env value. Parsing happens in the schema; no function
 * here ever puts a value into a message.
 */
export type EnvSource = { kind: "literal"; value: string } | { kind: "host"; variable: string } | { kind: "ask"; question: string };

const HOST_REF = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

export function envValueProblem(value: string): string | undefined {
  if (HOST_REF.test(value) || value.startsWith("?")) return undefined;
  if (/^\$\{[^}]*\}$/.test(value)) {
    return "${…} must hold exactly one host variable name, like ${GITHUB_TOKEN} (no defaults or other shell syntax)";
  }
  if (value.includes("${")) {
    return "the value mixes text with ${…}; a value is a literal, ${HOST_VAR} alone, or ?question — to pass a host value, export it whole and write ${HOST_VAR}";
  }
  return undefined;
}

export function parseEnvValue(value: string): EnvSource {
  const host = HOST_REF.exec(value);
  if (host) return { kind: "host", variable: host[1]! };
  if (value.startsWith("?")) return { kind: "ask", question: value.slice(1).trim() };
  return { kind: "literal", value };
}
