import type { Docker } from "../../docker.ts";
import type { Plan } from "../../plan.ts";
import { settleAll } from "../../settle.ts";
import { launchGate } from "../gate.ts";
import { bottleLabels } from "../objects.ts";
import type { BottleHandle, LaunchRequest } from "../types.ts";
import { bottleContainerSpec } from "./container.ts";
import { containerHandle } from "./handle.ts";
import { openPlannedPorts } from "./ports.ts";

/**
 * The docker backend's launch: the internal network's addresses are chosen
 * up front, so the bottle container is created and started while the gate
 * is, and the request's provisioning and self-test run as soon as the bottle
 * runs (they wait on the gate's readiness themselves); so do the relays of
 * its forwarded ports (ports.ts), which connect to it only when used.
 */
export async function launchContainer(docker: Docker, plan: Plan, request: LaunchRequest): Promise<BottleHandle> {
  const bottle = containerHandle(docker, plan.containers.bottle);
  request.created.name = plan.name;
  await launchGate(docker, plan, request, {
    alongside: (internal, gate) =>
      settleAll([
        docker
          .runDetached(bottleContainerSpec(plan, internal, bottleLabels(plan, "bottle", request.version)))
          .then(() => request.created.containers.push(plan.containers.bottle))
          .then(() => request.ready(bottle, gate)),
        openPlannedPorts(docker, plan, internal, request),
      ]),
  });
  return bottle;
}
