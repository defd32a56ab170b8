/**
 * A minimal typed event emitter (no `node:events`, so the browser bundle stays small). A listener that throws is
 * isolated: it never breaks delivery to other listeners or the SDK's own state. `_emit` is for the subclass (the
 * client) only.
 */
export class Emitter<Events extends Record<string, unknown[]>> {
  private readonly _listeners: { [E in keyof Events]?: Array<(...args: Events[E]) => void> } = {};

  on<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): () => void {
    (this._listeners[event] ??= []).push(listener);
    return () => this.off(event, listener);
  }

  off<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): void {
    const list = this._listeners[event];
    if (!list) return;
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
  }

  protected _emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    const list = this._listeners[event];
    if (!list) return;
    for (const l of [...list]) {
      try {
        l(...args);
      } catch (err) {
        // A bug in application code must not corrupt the SDK; report it where it cannot be lost.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
