/**
 * The internal (bottle ↔ gate) network's addresses, chosen by bottle instead
 * of Docker's IPAM so both containers' addresses are known before either
 * starts: the bottle can then be created with `--dns <gate>` and
 * `--add-host gate:<gate>` while the gate is still starting.
 *
 * Each bottle gets a random /28 in 198.18.0.0/15 (RFC 2544's benchmarking
 * range: no real host lives there, and the egress gate refuses it as an
 * upstream). The bridge has no host-side address (`inhibit_ipv4`), so the
 * host gets no route into it. A /28 Docker already uses is reported as a pool
 * overlap; the launch then draws another.
 */

const RANGE_BASE = (198 << 24) | (18 << 16); // 198.18.0.0
const SUBNETS = 1 << 13; // /15 split into /28s
const SUBNET_SIZE = 16;

export interface InternalAddresses {
  subnet: string;
  /** Reserved by Docker's IPAM as the gateway; nothing answers there. */
  gateway: string;
  gate: string;
  bottle: string;
}

function dotted(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join(".");
}

/** The `index`-th /28 of the range (0 ≤ index < 8192). */
export function internalAddresses(index: number): InternalAddresses {
  if (!Number.isInteger(index) || index < 0 || index >= SUBNETS) throw new RangeError(`subnet index ${index} outside 0..${SUBNETS - 1}`);
  const base = (RANGE_BASE + index * SUBNET_SIZE) >>> 0;
  return { subnet: `${dotted(base)}/28`, gateway: dotted(base + 1), gate: dotted(base + 2), bottle: dotted(base + 3) };
}

/** A /28 holds 16 addresses; the network, Docker's gateway, the gate, the bottle and the broadcast address leave this many for port relays. */
export const MAX_PORT_RELAYS = SUBNET_SIZE - 5;

/** The address of the `index`-th port relay launched with the bottle (they follow the bottle's). */
export function relayAddress(internal: Pick<InternalAddresses, "bottle">, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_PORT_RELAYS) throw new RangeError(`relay index ${index} outside 0..${MAX_PORT_RELAYS - 1}`);
  const bottle = internal.bottle.split(".").reduce((sum, part) => sum * 256 + Number(part), 0);
  return dotted(bottle + 1 + index);
}

export function randomInternalAddresses(random: () => number = Math.random): InternalAddresses {
  return internalAddresses(Math.floor(random() * SUBNETS) % SUBNETS);
}

/** Docker's refusal of a subnet another network already uses. */
export function isSubnetConflict(error: unknown): boolean {
  return /pool overlaps|overlaps with|conflicts with network/i.test(error instanceof Error ? error.message : String(error));
}
