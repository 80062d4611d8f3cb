import { custodyValueIssues } from "../gates/custody/index.ts";
import { envValueIssues, valueIssuesError } from "../manifest/env.ts";
import { bottleEnv, type Planned } from "./plan.ts";

/**
 * The values a launch needs from the host, checked before anything is asked
 * or created: every unset `${VAR}` of the bottle's env and of the gate's
 * credentials, and (without a terminal) every question, in one error with
 * where each is written. The launch runs it first; `--dry-run` runs it after
 * printing the plan, with questions taken as answerable (a launch from a
 * terminal asks them).
 */
export function checkLaunchValues(planned: Pick<Planned, "resolved" | "plan">, hostEnv: Record<string, string | undefined>, interactive: boolean): void {
  const { resolved, plan } = planned;
  const env = bottleEnv(resolved, hostEnv);
  const error = valueIssuesError(
    [envValueIssues({ env }, { hostEnv, interactive }), custodyValueIssues(resolved.bottle, plan.custody, { hostEnv, interactive })],
    hostEnv,
  );
  if (error) throw error;
}
