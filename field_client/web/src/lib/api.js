// HTTP to the server: JSON calls under /api/v1, the token pair, one refresh on 401, problem+json as ApiError.
import { DEVICE_CLOCK_HEADER, deviceClock } from './clock.js';
import { messageFor, problemMessage } from './messages.js';
import { memoryTokens } from './vault.js';

export const API_PREFIX = '/api/v1';

export class ApiError extends Error {
  constructor({ status = 0, code, title = null, detail = null, errors = null, offline = false, body = null, message,
    retryAfter = null } = {}) {
    super(message ?? (offline ? messageFor('offline') : problemMessage(status, body)));
    this.name = 'ApiError';
    this.status = status;
    this.code = code ?? (offline ? 'offline' : `http-${status}`);
    this.title = title;
    this.detail = detail;
    this.errors = errors;
    this.offline = offline;
    this.body = body;
    this.retryAfter = retryAfter;
  }

  /** An answer that is not a success, as an ApiError (RFC 9457 problem+json when the server sent one). */
  static fromResponse(status, body, headers = null) {
    const problem = body && typeof body === 'object' && !Array.isArray(body) ? body : {};
    const type = typeof problem.type === 'string' ? problem.type : '';
    return new ApiError({
      status,
      code: type ? type.replace(/\/+$/, '').split('/').pop() : `http-${status}`,
      title: typeof problem.title === 'string' ? problem.title : null,
      detail: typeof problem.detail === 'string' ? problem.detail : null,
      errors: problem.errors && typeof problem.errors === 'object' ? problem.errors : null,
      body,
      retryAfter: headers?.get?.('Retry-After') ?? null,
    });
  }
}

async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON (a proxy's page): kept for diagnostics, never shown
  }
}

export class Api {
  constructor(baseUrl = '', { fetch = globalThis.fetch?.bind(globalThis), tokens = memoryTokens(), onSessionLost = null,
    timeoutMs = 30000 } = {}) {
    this.baseUrl = String(baseUrl || '').replace(/\/+$/, '');
    this._fetch = fetch;
    this.tokens = tokens;
    this.onSessionLost = onSessionLost;
    this.timeoutMs = timeoutMs;
    this._refreshing = null;
  }

