/**
 * Like Promise.all, but waits for every step to finish before throwing, so
 * nothing is still being created while teardown runs.
 */
export async function settleAll<T extends readonly unknown[]>(steps: [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
