import { defineCommand } from "citty";
import { allowHost } from "../lib/allow.ts";
import { realExec } from "../lib/exec.ts";
import { log } from "../lib/log.ts";

export default defineCommand({
  meta: { name: "allow", description: "Let a running bottle reach one more host (until it stops)" },
  args: {
    name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" },
    host: { type: "positional", required: true, description: "Host to allow: api.example.com, *.example.com or host:8443" },
  },
  async run({ args }) {
    const { added, manifestHint } = await allowHost(realExec, args.name, args.host);
    if (added) log.success(`${args.name} may now reach ${args.host}`);
    else log.info(`${args.name} already allows ${args.host}`);
    process.stderr.write(`${manifestHint}\n`);
  },
});
