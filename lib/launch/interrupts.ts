import { BottleError } from "../errors.ts";
import { signalExitCode } from "../exec.ts";

/** Signals during a launch: finish the current step, then tear down; a second signal tears down at once. */
export class Interrupts {
  signal: NodeJS.Signals | undefined;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly onSecond: () => void) {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const handler = () => {
        if (this.signal) this.onSecond();
        this.signal = signal;
      };
      this.handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  /** Throws (with the signal's exit code) once a signal came. */
  check(): void {
    if (this.signal) throw new BottleError(`interrupted (${this.signal}); removing what was created`, { exitCode: signalExitCode(this.signal) ?? 130 });
  }

  dispose(): void {
    for (const [signal, handler] of this.handlers) process.off(signal, handler);
  }
}
