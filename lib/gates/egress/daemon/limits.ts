/**
 * Per-bottle limits: a token bucket for requests per minute and a running
 * total of bytes sent upstream. Pure code with an injectable clock.
 */

export class RateLimiter {
  private tokens: number;
  private last: number;

  /** `burst`: how many may be taken at once after a quiet spell (default: a minute's worth). */
  constructor(
    private perMinute: number,
    private readonly now: () => number = () => Date.now(),
    private readonly burst?: number,
  ) {
    this.tokens = this.capacity;
    this.last = now();
  }

  private get capacity(): number {
    return this.burst ?? this.perMinute;
  }

  /** Changes the rate (config reload); keeps the tokens already spent. */
  setRate(perMinute: number): void {
    this.refill();
    this.perMinute = perMinute;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  private refill(): void {
    const now = this.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.perMinute) / 60_000);
  }

  /** Takes one request; false when over the limit. A rate of 0 means unlimited. */
  take(): boolean {
    if (this.perMinute <= 0) return true;
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class ByteBudget {
  private used = 0;

  constructor(private limit: number) {}

  setLimit(limit: number): void {
    this.limit = limit;
  }

  get total(): number {
    return this.used;
  }

  /** Whether anything may still be sent (0 = unlimited). */
  get exhausted(): boolean {
    return this.limit > 0 && this.used >= this.limit;
  }

  /** Accounts `bytes`; false (and nothing accounted) when they would exceed the limit. */
  spend(bytes: number): boolean {
    if (this.limit > 0 && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }
}
