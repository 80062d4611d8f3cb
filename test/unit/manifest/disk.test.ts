import { expect, test } from "bun:test";
import { loadClaudeSetup } from "../../../lib/claude-setup/index.ts";
import { infoView, listAgents, resolveAgentAndBottle, resolveEnvValues, resolveBottle } from "../../../lib/manifest/index.ts";
import { sandboxEachTest, treeState } from "./helpers.ts";

const each = sandboxEachTest();

test("loading invalid manifests changes nothing on disk", async () => {
  each.box.bottle("broken", "egress: { allow: [https://x.com] }\nworkspace: bind\n");
  each.box.bottle("cycle", "extends: cycle\n");
  each.box.bottle("orphan", "extends: missing\n");
  each.box.bottle("dev", "env:\n  A: ${UNSET_A}\n  Q: '?q'\n");
  each.box.agent("broken", "---\nskils: []\n---\n");
  each.box.agent("unclosed", "---\nbottle: dev\n");
  each.box.agent("needs", "---\nbottle: dev\nskills: [absent]\n---\n");
  each.box.agent("uses-broken", "---\nbottle: broken\n---\n");
  each.box.write("project/.bottle/bottles/evil.yaml", "egress: { allow: [evil.example.com] }\n");
  each.box.write(".config/bottle/agents/Bad Name.md", "");
  const before = treeState(each.box.root);

  const attempts: Array<() => unknown> = [
    () => resolveBottle("broken", { env: each.box.env }),
    () => resolveBottle("cycle", { env: each.box.env }),
    () => resolveBottle("orphan", { env: each.box.env }),
    () => resolveBottle("evil", { env: each.box.env }),
    () => resolveAgentAndBottle({ agent: "broken", projectDir: each.box.project, env: each.box.env }),
    () => resolveAgentAndBottle({ agent: "unclosed", projectDir: each.box.project, env: each.box.env }),
    () => resolveAgentAndBottle({ agent: "uses-broken", projectDir: each.box.project, env: each.box.env }),
    () => resolveAgentAndBottle({ agent: "nobody", projectDir: each.box.project, env: each.box.env }),
    async () => loadClaudeSetup(await resolveAgentAndBottle({ agent: "needs", projectDir: each.box.project, env: each.box.env }), each.box.env),
    async () => resolveEnvValues(resolveBottle("dev", { env: each.box.env }), { hostEnv: {}, interactive: false }),
    async () => infoView(await resolveAgentAndBottle({ agent: "needs", projectDir: each.box.project, env: each.box.env }), each.box.env),
    () => listAgents({ projectDir: each.box.project, env: each.box.env }),
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
  expect(treeState(each.box.root)).toEqual(before);
});
