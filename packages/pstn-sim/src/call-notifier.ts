import type { CallNotification } from './call-plan.js';

/**
 * Delivers a call notification to a call manager's callback. A call manager that does not answer,
 * or refuses, is reported, never fatal: on the real PSTN a call happens whether or not the
 * enterprise's call manager records it.
 */

export interface DeliveryResult {
  readonly delivered: boolean;
  /** The call manager's JSON answer when it accepted. */
  readonly answer?: Record<string, unknown>;
  readonly error?: { readonly code: string; readonly message: string };
}

const MAX_ANSWER_BYTES = 64 * 1024;

export type Deliver = (url: string, token: string, notification: CallNotification) => Promise<DeliveryResult>;

export function httpDeliverer(timeoutMs: number): Deliver {
  return async (url, token, notification) => {
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(notification),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      text = (await res.text()).slice(0, MAX_ANSWER_BYTES);
    } catch (err) {
      const name = (err as { name?: unknown }).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        return { delivered: false, error: { code: 'E_PSTN_CALLBACK_TIMEOUT', message: `the call manager did not answer within ${timeoutMs} ms` } };
      }
      const code = (err as { cause?: { code?: unknown } }).cause?.code;
      return { delivered: false, error: { code: 'E_PSTN_CALLBACK_UNREACHABLE', message: `cannot reach the call manager${typeof code === 'string' ? ` (${code})` : ''}` } };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const body = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
    if (res.status >= 200 && res.status < 300) return { delivered: true, answer: body ?? {} };
    const error = body?.error as { code?: unknown; message?: unknown } | undefined;
    if (typeof error?.code === 'string' && /^E_[A-Z0-9_]{1,64}$/.test(error.code)) {
      return { delivered: false, error: { code: error.code, message: String(error.message ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300) } };
    }
    return { delivered: false, error: { code: 'E_PSTN_CALLBACK_HTTP', message: `the call manager answered HTTP ${res.status}` } };
  };
}
