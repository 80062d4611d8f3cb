import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";

/**
 * A list kept as one JSON file in the state dir (the bottle branches, the
 * engines bottles ran on): read through its schema (a file that does not
 * match reads as empty, never half), written whole and renamed into place,
 * so two launches at once never leave half a file.
 */

export function readStateList<TSchema extends v.GenericSchema>(file: string, item: TSchema): v.InferOutput<TSchema>[] {
  try {
    const parsed = v.safeParse(v.array(item), JSON.parse(readFileSync(file, "utf8")));
    return parsed.success ? parsed.output : [];
  } catch {
    return [];
  }
}

export function writeStateList(file: string, entries: readonly unknown[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(entries, null, 2)}\n`);
  renameSync(temporary, file);
}
