/** The egress gate's config as the host writes it (lib/gates/egress/config.ts), against the schema the gate checks it with. */
import { describe, expect, test } from "bun:test";
import { EGRESS_AUDIT_FILE, egressGateConfig } from "../../../../lib/gates/egress/config.ts";
import { validateConfig } from "../../../../lib/gates/egress/daemon/config.ts";
import { makePlan } from "../../../helpers/unit.ts";

describe("the host's egress gate config", () => {
  test("a plan's egress, with and without the secrets file, is a config the gate accepts as it is", () => {
    const plan = makePlan({ egress: { allow: ["api.anthropic.com", "*.example.com", "example.org:8443"], allowPrivate: ["10.1.0.0/16"] } });
    for (const withSecrets of [false, true]) {
      const config = egressGateConfig(plan, ["172.17.0.1"], withSecrets, ["198.18.4.0/28"]);
      expect(validateConfig(config)).toEqual(config);
      expect(config.auditLog).toBe(`/var/log/bottle/${EGRESS_AUDIT_FILE}`);
      expect(config.secretsFile !== undefined).toBe(withSecrets);
    }
  });

  test("what the gate refuses, the host cannot write unnoticed: a bad allow entry is named", () => {
    const config = egressGateConfig(makePlan({ egress: { allow: ["*"] } }), [], false, ["198.18.4.0/28"]);
    expect(() => validateConfig(config)).toThrow('allow[0] "*": ');
  });
});
