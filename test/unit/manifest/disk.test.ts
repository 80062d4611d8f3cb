import { afterEach, beforeEach, expect, test } from "bun:test";
import { checkSkills, infoView, listAgents, resolveAgentAndBottle, resolveEnvValues, resolveBottle } from "../../../lib/manifest/index.ts";
import { captureWarnings, sandbox, treeState, type Sandbox } from "./helpers.ts";

let box: Sandbox;
let warnings: ReturnType<typeof captureWarnings>;
beforeEach(() => {
  box = sandbox();
  warnings = captureWarnings();
});
afterEach(() => {
  warnings.restore();
  box.cleanup();
});

test("loading invalid manifests changes nothing on disk", async () => {
  box.bottle("broken", "egress: { allow: [https://x.com] }\nworkspace: bind\n");
  box.bottle("cycle", "extends: cycle\n");
  box.bottle("orphan", "extends: missing\n");
  box.bottle("dev", "env:\n  A: ${UNSET_A}\n  Q: '?q'\n");
  box.agent("broken", "---\nskils: []\n---\n");
  box.agent("unclosed", "---\nbottle: dev\n");
  box.agent("needs", "---\nbottle: dev\nskills: [absent]\n---\n");
  box.agent("uses-broken", "---\nbottle: broken\n---\n");
  box.write("project/.bottle/bottles/evil.yaml", "egress: { allow: [evil.example.com] }\n");
  box.write(".config/bottle/agents/Bad Name.md", "");
  const before = treeState(box.root);

  const attempts: Array<() => unknown> = [
    () => resolveBottle("broken", { env: box.env }),
    () => resolveBottle("cycle", { env: box.env }),
    () => resolveBottle("orphan", { env: box.env }),
    () => resolveBottle("evil", { env: box.env }),
    () => resolveAgentAndBottle({ agent: "broken", projectDir: box.project, env: box.env }),
    () => resolveAgentAndBottle({ agent: "unclosed", projectDir: box.project, env: box.env }),
    () => resolveAgentAndBottle({ agent: "uses-broken", projectDir: box.project, env: box.env }),
    () => resolveAgentAndBottle({ agent: "nobody", projectDir: box.project, env: box.env }),
    async () => checkSkills((await resolveAgentAndBottle({ agent: "needs", projectDir: box.project, env: box.env })).agent, box.env),
    async () => resolveEnvValues(resolveBottle("dev", { env: box.env }), { hostEnv: {}, interactive: false }),
    async () => infoView(await resolveAgentAndBottle({ agent: "needs", projectDir: box.project, env: box.env }), box.env),
    () => listAgents({ projectDir: box.project, env: box.env }),
  ];
  let failures = 0;
  for (const attempt of attempts) {
    try {
      await attempt();
    } catch {
      failures++;
    }
  }
  expect(failures).toBe(10);
  expect(treeState(box.root)).toEqual(before);
});
