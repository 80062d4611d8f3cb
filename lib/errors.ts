/**
 * An expected failure: printed as one line (plus its fix) without a stack
 * trace. Anything else that escapes to the top is a bug and shows its stack
 * with --verbose.
 */
export class BottleError extends Error {
  readonly fix?: string;
  readonly details?: string;
  readonly exitCode: number;

  constructor(message: string, options: { fix?: string; details?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BottleError";
    this.fix = options.fix;
    this.details = options.details;
    this.exitCode = options.exitCode ?? 1;
  }
}

export function isBottleError(error: unknown): error is BottleError {
  return error instanceof BottleError;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
