/**
 * A short-lived cache in front of the system resolver: every request names
 * its host, and a lookup through Docker's DNS costs a few hundred µs on each.
 * Only successful answers are kept, for a few seconds (an address change is
 * seen within that time); concurrent lookups of one name share one query.
 * Addresses are still vetted on every request, so a cached answer can never
 * reach what a fresh one could not.
 */
import type { Resolver } from "./state.ts";

export const RESOLVE_CACHE_MS = 5_000;
const MAX_ENTRIES = 1_024;

export function cachingResolver(resolve: Resolver, ttlMs = RESOLVE_CACHE_MS, now: () => number = Date.now): Resolver {
  const entries = new Map<string, { expires: number; addresses: Promise<string[]> }>();
  return (host) => {
    const key = host.toLowerCase();
    const cached = entries.get(key);
    if (cached && cached.expires > now()) return cached.addresses;
    if (entries.size >= MAX_ENTRIES) entries.clear();
    const addresses = resolve(host);
    entries.set(key, { expires: now() + ttlMs, addresses });
    // A failed lookup is not remembered: the next request asks again.
    addresses.catch(() => {
      if (entries.get(key)?.addresses === addresses) entries.delete(key);
    });
    return addresses;
  };
}
