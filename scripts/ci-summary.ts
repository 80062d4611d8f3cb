/**
 * Reads bun's JUnit report and prints the plain line CI recognises:
 * "N passed, N failed" (", N skipped" when any were skipped). Before it, each
 * failure with its message and where it failed: CI keeps only the end of
 * the output, and a failure's name alone rarely says why.
 */
import { existsSync, readFileSync } from "node:fs";

const file = process.argv[2] ?? "test-results.xml";
if (!existsSync(file)) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const unescape = (text: string): string =>
  text
    .replace(/&#10;/g, "\n")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
const attribute = (tag: string, name: string): string => unescape(new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1] ?? "");

const xml = readFileSync(file, "utf8");
let passed = 0;
let skipped = 0;
const failures: string[] = [];
for (const match of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
  const head = match[1] ?? "";
  const body = match[3] ?? "";
  const failure = /<(failure|error)\b[^>]*>([\s\S]*?)<\/\1>|<(failure|error)\b([^>]*)\/>/.exec(body);
  if (failure) {
    const detail = unescape(failure[2] ?? attribute(failure[4] ?? "", "message")).trim();
    const where = `${attribute(head, "file")}:${attribute(head, "line")}`;
    failures.push(`(fail) ${attribute(head, "name")} [${where}]\n${detail.length > 1500 ? `${detail.slice(0, 1500)}…` : detail}`);
  } else if (/<skipped\b/.test(body)) skipped++;
  else passed++;
}
if (failures.length) console.log(`\nwhy each failed:\n\n${failures.join("\n\n")}\n`);
console.log(`${passed} passed, ${failures.length} failed${skipped ? `, ${skipped} skipped` : ""}`);
