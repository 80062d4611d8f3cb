import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, spawnBottle, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, dockerOk, objectsWithLabel } from "../helpers/docker.ts";
import { SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, tearDown, writeAgent } from "../helpers/escape-world.ts";
import { forwarded, freeHostPort, holdHostPort, hostPortOf, httpGet, printedHostPort, startWebServer, webSocketEcho } from "../helpers/ports.ts";

/**
 * Forwarded ports on the real engine: a dev server in a detached bottle
 * answers on the host's loopback, plain HTTP and a WebSocket that stays open
 * between messages (a hot reload's); `bottle port` adds and removes one on
 * the running bottle; a taken host port moves or is an error naming its
 * holder; `ls`, `port NAME` and `info` show them; `down` and the launcher's
 * own teardown leave no relay behind. The escape suite attacks the relay
 * (escape/ports.test.ts).
 */

describeDocker("forwarded ports", () => {
  let sandbox: Sandbox;
  let agent = "";
  let name = "";
  /** Its explicit host port for the bottle's 4000, free when the test starts. */
  let explicit = 0;

  beforeAll(async () => {
    sandbox = makeSandbox();
    explicit = await freeHostPort();
    // The attack image's Python runs the dev server stand-in.
    agent = writeAgent({ sandbox, prefix: "ports", manifest: ["ports: [3000]"] });
    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach", "-p", `${explicit}:4000`, "--", "sleep", "infinity"]);
    name = up.stdout.trim();
    if (up.exitCode !== 0 || !name) throw new Error(`bottle up failed (${up.exitCode}):\n${up.stderr}`);
    // 5173 as a dev server listens by default: on loopback only, where no relay reaches.
    await startWebServer(sandbox, name, ["3000", "4000", "5000", "127.0.0.1:5173"]);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (sandbox) await tearDown(sandbox, name ? [name] : [], agent ? [agent] : []);
  }, SETUP_TIMEOUT_MS);

  test(
    "the dev server in the detached bottle answers on 127.0.0.1 (its launcher long gone), on its own port or the one asked for",
    async () => {
      const ports = await forwarded(sandbox, name);
      expect(ports.map((entry) => [entry.port, entry.hostIp])).toEqual([
        [3000, "127.0.0.1"],
        [4000, "127.0.0.1"],
      ]);
      expect(ports.find((entry) => entry.port === 4000)!.hostPort).toBe(explicit);
      const on3000 = await hostPortOf(sandbox, name, 3000);
      expect(await httpGet(`http://127.0.0.1:${on3000}/index.html`)).toBe("hello from port 3000 /index.html\n");
      expect(await httpGet(`http://127.0.0.1:${explicit}/app.js`)).toBe("hello from port 4000 /app.js\n");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a WebSocket echo works through it, and stays open across a pause (a hot reload's connection)",
    async () => {
      const on3000 = await hostPortOf(sandbox, name, 3000);
      expect(await webSocketEcho(`ws://127.0.0.1:${on3000}/hmr`, ["first", "after a pause", "x".repeat(100_000)], 3000)).toEqual([
        "echo: first",
        "echo: after a pause",
        `echo: ${"x".repeat(100_000)}`,
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "bottle ls and bottle port NAME show the forwarded ports; bottle info shows the bottle's",
    async () => {
      const on3000 = await hostPortOf(sandbox, name, 3000);
      const ls = await runBottle(sandbox, ["ls", "--json"]);
      expect(JSON.parse(ls.stdout).find((row: { name: string }) => row.name === name).ports).toEqual([`127.0.0.1:${on3000}->3000`, `127.0.0.1:${explicit}->4000`]);
      const table = await runBottle(sandbox, ["ls"]);
      expect(table.stdout).toContain("PORTS");
      expect(table.stdout).toContain(`127.0.0.1:${on3000}->3000,127.0.0.1:${explicit}->4000`);
      const list = await runBottle(sandbox, ["port", name]);
      expect(list.stdout).toBe(`127.0.0.1:${on3000}->3000\n127.0.0.1:${explicit}->4000\n`);
      const info = await runBottle(sandbox, ["info", agent]);
      expect(info.stdout).toMatch(/ports \(host → bottle only[^\n]*\n\s+3000\s+on 127\.0\.0\.1:3000 \(a free port when taken\)/);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "bottle port NAME PORT forwards one more on the running bottle; --rm stops it",
    async () => {
      const add = await runBottle(sandbox, ["port", name, "5000"]);
      expect(add.exitCode).toBe(0);
      const hostPort = printedHostPort(add.stdout);
      expect(add.stderr).toContain(`${name}'s port 5000 answers on 127.0.0.1:${hostPort}: http://127.0.0.1:${hostPort}/`);
      expect(await httpGet(`http://127.0.0.1:${hostPort}/added`)).toBe("hello from port 5000 /added\n");
      const again = await runBottle(sandbox, ["port", name, "5000"]);
      expect(again.exitCode).toBe(1);
      expect(again.stderr).toContain(`port 5000 of ${name} is forwarded already`);

      const rm = await runBottle(sandbox, ["port", name, "--rm", "5000"]);
      expect(rm.exitCode).toBe(0);
      expect(await httpGet(`http://127.0.0.1:${hostPort}/removed`)).toStartWith("error:");
      expect(dockerOk("container", "inspect", `${name}-port-5000`)).toBe(false);
      const rmAgain = await runBottle(sandbox, ["port", name, "--rm", "5000"]);
      expect(rmAgain.stderr).toContain(`${name} does not forward its port 5000`);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a server listening on the bottle's loopback only: bottle port says so, and how to make it listen on every address",
    async () => {
      const add = await runBottle(sandbox, ["port", name, "5173"]);
      expect(add.exitCode).toBe(0);
      expect(add.stderr).toContain(`the server on ${name}'s port 5173 listens on 127.0.0.1 only, which the relay cannot reach: have it listen on every address (0.0.0.0)`);
      expect(await httpGet(`http://127.0.0.1:${printedHostPort(add.stdout)}/`)).toStartWith("error:");
      await runBottle(sandbox, ["port", name, "--rm", "5173"]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a taken host port: asked for (HOSTPORT:PORT), an error naming its holder that creates nothing; implied, a free one, printed",
    async () => {
      const held = await holdHostPort();
      try {
        const before = objectsWithLabel(`bottle.name=${name}`);
        const refused = await runBottle(sandbox, ["port", name, `${held.port}:5000`]);
        expect(refused.exitCode).toBe(1);
        expect(refused.stderr).toContain(`the host port 127.0.0.1:${held.port} is taken by another process (see \`ss -ltnp\`)`);
        expect(objectsWithLabel(`bottle.name=${name}`)).toEqual(before);
        // Another bottle's relay is named as such.
        const byRelay = await runBottle(sandbox, ["port", name, `${explicit}:5000`]);
        expect(byRelay.stderr).toContain(`is taken by ${name}'s port 4000 (\`bottle port ${name} --rm 4000\` frees it)`);

        // The bottle's 5000 on the host's number of the held port: implied, so it moves.
        const moved = await runBottle(sandbox, ["port", name, String(held.port)]);
        expect(moved.exitCode).toBe(0);
        const hostPort = printedHostPort(moved.stdout);
        expect(hostPort).not.toBe(held.port);
        // (The logger shows `ss -ltnp` without its backticks.)
        expect(moved.stderr).toContain(`(the host's ${held.port} is taken by another process (see ss -ltnp))`);
        // (The server does not listen on that port number inside: the relay's connection is refused, and so is the host's.)
        expect(await httpGet(`http://127.0.0.1:${hostPort}/`)).toStartWith("error:");
        await runBottle(sandbox, ["port", name, "--rm", String(held.port)]);
      } finally {
        held.server.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "the smolmachines backend cannot forward ports: an error naming it before anything is made",
    async () => {
      const out = await runBottle(sandbox, ["up", agent, "--backend", "smolmachines", "--dry-run"], { env: { BOTTLE_SMOLVM: "/nonexistent/smolvm" } });
      expect(out.exitCode).toBe(1);
      expect(out.stderr).toContain("ports[0]: the smolmachines backend cannot forward ports");
      expect(out.stderr).toContain("fix: run this bottle with --backend docker, or forward no ports");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "relays `bottle port` added go with the launcher's own teardown; down removes the rest",
    async () => {
      const other = writeAgent({ sandbox, prefix: "ports-attached", manifest: [], dockerfile: null });
      const launcher = spawnBottle(sandbox, ["up", other, "--yes", "--", "sleep", "8"]);
      const states = join(sandbox.state, "bottle", "bottles");
      const deadline = Date.now() + 120_000;
      let attached = "";
      while (!attached && Date.now() < deadline) {
        await Bun.sleep(200);
        attached = (existsSync(states) ? readdirSync(states) : []).find((entry) => entry.includes("ports-attached")) ?? "";
        if (attached && !dockerOk("container", "inspect", attached)) attached = "";
      }
      const port = await freeHostPort();
      const add = await runBottle(sandbox, ["port", attached, String(port)]);
      expect(add.exitCode).toBe(0);
      expect(objectsWithLabel(`bottle.name=${attached}`).containers).toContain(`${attached}-port-${port}`);
      expect(await launcher.exited).toBe(0);
      expect(objectsWithLabel(`bottle.name=${attached}`)).toEqual({ containers: [], networks: [] });

      const down = await runBottle(sandbox, ["down", name]);
      expect(down.exitCode).toBe(0);
      expect(objectsWithLabel(`bottle.name=${name}`)).toEqual({ containers: [], networks: [] });
      expect(docker("ps", "-a", "--filter", `name=${name}-port`, "--format", "{{.Names}}")).toBe("");
      name = "";
    },
    SETUP_TIMEOUT_MS,
  );
});
