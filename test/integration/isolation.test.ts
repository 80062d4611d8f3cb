import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { containerIp, startEchoHost, type WorldHost } from "../helpers/world.ts";

/**
 * What a running bottle can and cannot reach. The "internet" is echo servers
 * this test starts on the bottle's egress network under made-up names.
 */

const SECRET = `s3cret-${Math.random().toString(36).slice(2)}-value`;

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

describeDocker("a running bottle's isolation", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("iso");
  const label = `bottle.test=${agent}`;
  let name = "";
  let other = "";
  let gateImage = "";
  const world: WorldHost[] = [];
  let hostServer: ReturnType<typeof Bun.serve> | undefined;

  const inBottle = (script: string, bottle = name) => runBottle(sandbox, ["exec", bottle, "--", "sh", "-c", script]);

  beforeAll(async () => {
    sandbox = makeSandbox({ BOTTLE_TEST_SECRET: SECRET });
    // A git repo as workspace, owned by a uid that is not the image's 1000.
    mkdirSync(join(sandbox.project, ".git", "hooks"), { recursive: true });
    writeFile(join(sandbox.project, ".git", "config"), "[core]\n\trepositoryformatversion = 0\n");
    writeFile(join(sandbox.project, "README"), "project\n");
    for (const path of [sandbox.project, join(sandbox.project, ".git"), join(sandbox.project, ".git", "hooks"), join(sandbox.project, ".git", "config"), join(sandbox.project, "README")])
      chownSync(path, 1234, 1234);
    writeFile(
      join(sandbox.config, "bottles", "web.yaml"),
      [
        "egress:",
        "  allow: [allowed.test]",
        "  allow_private: [allowed.test]",
        "env:",
        "  PROBE_LITERAL: plain-literal",
        "  PROBE_SECRET: ${BOTTLE_TEST_SECRET}",
        "",
      ].join("\n"),
    );
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: web\n---\nisolation test agent\n");

    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    expect(up.stderr.includes("bottle: ") ? up.stderr : "").toBe("");
    name = up.stdout.trim();
    const second = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    other = second.stdout.trim();
    const plan = JSON.parse(readFileSync(join(sandbox.state, "bottle", "bottles", name, "plan.json"), "utf8"));
    gateImage = plan.images.gate.tag;
    world.push(startEchoHost(gateImage, `${name}-egress`, ["allowed.test", "denied.test"], label));
    hostServer = Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: () => new Response("host service") });
  });

  afterAll(async () => {
    for (const host of world) host.remove();
    hostServer?.stop(true);
    if (name || other) await runBottle(sandbox, ["down", ...[name, other].filter(Boolean)]);
    removeLabelled(`bottle.agent=${agent}`);
  });

  test("an allowed host is reachable through the gate", async () => {
    const out = await inBottle("curl -sS --max-time 10 http://allowed.test/ping");
    expect(out.stdout).toContain("hello from allowed.test /ping");
  });

  test("a host not on the list gets the gate's 403 naming the rule and the fix", async () => {
    const out = await inBottle("curl -sS --max-time 10 -w '\\n%{http_code}' http://denied.test/");
    expect(out.stdout).toMatch(/403$/);
    expect(out.stdout).toContain("denied.test");
    expect(out.stdout).toContain("allow");
    expect(out.stdout).not.toContain("hello from");
    const audit = readFileSync(join(sandbox.state, "bottle", "bottles", name, "logs", "egress.jsonl"), "utf8");
    expect(audit).toContain('"denied.test"');
    const logs = await runBottle(sandbox, ["logs", name, "--gate", "egress", "--json"]);
    const lines = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(lines.some((line) => line.host === "denied.test" && line.decision === "deny")).toBe(true);
    expect(lines.some((line) => line.host === "allowed.test" && line.decision === "allow")).toBe(true);
  });

  test("a direct connection that ignores the proxy fails, also to an allowed host's address", async () => {
    const ip = containerIp(world[0]!.container, `${name}-egress`);
    const out = await inBottle(
      `curl -sS --noproxy '*' --max-time 5 http://allowed.test/ && echo LEAK; curl -sS --noproxy '*' --max-time 5 http://${ip}/ && echo LEAK; exit 0`,
    );
    expect(out.stdout).not.toContain("LEAK");
    expect(out.stdout).not.toContain("hello from");
  });

  test("the Docker host is unreachable: gateway addresses and the host's own address", async () => {
    const port = hostServer!.port;
    const gateways = new Set<string>();
    for (const network of [`${name}-internal`, `${name}-egress`, "bridge"])
      for (const gateway of docker("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", network).split(" "))
        if (gateway) gateways.add(gateway);
    const hostIps = Bun.spawnSync(["hostname", "-I"]).stdout.toString().trim().split(/\s+/).filter((ip) => ip.includes("."));
    const targets = [...gateways, ...hostIps];
    expect(targets.length).toBeGreaterThan(1);
    // Sanity: the service answers from the host itself.
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("host service");
    const script = targets.map((ip) => `curl -sS --noproxy '*' --max-time 4 http://${ip}:${port}/ && echo LEAK-${ip}`).join("; ");
    const direct = await inBottle(`${script}; exit 0`);
    expect(direct.stdout).not.toContain("LEAK");
    // Through the proxy, private addresses are refused too.
    const proxied = await inBottle(targets.map((ip) => `curl -sS --max-time 4 http://${ip}:${port}/ | grep -q 'host service' && echo LEAK-${ip}`).join("; ") + "; exit 0");
    expect(proxied.stdout).not.toContain("LEAK");
  });

  test("another running bottle is unreachable", async () => {
    const otherIp = containerIp(other, `${other}-internal`);
    const otherGate = containerIp(`${other}-gate`, `${other}-internal`);
    const out = await inBottle(
      `for ip in ${otherIp} ${otherGate}; do curl -sS --noproxy '*' --max-time 4 http://$ip:3128/ >/dev/null 2>&1 && echo LEAK-$ip; done; exit 0`,
    );
    expect(out.stdout).not.toContain("LEAK");
  });

  test("env values reach the command but never a command line, docker inspect, or the state dir", async () => {
    const out = await inBottle('printf "%s|%s" "$PROBE_LITERAL" "$PROBE_SECRET"');
    expect(out.stdout).toBe(`plain-literal|${SECRET}`);
    for (const container of [name, `${name}-gate`]) expect(docker("inspect", container)).not.toContain(SECRET);
    expect(docker("ps", "-a", "--no-trunc")).not.toContain(SECRET);
    const ps = Bun.spawnSync(["ps", "-eww", "-o", "args"]).stdout.toString();
    expect(ps).not.toContain(SECRET);
    const state = join(sandbox.state, "bottle");
    for (const file of walk(state)) expect(readFileSync(file, "utf8")).not.toContain(SECRET);
    // Inside, only the agent user can read the env file.
    const perms = await inBottle("stat -c '%a %u' /run/bottle/env");
    expect(perms.stdout.trim()).toBe("400 1234");
  });

  test("the agent runs as the workspace owner; what it writes under .git stays in its own git dir, never the host repo's", async () => {
    const out = await inBottle(
      "id -u; echo x >> /workspace/README && echo wrote-readme; echo evil >> .git/config && echo private-config; mkdir -p .git/hooks && printf '#!/bin/sh\\necho pwned' > .git/hooks/post-checkout && echo private-hook; mv .git .git-aside && echo LEAK-moved; exit 0",
    );
    expect(out.stdout).toContain("1234");
    // The uid has a name, a group and a home in the bottle (provisioning rewrote passwd and group).
    const who = await inBottle(
      'echo "$(id -un):$(id -gn):$(getent passwd 1234 | cut -d: -f6):$(grep -c "^agent:" /etc/passwd):$(awk -F: "NF != 7" /etc/passwd | wc -l):$(grep -c "^root:x:0:$" /etc/group)"',
    );
    // One agent line; every passwd line well-formed (none of group's); group keeps its own lines.
    expect(who.stdout.trim()).toBe("agent:agent:/home/agent:1:0:1");
    expect(out.stdout).toContain("wrote-readme");
    expect(out.stdout).toContain("private-config");
    expect(out.stdout).not.toContain("LEAK");
    expect(readFileSync(join(sandbox.project, ".git", "config"), "utf8")).not.toContain("evil");
    expect(readdirSync(join(sandbox.project, ".git", "hooks"))).toEqual([]);
    expect(statSync(join(sandbox.project, "README")).uid).toBe(1234);
  });

  test("the bottle runs unprivileged: no capabilities, no-new-privileges, a pids limit, no docker socket", async () => {
    const inspect = JSON.parse(docker("inspect", name))[0];
    expect(inspect.HostConfig.CapDrop).toContain("ALL");
    expect(inspect.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(inspect.HostConfig.PidsLimit).toBeGreaterThan(0);
    expect(Object.keys(inspect.NetworkSettings.Networks)).toEqual([`${name}-internal`]);
    expect(inspect.HostConfig.PortBindings ?? {}).toEqual({});
    const out = await inBottle("grep CapEff /proc/self/status; ls /var/run/docker.sock 2>/dev/null && echo LEAK; exit 0");
    expect(out.stdout).toContain("CapEff:\t0000000000000000");
    expect(out.stdout).not.toContain("LEAK");
  });
});
