import { describe, expect, test } from "bun:test";
import { cachingResolver } from "../../../../lib/gates/egress/daemon/resolve-cache.ts";

function counting(answers: Record<string, string[] | Error>) {
  const calls: string[] = [];
  const resolve = async (host: string) => {
    calls.push(host);
    const answer = answers[host];
    if (answer instanceof Error) throw answer;
    return answer ?? [];
  };
  return { calls, resolve };
}

describe("the gate's resolver cache", () => {
  test("a name is looked up once within the TTL, again after it; case does not matter", async () => {
    let clock = 1_000;
    const { calls, resolve } = counting({ "api.example.test": ["203.0.113.7"], "API.example.test": ["203.0.113.7"] });
    const cached = cachingResolver(resolve, 5_000, () => clock);
    expect(await cached("api.example.test")).toEqual(["203.0.113.7"]);
    expect(await cached("API.example.test")).toEqual(["203.0.113.7"]);
    clock += 4_999;
    await cached("api.example.test");
    expect(calls).toHaveLength(1);
    clock += 2;
    await cached("api.example.test");
    expect(calls).toHaveLength(2);
  });

  test("concurrent lookups share one query", async () => {
    const { calls, resolve } = counting({ "a.test": ["203.0.113.1"] });
    const cached = cachingResolver(resolve);
    const results = await Promise.all([cached("a.test"), cached("a.test"), cached("a.test")]);
    expect(results).toEqual([["203.0.113.1"], ["203.0.113.1"], ["203.0.113.1"]]);
    expect(calls).toEqual(["a.test"]);
  });

  test("a failure is not remembered", async () => {
    const answers: Record<string, string[] | Error> = { "flaky.test": new Error("ENOTFOUND") };
    const { calls, resolve } = counting(answers);
    const cached = cachingResolver(resolve);
    await expect(cached("flaky.test")).rejects.toThrow("ENOTFOUND");
    answers["flaky.test"] = ["203.0.113.9"];
    expect(await cached("flaky.test")).toEqual(["203.0.113.9"]);
    expect(calls).toHaveLength(2);
  });
});
