import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, create } from './api';

afterEach(() => vi.unstubAllGlobals());

describe('create', () => {
  it('retries a lost answer with the same idempotency key', async () => {
    const keys: string[] = [];
    let calls = 0;
    vi.stubGlobal('fetch', async (_path: string, init: RequestInit) => {
      keys.push((init.headers as Record<string, string>)['idempotency-key']);
      calls += 1;
      if (calls === 1) throw new TypeError('network down');
      if (calls === 2) return new Response('{"error":{"code":"storage_unavailable","message":"x"}}', { status: 503 });
      return new Response('{"id":7}', { status: 201 });
    });
    const made = await create<{ id: number }>('/api/incidents', { kind: 'theft' }, 'k-1', async () => {});
    expect(made.id).toBe(7);
    expect(keys).toEqual(['k-1', 'k-1', 'k-1']);
  });

  it('does not retry a refusal', async () => {
    let calls = 0;
    vi.stubGlobal('fetch', async () => {
      calls += 1;
      return new Response('{"error":{"code":"storage_full","message":"full"}}', { status: 507 });
    });
    await expect(create('/api/incidents', {}, 'k-2', async () => {})).rejects.toBeInstanceOf(ApiError);
    expect(calls).toBe(1);
  });
});
