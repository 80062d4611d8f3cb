import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { resolveBottle } from "../../../lib/manifest/index.ts";
import { bottleErrorFor, bottleFor, sandbox, type Sandbox } from "./helpers.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

const resolved = (text: string, name = "dev") => bottleFor(box, text, name);
const errorFor = (text: string) => bottleErrorFor(box, text);

describe("resources: in a bottle file", () => {
  test("cpus, memory in any of Docker's spellings or bytes, pids", () => {
    expect(resolved("resources: { cpus: 0.5, memory: 512m, pids: 1024 }\n").resources).toEqual({
      cpus: { value: 0.5, file: box.bottle("dev", ""), line: 1, col: 20, path: "resources.cpus" },
      memory: { value: 512 * MiB, file: box.bottle("dev", ""), line: 1, col: 33, path: "resources.memory" },
      pids: { value: 1024, file: box.bottle("dev", ""), line: 1, col: 45, path: "resources.pids" },
    });
    for (const [written, bytes] of [["4g", 4 * GiB], ["4GiB", 4 * GiB], ['"1.5 GB"', 1.5 * GiB], ["1073741824", GiB]] as const)
      expect(resolved(`resources:\n  memory: ${written}\n`).resources.memory?.value).toBe(bytes);
  });

  test("each field is merged on its own across extends: the later file wins", () => {
    box.bottle("base", "resources: { cpus: 2, memory: 8g, pids: 512 }\n");
    const bottle = resolved("extends: base\nresources:\n  memory: 2g\n");
    expect({ cpus: bottle.resources.cpus?.value, memory: bottle.resources.memory?.value, pids: bottle.resources.pids?.value }).toEqual({ cpus: 2, memory: 2 * GiB, pids: 512 });
    expect(box.normalize(bottle.resources.memory!.file)).toBe("<tmp>/.config/bottle/bottles/dev.yaml");
    expect(box.normalize(bottle.resources.cpus!.file)).toBe("<tmp>/.config/bottle/bottles/base.yaml");
    expect(bottle.origins["resources.memory"]).toBe(bottle.resources.memory!.file);
  });

  test("none set: the built-in bottle and an empty file alike", () => {
    expect(resolveBottle("default", { env: box.env }).resources).toEqual({});
    expect(resolved("").resources).toEqual({});
  });

  test("a bad value is one positioned error naming the field and the fix", () => {
    const cases: Array<[string, string]> = [
      ["resources:\n  memory: lots\n", 'dev.yaml:2:11: resources.memory: "lots" is not a size — write it like 4g, 512m or 4GiB (powers of 1024), or in bytes'],
      ["resources:\n  memory: 100m\n", "dev.yaml:2:11: resources.memory: 100 MiB is too little memory for a bottle — use at least 256m"],
      ["resources:\n  memory: 1.5\n", "dev.yaml:2:11: resources.memory: expected a whole number of bytes, or a size like 4g, 512m or 4GiB"],
      ["resources:\n  memory: [4g]\n", "dev.yaml:2:11: resources.memory: expected a size like 4g, 512m or 4GiB, got a list"],
      ["resources:\n  cpus: two\n", "dev.yaml:2:9: resources.cpus: expected a number of CPUs like 2 or 0.5, got text"],
      ["resources:\n  cpus: 0\n", "dev.yaml:2:9: resources.cpus: too few CPUs for a bottle — use at least 0.1"],
      ["resources:\n  pids: 10\n", "dev.yaml:2:9: resources.pids: too few processes for a bottle — use at least 64"],
      ["resources:\n  pids: 100.5\n", "dev.yaml:2:9: resources.pids: expected a whole number of processes"],
      ["resources:\n  memroy: 4g\n", 'dev.yaml:2:3: resources.memroy: unknown field "memroy" — did you mean "memory"?'],
      ["resources: 4g\n", "dev.yaml:1:12: resources: expected a mapping, got text"],
    ];
    for (const [text, message] of cases) expect(errorFor(text)).toBe(`~/.config/bottle/bottles/${message}`);
  });
});
