/**
 * A background loop that runs one tick at a time: `wake()` runs a tick now, or right after the one under way (wakes
 * during a tick coalesce into one more); after each tick the loop sleeps for the delay the tick answered. `stop()`
 * waits for the tick under way. The schedule runner and the webhook worker tick through it.
 */
export class Ticker {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private _stopped = true;

  /** `tick` never throws and resolves with the ms to wait before the next tick. */
  constructor(private readonly tick: () => Promise<number>) {}

  get stopped(): boolean {
    return this._stopped;
  }

  start(): void {
    if (!this._stopped) return;
    this._stopped = false;
    this.wake();
  }

  async stop(): Promise<void> {
    this._stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  wake(): void {
    if (this._stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    let delay = 0;
    this.running = this.tick()
      .then((ms) => void (delay = ms))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.wake();
        } else if (!this._stopped) {
          this.timer = setTimeout(() => this.wake(), delay);
          this.timer.unref();
        }
      });
  }
}