  url(path) {
    if (/^https?:\/\//.test(path)) return path;
    const full = path.startsWith('/api/') ? path : `${API_PREFIX}${path.startsWith('/') ? '' : '/'}${path}`;
    return `${this.baseUrl}${full}`;
  }

  async accessToken() {
    return (await this.tokens.get())?.access_token ?? null;
  }

  /** One HTTP exchange, no refresh: `{status, body, headers}`; a network failure is an offline ApiError. */
  async send(method, path, { body, headers = {}, token } = {}) {
    const sent = { Accept: 'application/json, application/problem+json', [DEVICE_CLOCK_HEADER]: deviceClock(), ...headers };
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    if (token) sent.Authorization = `Bearer ${token}`;
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = controller && this.timeoutMs ? setTimeout(() => controller.abort(), this.timeoutMs) : null;
    let response;
    try {
      response = await this._fetch(this.url(path), {
        method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller?.signal, credentials: 'omit', cache: 'no-store',
      });
    } catch (error) {
      throw new ApiError({ offline: true, detail: String(error?.message ?? error) });
    } finally {
      if (timer) clearTimeout(timer);
    }
    let parsed;
    try {
      parsed = await readBody(response);
    } catch (error) {
      throw new ApiError({ offline: true, detail: String(error?.message ?? error) }); // the connection broke mid-body
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }

  /** A call with the access token; a 401 refreshes the pair once and tries again. Returns the parsed body. */
  async request(method, path, { body, headers, auth = true } = {}) {
    let token = auth ? await this.accessToken() : null;
    if (auth && !token) {
      throw new ApiError({ status: 401, code: 'session-lost', message: messageFor('session-lost') });
    }
    let answer = await this.send(method, path, { body, headers, token });
    if (answer.status === 401 && auth) {
      await this.refresh(token);
      token = await this.accessToken();
      answer = await this.send(method, path, { body, headers, token });
      if (answer.status === 401) await this._lose(ApiError.fromResponse(401, answer.body));
    }
    if (answer.status < 200 || answer.status >= 300) throw ApiError.fromResponse(answer.status, answer.body, answer.headers);
    return answer.body;
  }

  get(path, options) {
    return this.request('GET', path, options);
  }

  post(path, body, options = {}) {
    return this.request('POST', path, { ...options, body: body ?? {} });
  }

  /**
   * Trade the refresh token for a new pair. Concurrent callers share one refresh; `old` (the access token a
   * caller saw refused) skips the refresh when another caller has already replaced it.
   */
  async refresh(old) {
    if (this._refreshing) return this._refreshing;
    const current = await this.tokens.get();
    if (old !== undefined && current?.access_token && current.access_token !== old) return current;
    this._refreshing = (async () => {
      if (!current?.refresh_token) {
        await this._lose(new ApiError({ status: 401, code: 'session-lost', message: messageFor('session-lost') }));
      }
      const answer = await this.send('POST', '/auth/refresh', { body: { refresh_token: current.refresh_token } });
      if (answer.status !== 200) {
        const error = ApiError.fromResponse(answer.status, answer.body);
        if (answer.status >= 500 || answer.status === 429) throw error; // the session may still be good
        await this._lose(error);
      }
      const pair = Api._pair(answer.body);
      await this.tokens.set(pair);
      return pair;
    })();
    try {
      return await this._refreshing;
    } finally {
      this._refreshing = null;
    }
  }

  async _lose(error) {
    await this.tokens.set(null);
    if (this.onSessionLost) {
      try {
        await this.onSessionLost(error);
      } catch { /* the UI's handler must not hide the error */ }
    }
    throw error;
  }

  static _pair(body) {
    if (!body || typeof body.access_token !== 'string' || typeof body.refresh_token !== 'string') {
      throw new ApiError({ status: 200, code: 'bad-answer', message: messageFor('bad-answer') });
    }
    return { access_token: body.access_token, refresh_token: body.refresh_token, expires_in: body.expires_in ?? null };
  }

  /** Log in on this tablet (bound to its device credential); returns `{user, tokens}` with user = /auth/me. */
  async login({ username, password, deviceId, deviceSecret }) {
    const body = { username, password };
    if (deviceId) body.device_id = deviceId;
    if (deviceSecret) body.device_secret = deviceSecret;
    const answer = await this.send('POST', '/auth/token', { body });
    if (answer.status !== 200) throw ApiError.fromResponse(answer.status, answer.body);
    const pair = Api._pair(answer.body);
    const me = await this.send('GET', '/auth/me', { token: pair.access_token });
    if (me.status !== 200 || !me.body || typeof me.body !== 'object' || !me.body.id) {
      throw ApiError.fromResponse(me.status, me.body);
    }
    if (me.body.role && me.body.role !== 'inspector') {
      throw new ApiError({ status: 403, code: 'not-a-tablet', message: messageFor('not-a-tablet') });
    }
    await this.tokens.set(pair);
    return { user: me.body, tokens: pair };
  }

  /** End the session on the server (best effort) and forget the tokens here. */
  async logout() {
    const current = await this.tokens.get();
    await this.tokens.set(null);
    if (current?.refresh_token) {
      try {
        await this.send('POST', '/auth/logout', { body: { refresh_token: current.refresh_token } });
      } catch { /* offline: the tokens are forgotten here anyway */ }
    }
  }

  /**
   * Spend a one-time enrolment code: `{device_id, device_secret, department, label}`. `publicKey`: the tablet's
   * Ed25519 public key (raw, base64url), which the server keeps to verify the manifests the tablet signs.
   */
  async enrol(code, { publicKey } = {}) {
    const request = { code: String(code || '').trim().toUpperCase() };
    if (publicKey) request.public_key = publicKey;
    const answer = await this.send('POST', '/devices/enrol', { body: request });
    if (answer.status !== 200 && answer.status !== 201) throw ApiError.fromResponse(answer.status, answer.body);
    const body = answer.body || {};
    if (typeof body.device_id !== 'string' || typeof body.device_secret !== 'string') {
      throw new ApiError({ status: answer.status, code: 'bad-answer', message: messageFor('bad-answer') });
    }
    return body;
  }
}
