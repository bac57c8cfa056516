//! The console's live channel: a WebSocket that receives a snapshot then deltas, reconnects by
//! itself with backoff, and says plainly when it is offline (also when the server goes quiet).

import type { Store } from './store';
import type { LiveMessage } from './types';

/** The server sends a heartbeat every 10 s; this long without any frame means offline. */
export const SILENCE_MS = 25_000;

/** Backoff before reconnect attempt `n` (0-based): 0.5 s doubling to 8 s. */
export function backoff(n: number): number {
  return Math.min(8000, 500 * 2 ** Math.min(n, 10));
}

export interface LiveOptions {
  url?: string;
  /** The session ended (logged out elsewhere or expired). */
  onSessionEnded: () => void;
  socketFactory?: (url: string) => WebSocket;
}

export class LiveChannel {
  private ws: WebSocket | null = null;
  private attempts = 0;
  private watchdog: ReturnType<typeof setTimeout> | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private store: Store,
    private options: LiveOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.ws?.close(1000, 'logout');
    this.ws = null;
  }

  private url(): string {
    if (this.options.url) return this.options.url;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/api/console/live`;
  }

  private connect(): void {
    if (this.stopped) return;
    this.store.setConnection(this.attempts === 0 ? 'connecting' : 'offline');
    const factory = this.options.socketFactory ?? ((u: string) => new WebSocket(u));
    const ws = factory(this.url());
    this.ws = ws;
    ws.onmessage = (ev) => {
      this.feed();
      let msg: LiveMessage;
      try {
        msg = JSON.parse(String(ev.data)) as LiveMessage;
      } catch {
        return;
      }
      if (msg.type === 'snapshot') {
        this.attempts = 0;
        this.store.setConnection('online');
      }
      this.store.apply(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.watchdog) clearTimeout(this.watchdog);
      if (this.stopped) return;
      this.store.setConnection('offline');
      if (ev.code === 4001) {
        this.options.onSessionEnded();
        return;
      }
      const wait = backoff(this.attempts++);
      this.retry = setTimeout(() => this.connect(), wait);
    };
    ws.onerror = () => ws.close();
    this.feed();
  }

  /** Restarts the silence watchdog. */
  private feed(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      this.store.setConnection('offline');
      this.ws?.close(4000, 'silent');
      // onclose schedules the reconnect; some browsers delay it, so make sure.
      const ws = this.ws;
      this.ws = null;
      if (ws && !this.stopped) this.retry = setTimeout(() => this.connect(), backoff(this.attempts++));
    }, SILENCE_MS);
  }
}
