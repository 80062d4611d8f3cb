/**
 * How a gate daemon names what is wrong in its config file: `routes[0].host:
 * <message>`, from a schema issue's path. Structural, so that this folder
 * needs no schema library of its own.
 */

export interface SchemaIssue {
  message: string;
  path?: ReadonlyArray<{ key: unknown }> | undefined;
}

/** `limits.bytesOut`, `routes[1].port`, `listen[0]`; "" for the top level. */
export function issuePath(issue: SchemaIssue): string {
  let out = "";
  for (const { key } of issue.path ?? []) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** `<path>: <message>`, or the message alone for the top level. */
export function issueText(issue: SchemaIssue): string {
  const path = issuePath(issue);
  return path === "" ? issue.message : `${path}: ${issue.message}`;
}
