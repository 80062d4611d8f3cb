import { expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, type Sandbox } from "../../helpers/cli.ts";
import { describeDocker, objectsWithLabel } from "../../helpers/docker.ts";
import { SETUP_TIMEOUT_MS, tearDown, writeAgent } from "../../helpers/escape-world.ts";

/**
 * Launch and teardown: a denied request is reported when a run ends, and a
 * bottle whose egress policy cannot be verified never starts (fail closed),
 * leaving nothing behind.
 */

function leftovers(sandbox: Sandbox, agent: string) {
  const stateDir = join(sandbox.state, "bottle", "bottles");
  return {
    ...objectsWithLabel(`bottle.agent=${agent}`),
    stateDirs: existsSync(stateDir) ? readdirSync(stateDir) : [],
  };
}

describeDocker("escape at launch and teardown", () => {
  test(
    "a non-detached run that hit the gate prints a one-line denial summary at teardown, and leaves nothing",
    async () => {
      const sandbox = makeSandbox();
      // No world is needed: a host off the list is denied before any resolution.
      const agent = writeAgent({ sandbox, prefix: "esc-run", manifest: ["egress:", "  allow: [allowed.test]"], dockerfile: null });
      try {
        const out = await runBottle(sandbox, ["up", agent, "--yes", "--", "curl", "-sS", "--connect-timeout", "2", "--max-time", "5", "http://denied.test/"]);
        expect(out.exitCode).toBe(0);
        expect(out.stdout).toContain("denied.test is not on this bottle's allowlist (rule: not-allowed)");
        const summary = `${out.stdout}\n${out.stderr}`.split("\n").filter((line) => line.includes("request denied") || line.includes("requests denied"));
        expect(summary).toHaveLength(1);
        expect(summary[0]).toContain("1 request denied: denied.test");
        // The launch self-test's own probe is not counted.
        expect(summary[0]).not.toContain("bottle-self-test");
        expect(leftovers(sandbox, agent)).toEqual({ containers: [], networks: [], stateDirs: [] });
      } finally {
        await tearDown(sandbox, [], [agent]);
      }
    },
    SETUP_TIMEOUT_MS,
  );

  const broken: Array<[string, string, string[]]> = [
    ["when curl is missing (nothing can be verified)", "USER root\nRUN rm -f /usr/bin/curl\n", ["a host off the allowlist was not denied by the gate (got no answer)"]],
    [
      // A stand-in for a policy that leaks: every probe "succeeds".
      "when the probes report a leak (a curl that says every connection succeeded)",
      "USER root\nRUN printf '#!/bin/sh\\necho 200\\n' > /usr/bin/curl && chmod 755 /usr/bin/curl\n",
      ["a direct connection past the egress gate succeeded", "a host off the allowlist was not denied by the gate (got 200)"],
    ],
  ];
  for (const [what, dockerfile, problems] of broken) {
    test(
      `the launch self-test fails closed ${what}: non-zero exit naming the egress policy self-test, nothing left behind`,
      async () => {
        const sandbox = makeSandbox();
        const agent = writeAgent({ sandbox, prefix: "esc-selftest", manifest: ["egress:", "  allow: [allowed.test]"], dockerfile });
        try {
          const out = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
          expect(out.exitCode).not.toBe(0);
          expect(out.stdout.trim()).toBe("");
          expect(out.stderr).toContain("the egress policy self-test failed");
          expect(out.stderr).toContain("refusing to start");
          for (const problem of problems) expect(out.stderr).toContain(problem);
          expect(leftovers(sandbox, agent)).toEqual({ containers: [], networks: [], stateDirs: [] });
          // And nothing is running under that agent that `bottle ls` would show.
          const ls = await runBottle(sandbox, ["ls"]);
          expect(ls.stdout).not.toContain(agent);
        } finally {
          await tearDown(sandbox, [], [agent]);
        }
      },
      SETUP_TIMEOUT_MS,
    );
  }
});
