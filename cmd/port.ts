import { defineCommand } from "citty";
import { usageError } from "../lib/cli/args.ts";
import { realExec } from "../lib/exec.ts";
import { log } from "../lib/log.ts";
import { addPort, listPorts, removePort } from "../lib/ports/command.ts";
import { formatOpenPort, openPortMessage } from "../lib/ports/format.ts";
import { hostAddress } from "../lib/ports/host.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "port", description: "Forward a port of a running bottle to the host (127.0.0.1), stop forwarding it (--rm), or list its ports" },
  args: {
    name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" },
    port: { type: "positional", required: false, valueHint: "[HOSTPORT:]PORT", description: "The bottle's port; HOSTPORT:PORT puts it on that host port" },
    rm: { type: "boolean", description: "Stop forwarding PORT" },
    bind: { type: "string", valueHint: "ADDRESS", description: "Publish on this host address instead of 127.0.0.1 (e.g. 0.0.0.0: others can connect)" },
    ...jsonArgs,
  },
  async run({ args }) {
    if (args.port === undefined) {
      if (args.rm || args.bind !== undefined) throw usageError(`missing PORT for bottle port ${args.name} ${args.rm ? "--rm" : "--bind"}`, `bottle port ${args.name} ${args.rm ? "--rm 3000" : "3000 --bind 0.0.0.0"}`);
      const ports = await listPorts(realExec, args.name);
      if (args.json) printJson(ports);
      else process.stdout.write(ports.length ? `${ports.map(formatOpenPort).join("\n")}\n` : "");
      if (!ports.length && !args.json) log.info(`${args.name} forwards no port (\`bottle port ${args.name} PORT\` forwards one)`);
      return;
    }
    if (args.rm) {
      if (args.bind !== undefined) throw usageError("--rm and --bind do not mix", `bottle port ${args.name} --rm ${args.port}`);
      await removePort(realExec, args.name, args.port);
      log.success(`${args.name} no longer forwards its port ${args.port}`);
      return;
    }
    const { open, forward } = await addPort(realExec, args.name, args.port, args.bind);
    if (args.json) printJson(open);
    else process.stdout.write(`${hostAddress(open.hostIp, open.hostPort)}\n`);
    const message = openPortMessage(args.name, open, forward);
    if (forward.takenBy) log.warn(message);
    else log.success(message);
  },
});
