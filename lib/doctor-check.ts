/** One row of `bottle doctor`: what was checked, how it went, and the fix when it did not. */

export type CheckStatus = "ok" | "warn" | "fail" | "info";

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}
