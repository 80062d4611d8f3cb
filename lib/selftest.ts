import type { BottleHandle } from "./backends/types.ts";
import { BottleError } from "./errors.ts";
import type { Plan } from "./plan.ts";

/**
 * Launch-time check, run inside the bottle before the agent gets it: a direct
 * connection past the proxy must fail and a host off the list must be denied
 * by the gate. If the policy leaks, the launch is refused (fail closed).
 */

export const SELF_TEST_HOST = "bottle-self-test.invalid";

/**
 * A connection that can succeed on a local bridge does so in well under a
 * millisecond (the handshake is the kernel's, even on a loaded machine); an
 * unroutable one only fails after ARP gives up (seconds), so the probe waits
 * this long and counts anything slower as closed.
 */
const CONNECT_TIMEOUT_S = "0.05";
/** The gate has 30 s to become ready (GATE_READY_TIMEOUT_MS); the probes then take seconds at most. */
const EXEC_TIMEOUT_MS = 45_000;

/**
 * Both probes at once; each prints one marker line. The script starts while
 * the gate is still starting and waits, without polling, for the gate's
 * egress address on stdin: the launch writes it once the gate is ready (its
 * proxy listens), or closes stdin when the gate failed (GATE-DOWN).
 * - the direct probe counts a refused connection as open (the bottle reached
 *   the gate's egress address, whatever listens there), a timeout or no
 *   route as closed;
 * - the denied-host probe asks the proxy for a host off the list.
 */
export function selfTestScript(plan: Plan): string {
  const proxy = `http://gate:${plan.egress.proxyPort}`;
  return [
    `if ! read -r ip; then echo GATE-DOWN; exit 0; fi`,
    `(out=$(curl -sS -o /dev/null --noproxy '*' --connect-timeout ${CONNECT_TIMEOUT_S} "http://$ip:${plan.egress.proxyPort}/" 2>&1); rc=$?`,
    `  if [ "$rc" = 0 ] || printf '%s' "$out" | grep -qi 'refused'; then echo DIRECT-OPEN; fi) &`,
    `code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -x ${proxy} http://${SELF_TEST_HOST}/)`,
    `echo "DENIED=$code"`,
    "wait",
  ].join("\n");
}

/** The address as the script's input line; only an IP literal (it ends up in a URL). */
function egressAddressLine(ip: string): string {
  if (!/^[0-9a-f.:]+$/i.test(ip)) throw new Error(`not an IP address: ${ip}`);
  return `${ip.includes(":") ? `[${ip}]` : ip}\n`;
}

export function selfTestProblems(output: string): string[] {
  const problems: string[] = [];
  if (output.includes("GATE-DOWN")) return ["the gate did not start"];
  if (output.includes("DIRECT-OPEN")) problems.push("a direct connection past the egress gate succeeded");
  const denied = /DENIED=(\d{3})/.exec(output)?.[1];
  if (denied === "000") problems.push("the gate's proxy did not answer");
  else if (denied !== "403") problems.push(`a host off the allowlist was not denied by the gate (got ${denied ?? "no answer"})`);
  return problems;
}

/** `gateEgressIp`: give it once the gate is ready; the script waits for it inside the bottle. */
export async function verifyEgressPolicy(bottle: BottleHandle, plan: Plan, gateEgressIp: string | Promise<string>): Promise<void> {
  const { uid, gid } = plan.workspace.user;
  const address = Promise.resolve(gateEgressIp).then(egressAddressLine);
  // A gate that fails to start rejects it: the script then reads no address (GATE-DOWN).
  address.catch(() => undefined);
  const out = await bottle.exec(["sh", "-c", selfTestScript(plan)], {
    stdin: address,
    user: `${uid}:${gid}`,
    check: false,
    timeoutMs: EXEC_TIMEOUT_MS,
  });
  const problems = selfTestProblems(out.stdout);
  if (problems.length)
    throw new BottleError(`the egress policy self-test failed: ${problems.join("; ")} — refusing to start ${plan.name}`, {
      fix: "run `bottle doctor` and report this; the bottle was removed",
      details: out.stdout + out.stderr,
    });
}
