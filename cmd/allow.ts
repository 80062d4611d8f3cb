import { defineCommand } from "citty";
import { type AllowResult, allowHosts, deniedIn } from "../lib/allow.ts";
import { deniedChoices, formatDenied } from "../lib/denied-hosts.ts";
import { realExec } from "../lib/exec.ts";
import { log } from "../lib/log.ts";
import { pickMany } from "../lib/picker.ts";
import { jsonArgs, printJson } from "./_shared.ts";

function report(name: string, result: AllowResult): void {
  for (const host of result.added) log.success(`${name} may now reach ${host}`);
  for (const host of result.already) log.info(`${name} already allows ${host}`);
  process.stderr.write(`${result.manifestHint}\n`);
}

export default defineCommand({
  meta: { name: "allow", description: "Let a running bottle reach one more host (until it stops); without a host, pick from what it was denied" },
  args: {
    name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" },
    host: {
      type: "positional",
      required: false,
      description: "Host to allow: api.example.com, *.example.com or host:8443 (none: list the hosts it was denied, and pick on a terminal)",
    },
    ...jsonArgs,
  },
  async run({ args }) {
    const name = String(args.name);
    if (args.host) {
      const result = await allowHosts(realExec, name, [String(args.host)]);
      if (args.json) printJson(result);
      else report(name, result);
      return;
    }
    const denied = await deniedIn(realExec, name);
    if (args.json) {
      printJson(denied.hosts);
      return;
    }
    if (denied.hosts.length === 0) {
      log.info(`${name} was denied no host${denied.unattributed ? ` (but ${denied.unattributed} denials across many hosts at once: see bottle logs ${name} --gate egress)` : ""}`);
      return;
    }
    const offered = denied.hosts.filter((row) => row.allow);
    if (!process.stdin.isTTY || !process.stderr.isTTY || offered.length === 0) {
      process.stdout.write(formatDenied(denied));
      if (offered.length) log.info(`allow one with: bottle allow ${name} HOST (or run bottle allow ${name} on a terminal to pick)`);
      else log.info("allowing these hosts would not let their requests through (see why above)");
      return;
    }
    const picked = await pickMany(`Allow which hosts for ${name} (until it stops)?`, deniedChoices(denied.hosts));
    if (picked.length === 0) {
      log.info("nothing allowed");
      return;
    }
    report(name, await allowHosts(realExec, name, picked.flatMap((index) => denied.hosts[index]?.allow ?? [])));
  },
});
