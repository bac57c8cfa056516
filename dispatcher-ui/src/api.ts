//! The JSON API client: same-origin fetches with the session cookie; errors keep the server's
//! code and message so the operator sees exactly what was refused.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Calls the API; resolves with the parsed JSON body, rejects with an [`ApiError`]. */
export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
): Promise<T> {
  let res: Response;
  const headers: Record<string, string> = { ...extraHeaders };
  const raw = body instanceof RawBody;
  if (body !== undefined && !raw) headers['content-type'] = 'application/json';
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers,
      body: body === undefined ? undefined : raw ? body.text : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? res.statusText);
  }
  return json as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}) => api<T>('POST', path, body);
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const put = <T>(path: string, body: unknown) => api<T>('PUT', path, body);

/** POSTs a file's text as it is, with its content type (imports). */
export async function postFile<T>(path: string, text: string, contentType: string): Promise<T> {
  return api<T>('POST', path, new RawBody(text), { 'content-type': contentType });
}

/** A request body sent as it is rather than as JSON. */
export class RawBody {
  constructor(public text: string) {}
}

/** Attempts of a creating request before its error is shown. */
const CREATE_ATTEMPTS = 3;

/** A new idempotency key: one per operator action, shared by that action's retries. */
export function newKey(): string {
  return crypto.randomUUID();
}

/**
 * POSTs a request that creates something, with an `Idempotency-Key`. When the answer is lost
 * (network failure) or the server asks to retry (503), it is sent again with the same key, so
 * the server creates the thing once whatever happened to the first attempt.
 */
export async function create<T>(
  path: string,
  body: unknown = {},
  key: string = newKey(),
  pause: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await api<T>('POST', path, body, { 'idempotency-key': key });
    } catch (e) {
      const retryable = e instanceof ApiError && (e.status === 0 || e.status === 503);
      if (!retryable || attempt >= CREATE_ATTEMPTS) throw e;
      await pause(500 * attempt);
    }
  }
}

/** A message fit to show: the server's own words, with its code. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.code}${e.status ? `, ${e.status}` : ''})`;
  return e instanceof Error ? e.message : String(e);
}
