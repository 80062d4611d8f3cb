import { describe, expect, test } from "bun:test";
import { ManifestError, formatInfo, infoView, resolveAgentAndBottle, resolveBottle, resolveEnvValues } from "../../../lib/manifest/index.ts";
import { rejected, sandboxEachTest, thrown } from "./helpers.ts";

const each = sandboxEachTest();

const SECRET_LITERAL = "lit-S3CR3T-0001";
const SECRET_HOST = "host-S3CR3T-0002";
const SECRET_ASKED = "asked-S3CR3T-0003";
const SECRETS = [SECRET_LITERAL, SECRET_HOST, SECRET_ASKED, "S3CR3T"];

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

const BOTTLE = `env:
  API_KEY: ${SECRET_LITERAL}
  GH_TOKEN: \${HOST_GH_TOKEN}
  DB_PASSWORD: "?Database password"
  EMPTY_QUESTION: "?"
egress:
  allow: [github.com]
`;

describe("resolveEnvValues", () => {
  test("literal, host copy and asked values", async () => {
    each.box.bottle("dev", BOTTLE);
    const bottle = resolveBottle("dev", { env: each.box.env });
    const asked: Array<[string, string]> = [];
    const values = await resolveEnvValues(bottle, {
      hostEnv: { HOST_GH_TOKEN: SECRET_HOST },
      interactive: true,
      ask: async (question, name) => {
        asked.push([question, name]);
        return SECRET_ASKED;
      },
    });
    expect(values).toEqual({ API_KEY: SECRET_LITERAL, GH_TOKEN: SECRET_HOST, DB_PASSWORD: SECRET_ASKED, EMPTY_QUESTION: SECRET_ASKED });
    expect(asked).toEqual([
      ["Database password", "DB_PASSWORD"],
      ["EMPTY_QUESTION", "EMPTY_QUESTION"],
    ]);
  });

  test("an empty host variable is set, and passes through", async () => {
    each.box.bottle("dev", "env:\n  X: ${HOST_X}\n");
    expect(await resolveEnvValues(resolveBottle("dev", { env: each.box.env }), { hostEnv: { HOST_X: "" }, interactive: false })).toEqual({ X: "" });
  });

  test("all unset host variables at once, naming variables, never values, before anything is asked", async () => {
    each.box.bottle("dev", `env:\n  A: \${HOST_A}\n  B: ${SECRET_LITERAL}\n  C: \${HOST_C}\n  D: "?Question"\n  E: \${HOST_E}\n`);
    let asked = false;
    const error = await rejected(
      resolveEnvValues(resolveBottle("dev", { env: each.box.env }), {
        hostEnv: { HOST_E: SECRET_HOST, HOME: each.box.root },
        interactive: true,
        ask: async () => {
          asked = true;
          return "x";
        },
      }),
    );
    expect(asked).toBe(false);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).issues.map((issue) => [issue.path, issue.line])).toEqual([
      ["env.A", 2],
      ["env.C", 4],
    ]);
    expectNoSecret(error.message);
    expectNoSecret((error as ManifestError).fix ?? "");
    expect(each.box.normalize(error.message)).toMatchSnapshot();
    expect((error as ManifestError).fix).toMatchSnapshot();
  });

  test("a question without a terminal says to use ${VAR} instead", async () => {
    each.box.bottle("dev", 'env:\n  DB_PASSWORD: "?Database password"\n');
    const error = await rejected(resolveEnvValues(resolveBottle("dev", { env: each.box.env }), { hostEnv: { HOME: each.box.root }, interactive: false }));
    expect(error).toBeInstanceOf(ManifestError);
    expect(error.message).toContain("${DB_PASSWORD}");
    expect(each.box.normalize(error.message)).toMatchSnapshot();
    expect((error as ManifestError).fix).toMatchSnapshot();
  });
});

describe("secret values never appear in output", () => {
  test("info (text and --json) shows names and kinds, not values", async () => {
    each.box.bottle("dev", BOTTLE);
    each.box.agent("coder", "---\nbottle: dev\n---\n");
    const resolved = await resolveAgentAndBottle({ agent: "coder", projectDir: each.box.project, env: each.box.env });
    const view = infoView(resolved, each.box.env);
    const json = JSON.stringify(view);
    const text = formatInfo(view);
    expectNoSecret(json);
    expectNoSecret(text);
    expect(view.bottle.env).toEqual([
      { name: "API_KEY", kind: "literal", from: "~/.config/bottle/bottles/dev.yaml" },
      { name: "GH_TOKEN", kind: "host", variable: "HOST_GH_TOKEN", from: "~/.config/bottle/bottles/dev.yaml" },
      { name: "DB_PASSWORD", kind: "ask", question: "Database password", from: "~/.config/bottle/bottles/dev.yaml" },
      { name: "EMPTY_QUESTION", kind: "ask", question: "EMPTY_QUESTION", from: "~/.config/bottle/bottles/dev.yaml" },
    ]);
  });

  const broken: Array<[string, string]> = [
    ["an error elsewhere in the file", `env:\n  API_KEY: ${SECRET_LITERAL}\nworkspace: bind\n`],
    ["the value has the wrong type", `env:\n  API_KEY: [${SECRET_LITERAL}, ${SECRET_HOST}]\n  OTHER: { k: ${SECRET_ASKED} }\n`],
    ["the value mixes text and \${…}", `env:\n  API_KEY: "${SECRET_LITERAL}\${X}"\n  B: "\${${SECRET_HOST}:-x}"\n`],
    ["a YAML syntax error on the secret's line", `env:\n  API_KEY: "${SECRET_LITERAL}\n  B: x\n`],
    ["a YAML syntax error after a secret", `env:\n  API_KEY: ${SECRET_LITERAL}\n  B: [${SECRET_HOST}\n`],
    ["an unknown key next to a secret", `env:\n  API_KEY: ${SECRET_LITERAL}\nenvv:\n  X: ${SECRET_HOST}\n`],
    ["a secret where a mapping should be", `env: ${SECRET_LITERAL}\n`],
    ["a secret as a whole file", `${SECRET_LITERAL}\n`],
    ["a secret in a list file", `- ${SECRET_LITERAL}\n`],
    ["a block scalar header with text after it", `env:\n  API_KEY: |${SECRET_LITERAL}\n    more\n`],
    ["a bad escape inside the secret", `env:\n  API_KEY: "\\q${SECRET_LITERAL}"\n`],
    ["a reserved name", `env:\n  constructor: ${SECRET_LITERAL}\n`],
    ["a secret in an anchor used too often", `env:\n  A: &a ${SECRET_LITERAL}\n  B: *a\n  C: *b\n`],
  ];
  for (const [name, text] of broken) {
    test(`errors: ${name}`, () => {
      each.box.bottle("dev", text);
      const error = thrown(() => resolveBottle("dev", { env: each.box.env }));
      expect(error).toBeInstanceOf(ManifestError);
      expectNoSecret(error.message);
      expectNoSecret(JSON.stringify((error as ManifestError).issues));
      expect(each.box.normalize(error.message)).toMatchSnapshot();
    });
  }
});
