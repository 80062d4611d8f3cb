import { describe, expect, test } from "bun:test";
import { type CommandDef, defineCommand } from "citty";
import { checkCommandLine, flagValues, splitArgs } from "../../../lib/cli/args.ts";
import { BottleError } from "../../../lib/errors.ts";

describe("splitArgs", () => {
  test("everything after the first -- is passed through untouched", () => {
    expect(splitArgs(["up", "agent", "--", "bash", "-lc", "echo --verbose", "--", "-q"])).toEqual({
      own: ["up", "agent"],
      passthrough: ["bash", "-lc", "echo --verbose", "--", "-q"],
      verbosity: "normal",
    });
  });

  test("no -- means no passthrough", () => {
    expect(splitArgs(["ls", "--json"])).toEqual({ own: ["ls", "--json"], passthrough: [], verbosity: "normal" });
    expect(splitArgs([])).toEqual({ own: [], passthrough: [], verbosity: "normal" });
  });

  test("--verbose, --quiet and -q are taken out anywhere before --", () => {
    expect(splitArgs(["--verbose", "up"])).toEqual({ own: ["up"], passthrough: [], verbosity: "verbose" });
    expect(splitArgs(["up", "--quiet"])).toEqual({ own: ["up"], passthrough: [], verbosity: "quiet" });
    expect(splitArgs(["down", "-q", "x"])).toEqual({ own: ["down", "x"], passthrough: [], verbosity: "quiet" });
  });

  test("the last verbosity flag wins", () => {
    expect(splitArgs(["-q", "--verbose"]).verbosity).toBe("verbose");
    expect(splitArgs(["--verbose", "-q"]).verbosity).toBe("quiet");
  });

  test("global flags and --help after -- belong to the passthrough", () => {
    const split = splitArgs(["exec", "b", "--", "claude", "--help", "--verbose", "-q"]);
    expect(split.own).toEqual(["exec", "b"]);
    expect(split.own).not.toContain("--help");
    expect(split.passthrough).toEqual(["claude", "--help", "--verbose", "-q"]);
    expect(split.verbosity).toBe("normal");
  });

  test("an empty passthrough after a trailing --", () => {
    expect(splitArgs(["up", "--"])).toEqual({ own: ["up"], passthrough: [], verbosity: "normal" });
  });
});

const up = defineCommand({
  meta: { name: "up" },
  args: {
    agent: { type: "positional", required: false },
    name: { type: "string", alias: "n" },
    detach: { type: "boolean", alias: "d" },
    "dry-run": { type: "boolean" },
    yes: { type: "boolean", alias: ["y", "assume-yes"] },
  },
});

const logs = defineCommand({
  meta: { name: "logs" },
  args: {
    name: { type: "positional", required: true },
    gate: { type: "string" },
    follow: { type: "boolean", alias: "f" },
  },
});

const ls = defineCommand({ meta: { name: "ls" }, args: { json: { type: "boolean" } } });
const init = defineCommand({ meta: { name: "init" }, args: { preset: { type: "string" } } });

const root = defineCommand({
  meta: { name: "bottle" },
  args: { verbose: { type: "boolean" }, quiet: { type: "boolean", alias: "q" } },
  // Lazy sub-commands, like the real CLI.
  subCommands: { up: () => Promise.resolve(up), logs: async () => logs, ls, init },
}) as CommandDef;

