import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { backoff, LiveChannel, SILENCE_MS } from './live';
import { Store } from './store';

class FakeSocket {
  static made: FakeSocket[] = [];
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(public url: string) {
    FakeSocket.made.push(this);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.({ code: 1006 });
  }
  receive(msg: unknown): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code = 1006): void {
    this.closed = true;
    this.onclose?.({ code });
  }
}

const snapshot = {
  type: 'snapshot',
  cursor: 1,
  server_time_ms: 0,
  operator: { username: 'a', role: 'operator' },
  units: [],
  incidents: [],
  orders: [],
};

describe('LiveChannel', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.made = [];
  });
  afterEach(() => vi.useRealTimers());

  function start(onSessionEnded = () => {}) {
    const store = new Store();
    const live = new LiveChannel(store, {
      url: 'wss://x/api/console/live',
      onSessionEnded,
      socketFactory: (u) => new FakeSocket(u) as unknown as WebSocket,
    });
    live.start();
    return { store, live };
  }

  it('is online after the snapshot and reconnects by itself after a drop', () => {
    const { store } = start();
    expect(store.connection).toBe('connecting');
    FakeSocket.made[0].receive(snapshot);
    expect(store.connection).toBe('online');
    FakeSocket.made[0].drop();
    expect(store.connection).toBe('offline');
    expect(FakeSocket.made).toHaveLength(1);
    vi.advanceTimersByTime(backoff(0));
    expect(FakeSocket.made).toHaveLength(2);
    FakeSocket.made[1].receive(snapshot);
    expect(store.connection).toBe('online');
  });

  it('backs off up to a ceiling', () => {
    expect(backoff(0)).toBe(500);
    expect(backoff(1)).toBe(1000);
    expect(backoff(20)).toBe(8000);
  });

  it('goes offline when the server falls silent, and reconnects', () => {
    const { store } = start();
    FakeSocket.made[0].receive(snapshot);
    vi.advanceTimersByTime(SILENCE_MS - 1);
    expect(store.connection).toBe('online');
    vi.advanceTimersByTime(2);
    expect(store.connection).toBe('offline');
    vi.advanceTimersByTime(backoff(0));
    expect(FakeSocket.made.length).toBeGreaterThanOrEqual(2);
  });

  it('stops and reports when the session has ended', () => {
    const ended = vi.fn();
    start(ended);
    FakeSocket.made[0].receive(snapshot);
    FakeSocket.made[0].drop(4001);
    vi.advanceTimersByTime(60_000);
    expect(ended).toHaveBeenCalledOnce();
    expect(FakeSocket.made).toHaveLength(1);
  });
});
