import { defineCommand } from "citty";
import { BottleError } from "../lib/errors.ts";
import { agentJsonSchema, bottleJsonSchema } from "../lib/manifest/index.ts";
import { didYouMean } from "../lib/suggest.ts";
import { printJson } from "./_shared.ts";

const KINDS = { bottle: bottleJsonSchema, agent: agentJsonSchema } as const;

export default defineCommand({
  meta: { name: "schema", description: "Print the JSON Schema of bottle manifests or agent front matter" },
  args: {
    kind: { type: "positional", required: false, default: "bottle", description: "bottle (default) or agent" },
  },
  run({ args }) {
    const kind = String(args.kind ?? "bottle");
    if (kind !== "bottle" && kind !== "agent") {
      throw new BottleError(`unknown schema "${kind}"${didYouMean(kind, Object.keys(KINDS))}`, { fix: "run `bottle schema bottle` or `bottle schema agent`", exitCode: 2 });
    }
    printJson(KINDS[kind]());
  },
});