async function rejection(argv: string[]): Promise<BottleError> {
  try {
    await checkCommandLine(root, argv);
  } catch (error) {
    expect(error).toBeInstanceOf(BottleError);
    return error as BottleError;
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be refused`);
}

describe("flagValues", () => {
  test("a repeatable flag: repeated, =value and comma lists, each value once, in order", () => {
    expect(flagValues(["--preset", "npm", "--yes", "--preset=github,go", "--preset", " npm , pypi"], "preset")).toEqual(["npm", "github", "go", "pypi"]);
    expect(flagValues(["--agent", "x"], "preset")).toEqual([]);
  });

  test("a missing or empty value is a usage error", () => {
    for (const argv of [["--preset"], ["--preset", "--yes"], ["--preset="], ["--preset", "npm,,go"]]) {
      let error: unknown;
      try {
        flagValues(argv, "preset");
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(BottleError);
      expect((error as BottleError).exitCode).toBe(2);
    }
  });
});

describe("checkCommandLine", () => {
  test("resolves the sub-command path", async () => {
    const resolved = await checkCommandLine(root, ["up", "myagent", "--detach"]);
    expect(resolved.path).toEqual(["up"]);
    expect(resolved.command).toBe(up as CommandDef);
    const bare = await checkCommandLine(root, []);
    expect(bare.path).toEqual([]);
    expect(bare.command).toBe(root);
  });

  test("root flags before the sub-command are accepted", async () => {
    expect((await checkCommandLine(root, ["--verbose", "ls", "--json"])).path).toEqual(["ls"]);
  });

  test("an unknown command is refused with a did-you-mean hint and exit code 2", async () => {
    const error = await rejection(["lgs", "x"]);
    expect(error.message).toBe('unknown command "lgs" — did you mean `bottle logs`?');
    expect(error.fix).toBe("run `bottle --help` to list the commands");
    expect(error.exitCode).toBe(2);
  });

  test("an unknown command far from every name gets no hint", async () => {
    const error = await rejection(["frobnicate"]);
    expect(error.message).toBe('unknown command "frobnicate"');
  });

  test("an unknown flag is refused with a hint naming the command", async () => {
    const error = await rejection(["up", "--detatch"]);
    expect(error.message).toBe("unknown flag --detatch for bottle up — did you mean --detach?");
    expect(error.fix).toBe("run `bottle up --help` to see its flags");
    expect(error.exitCode).toBe(2);
  });

  test("an unknown flag on the root names `bottle`", async () => {
    const error = await rejection(["--verbos"]);
    expect(error.message).toBe("unknown flag --verbos for bottle — did you mean --verbose?");
    expect(error.fix).toBe("run `bottle --help` to see its flags");
  });

  test("a flag of another command is unknown here", async () => {
    const error = await rejection(["ls", "--gate", "egress"]);
    expect(error.message).toStartWith("unknown flag --gate for bottle ls");
  });

  test("--flag=value checks only the flag name", async () => {
    expect((await checkCommandLine(root, ["up", "--name=foo=bar"])).path).toEqual(["up"]);
    const error = await rejection(["up", "--nmae=foo"]);
    expect(error.message).toBe("unknown flag --nmae for bottle up — did you mean --name?");
  });

  test("booleans accept --no-x; strings do not", async () => {
    await checkCommandLine(root, ["up", "--no-detach", "--no-dry-run"]);
    const error = await rejection(["up", "--no-name", "x"]);
    expect(error.message).toStartWith("unknown flag --no-name for bottle up");
  });

  test("a string flag's value is skipped, even when it looks like a flag", async () => {
    // `--weird` is the value of --name, not an unknown flag.
    expect((await checkCommandLine(root, ["up", "--name", "--weird"])).path).toEqual(["up"]);
    // The value is not counted as a positional either: one positional allowed.
    expect((await checkCommandLine(root, ["up", "--name", "base", "agent"])).path).toEqual(["up"]);
    expect((await checkCommandLine(root, ["logs", "--gate", "egress", "bottle-x"])).path).toEqual(["logs"]);
  });

  test("a boolean flag does not swallow the next argument", async () => {
    // `--detach agent extra`: agent is the positional, extra is one too many.
    const error = await rejection(["up", "--detach", "agent", "extra"]);
    expect(error.message).toBe("too many arguments for bottle up");
    // And an unknown flag after a boolean is still caught.
    expect((await rejection(["up", "--detach", "--weird"])).message).toStartWith("unknown flag --weird");
  });

  test("aliases are known flags, with their type", async () => {
    expect((await checkCommandLine(root, ["up", "-d", "-y", "--assume-yes"])).path).toEqual(["up"]);
    // -n is the alias of a string flag: its value is skipped.
    expect((await checkCommandLine(root, ["up", "-n", "--looks-like-a-flag", "agent"])).path).toEqual(["up"]);
    // Without the skip, `agent2` would be a second positional.
    expect((await checkCommandLine(root, ["up", "-n", "base", "agent"])).path).toEqual(["up"]);
    const error = await rejection(["up", "-n", "base", "agent", "agent2"]);
    expect(error.message).toBe("too many arguments for bottle up");
  });

  test("unknown short flags are refused; bundles are left to citty", async () => {
    expect((await rejection(["logs", "x", "-z"])).message).toStartWith("unknown flag -z for bottle logs");
    expect((await checkCommandLine(root, ["logs", "x", "-fz"])).path).toEqual(["logs"]);
  });

  test("a string flag given twice is a usage error (citty would keep only the last); a boolean twice is harmless", async () => {
    for (const argv of [["up", "--name", "a", "--name", "b"], ["up", "-n", "a", "--name=b"], ["logs", "x", "--gate", "egress", "--gate=git"]]) {
      const error = await rejection(argv);
      expect(error.message).toMatch(/^(-n|--name|--gate) is given twice for bottle (up|logs); only one value would count$/);
      expect(error.fix).toContain("comma-separated");
      expect(error.exitCode).toBe(2);
    }
    expect((await checkCommandLine(root, ["up", "-d", "--detach", "-y", "--assume-yes"])).path).toEqual(["up"]);
    // A flag read for every value it is given (bottle init --preset) may repeat.
    expect((await checkCommandLine(root, ["init", "--preset", "npm", "--preset", "github"])).path).toEqual(["init"]);
  });

  test("--help and -h are always known", async () => {
    expect((await checkCommandLine(root, ["up", "--help"])).path).toEqual(["up"]);
    expect((await checkCommandLine(root, ["logs", "-h"])).path).toEqual(["logs"]);
    expect((await checkCommandLine(root, ["--help"])).path).toEqual([]);
  });

  test("too many positionals", async () => {
    await checkCommandLine(root, ["logs", "bottle-x"]);
    const error = await rejection(["logs", "bottle-x", "bottle-y"]);
    expect(error.message).toBe("too many arguments for bottle logs");
    expect(error.fix).toBe("run `bottle logs --help`; pass a command after `--`");
    expect(error.exitCode).toBe(2);
    expect((await rejection(["ls", "extra"])).message).toBe("too many arguments for bottle ls");
  });

  test("a missing required positional is a usage error naming it, except with --help", async () => {
    const error = await rejection(["logs"]);
    expect(error.message).toBe("missing NAME for bottle logs");
    expect(error.fix).toBe("run `bottle logs NAME` (see `bottle logs --help`)");
    expect(error.exitCode).toBe(2);
    expect((await checkCommandLine(root, ["logs", "--help"])).path).toEqual(["logs"]);
    expect((await checkCommandLine(root, ["logs", "-h"])).path).toEqual(["logs"]);
    // An optional positional may be left out.
    expect((await checkCommandLine(root, ["up"])).path).toEqual(["up"]);
  });

  test("a lone - is a positional, not a flag", async () => {
    await checkCommandLine(root, ["logs", "-"]);
    expect((await rejection(["logs", "-", "-"])).message).toBe("too many arguments for bottle logs");
  });

  test("commands without args accept only --help", async () => {
    const bare = defineCommand({ meta: { name: "bare" } });
    const tree = defineCommand({ meta: { name: "bottle" }, subCommands: { bare } }) as CommandDef;
    expect((await checkCommandLine(tree, ["bare", "--help"])).path).toEqual(["bare"]);
    await expect(checkCommandLine(tree, ["bare", "--x"])).rejects.toThrow("unknown flag --x for bottle bare");
    await expect(checkCommandLine(tree, ["bare", "x"])).rejects.toThrow("too many arguments for bottle bare");
  });
});

describe("variadic positionals", () => {
  test("a positional with a valueHint ending in … takes any number of values", async () => {
    const { defineCommand } = await import("citty");
    const { checkCommandLine } = await import("../../../lib/cli/args.ts");
    const root = defineCommand({
      subCommands: {
        down: defineCommand({ args: { names: { type: "positional", required: false, valueHint: "NAME…" } } }),
        one: defineCommand({ args: { name: { type: "positional", required: false } } }),
      },
    });
    await expect(checkCommandLine(root, ["down", "a", "b", "c"])).resolves.toMatchObject({ path: ["down"] });
    await expect(checkCommandLine(root, ["one", "a", "b"])).rejects.toThrow(/too many arguments/);
  });
});
