// The sync protocol (docs/sync.md) as field_client/sync.py speaks it: push the outbox, pull what changed.
//
// A batch carries at most one mutation per entity (FieldStore.sendable): two edits of one entity made in a row
// both start from the same confirmed version, and sent together the server would take the second for a conflict
// with the first. When the server answers that our mutation made exactly base + 1, the store confirms that
// version and rebases the entity's next unsent mutation on it.
//
// A batch the server cannot read (400, 413, 422) never blocks the outbox: the mutations its `errors` name are set
// aside, and a refusal that names none is split in halves until the bad ones are alone. A batch is never resent
// unchanged.
import { ApiError } from './api.js';
import { messageFor, unreadableReason, REJECTION_TEXTS } from './messages.js';
import { isoLocal } from './times.js';

export const MAX_BATCH = 500;
// Tried again like a 5xx: a timeout, two server processes committing the same mutation at once (the retry gets
// "duplicate"), too early, throttled.
export const RETRY_STATUSES = [408, 409, 425, 429];
// A batch refused with these may be refused for some of its mutations; any other 4xx is about the request as a
// whole (the device, the account), which no choice of mutations can change.
export const CONTENT_STATUSES = [400, 413, 422];
const MUTATION_PATH = /^\/?mutations[./[](\d+)\]?(?:[./](.*))?$/;
const UNNAMED_PATHS = new Set(['', '_body', '_schema', 'json', 'mutations', '/mutations']);
const SET_ASIDE_SUFFIX = '。该记录保存在本机，不会自动重发；请联系管理员或更新应用';

/**
 * Which mutations of a refused batch of `size` the answer names, with the fields it names (sync.refused_mutations):
 * null — about the request itself; an empty Map — about the content, no mutation named.
 */
export function refusedMutations(status, body, size) {
  const problem = body && typeof body === 'object' ? body : {};
  const code = typeof problem.type === 'string' ? problem.type.split('/').pop() : '';
  if (!CONTENT_STATUSES.includes(status) || code === 'unknown-device') return null;
  const named = new Map();
  const errors = problem.errors && typeof problem.errors === 'object' ? problem.errors : {};
  for (const path of Object.keys(errors)) {
    const match = MUTATION_PATH.exec(String(path));
    if (match && Number(match[1]) < size) {
      const index = Number(match[1]);
      if (!named.has(index)) named.set(index, []);
      named.get(index).push((match[2] || '').split(/[./]/)[0]);
    } else if (!match && !UNNAMED_PATHS.has(String(path))) {
      return null;
    }
  }
  return named;
}

function transient(error) {
  return error instanceof ApiError && !error.offline && (error.status >= 500 || RETRY_STATUSES.includes(error.status));
}

const sleepMs = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class SyncEngine {
  constructor({ api, store, deviceId, batchSize = MAX_BATCH, pullLimit = 200, sleep = sleepMs, maxAttempts = 3,
    backoffMs = 500, now = () => new Date() }) {
    this.api = api;
    this.store = store;
    this.deviceId = deviceId;
    this.batchSize = Math.max(1, Math.min(batchSize, MAX_BATCH));
    this.pullLimit = Math.max(1, Math.min(pullLimit, 1000));
    this.sleep = sleep;
    this.maxAttempts = Math.max(1, maxAttempts);
    this.backoffMs = backoffMs;
    this.now = now;
    this._listeners = new Map();
    this._running = null;
    this._status = { pending: 0, setAside: 0, conflicts: 0, running: false, lastSyncAt: null, lastError: null };
  }

  // ---- events and status ----------------------------------------------------------------------------

  on(event, callback) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(callback);
    return () => this._listeners.get(event)?.delete(callback);
  }

  _emit(event, payload) {
    for (const callback of this._listeners.get(event) || []) {
      try {
        callback(payload);
      } catch (error) {
        console.error('sync listener failed', error); // a UI bug must not stop the sync
      }
    }
  }

  status() {
    return { ...this._status };
  }

  async refreshStatus() {
    const counts = await this.store.counts();
    const lastSyncAt = await this.store.getMeta('last_sync_at');
    const lastError = await this.store.getMeta('last_error');
    this._status = { ...this._status, ...counts, lastSyncAt, lastError };
    this._emit('status', this.status());
    return this.status();
  }

  // ---- one sync -------------------------------------------------------------------------------------

  /** Push, then pull. One run at a time: a call while one runs gets the same promise. */
  syncOnce() {
    if (this._running) return this._running;
    // One sync at a time across the app's tabs too (Web Locks): two tabs pushing the same outbox would only earn
    // duplicates, but pulling into one database at once could interleave pages.
    const locks = globalThis.navigator?.locks;
    const run = locks?.request ? () => locks.request('inspect-once-sync', () => this._sync()) : () => this._sync();
    this._running = run().finally(() => {
      this._running = null;
    });
    return this._running;
  }

  async _sync() {
    this._status.running = true;
    this._emit('status', this.status());
    try {
      const pushed = await this.push();
      const pulled = await this.pull();
      const at = isoLocal(this.now());
      await this.store.setMeta('last_sync_at', at);
      await this.store.setMeta('last_error', null);
      await this.store.addLog('sync', { pushed: { ...pushed, rejected: pushed.rejected.length }, pulled });
      const report = { pushed, pulled };
      this._status.running = false;
      await this.refreshStatus();
      this._emit('synced', report);
      return report;
    } catch (error) {
      const failure = {
        code: error?.code ?? 'error', message: error?.message ?? String(error), offline: Boolean(error?.offline),
        at: isoLocal(this.now()),
      };
      this._status.running = false;
      try {
        await this.store.setMeta('last_error', failure);
        await this.refreshStatus();
      } catch { /* the store itself failing: the status keeps the error in memory */
        this._status.lastError = failure;
      }
      this._emit('error', error);
      throw error;
    }
  }

  /** A call retried on 5xx / 408 / 409 / 425 / 429 with jittered backoff (a Retry-After is a floor). */
  async _call(fn, { onAttempt, onFailure } = {}) {
    for (let attempt = 1; ; attempt++) {
      if (onAttempt) await onAttempt();
      try {
        return await fn();
      } catch (error) {
        if (!transient(error) || attempt >= this.maxAttempts) {
          if (onFailure && error instanceof ApiError) await onFailure(error);
          throw error;
        }
        if (onFailure) await onFailure(error);
        const ceiling = this.backoffMs * 2 ** (attempt - 1);
        const floor = Number(error.retryAfter) > 0 ? Number(error.retryAfter) * 1000 : 0;
        await this.sleep(Math.max(floor, Math.random() * ceiling));
      }
    }
  }

  // ---- push -----------------------------------------------------------------------------------------

  async push() {
    const report = { sent: 0, batches: 0, applied: 0, duplicate: 0, conflict: 0, rejected: [], conflicts: [] };
    const total = (await this.store.counts()).pending;
    // A result this client cannot read leaves its mutation pending for the next push, not this one: a server that
    // keeps answering so must not keep us pushing it for ever (as field_client.sync).
    this._unsettled = new Set();
    for (;;) {
      const batch = (await this.store.sendable(this.batchSize + this._unsettled.size))
        .filter((m) => !this._unsettled.has(m.id)).slice(0, this.batchSize);
      if (!batch.length) break;
      await this._send(batch, report, total);
    }
    if (report.rejected.length) this._emit('set-aside', report.rejected);
    if (report.conflicts.length) this._emit('conflict', report.conflicts);
    return report;
  }

  async _send(batch, report, total) {
    const ids = batch.map((m) => m.id);
    const envelope = {
      device_id: this.deviceId,
      mutations: batch.map((m) => ({ id: m.id, entity: m.entity, entity_id: m.entity_id, op: m.op,
        base_version: m.base_version, hlc: m.hlc, fields: m.fields })),
    };
    let body;
    try {
      body = await this._call(() => this.api.post('/sync/push', envelope), {
        onAttempt: () => this.store.noteAttempt(ids),
        onFailure: (error) => this.store.noteFailure(ids, error.code, error.message),
      });
    } catch (error) {
      const named = error instanceof ApiError && !error.offline ? refusedMutations(error.status, error.body, batch.length) : null;
      if (named === null) {
        if (error instanceof ApiError && error.offline) await this.store.noteFailure(ids, 'offline', error.message);
        throw error;
      }
      await this._refused(batch, named, error, report, total);
      return;
    }
    const results = body && Array.isArray(body.results) ? body.results : null;
    if (!results || results.length !== batch.length
        || results.some((r, i) => !r || typeof r !== 'object' || r.id !== ids[i])) {
      // The server committed the batch if it answered 200, but we cannot tell what happened to which mutation;
      // they stay pending and the next push learns their fate as duplicates.
      throw new ApiError({ status: 200, code: 'results-mismatch', message: messageFor('results-mismatch') });
    }
    const summary = await this.store.applyPushResults(results);
    report.applied += summary.applied;
    report.duplicate += summary.duplicate;
    report.conflict += summary.conflict;
    report.rejected.push(...summary.rejected);
    report.conflicts.push(...summary.conflicts);
    for (const id of summary.unknownIds) this._unsettled.add(id);
    report.sent += batch.length - summary.unknown;
    report.batches += 1;
    this._emit('progress', { phase: 'push', done: report.sent, total });
  }

  async _refused(batch, named, error, report, total) {
    if (named.size) {
      // Nothing of a refused batch was applied: the others go again, without these.
      for (const [index, fields] of [...named.entries()].sort((a, b) => a[0] - b[0])) {
        const code = fields.includes('entity') ? 'unknown-entity-kind' : 'invalid-mutation';
        const text = code === 'unknown-entity-kind' ? REJECTION_TEXTS[code].zh : unreadableReason(fields);
        await this._setAside(batch[index], code, text, report, total);
      }
    } else if (batch.length === 1) {
      const code = error.status === 413 ? 'payload-too-large' : 'invalid-mutation';
      const text = code === 'payload-too-large' ? REJECTION_TEXTS[code].zh : `${REJECTION_TEXTS[code].zh}（${error.message}）`;
      await this._setAside(batch[0], code, text, report, total);
    } else {
      const half = Math.floor(batch.length / 2);
      await this._sendPart(batch.slice(0, half), report, total);
      await this._sendPart(batch.slice(half), report, total);
    }
  }

  async _sendPart(part, report, total) {
    await this._send(part, report, total);
  }

  async _setAside(mutation, code, text, report, total) {
    const item = await this.store.setAside(mutation.id, code, `${text}${SET_ASIDE_SUFFIX}`);
    if (item) report.rejected.push(item);
    report.sent += 1;
    this._emit('progress', { phase: 'push', done: report.sent, total });
  }

  // ---- pull -----------------------------------------------------------------------------------------

  async pull() {
    const report = { pages: 0, changes: 0 };
    let cursor = await this.store.cursor();
    let restarted = false;
    for (;;) {
      const query = new URLSearchParams({ limit: String(this.pullLimit) });
      if (cursor) query.set('cursor', cursor);
      let body;
      try {
        body = await this._call(() => this.api.get(`/sync/pull?${query}`));
      } catch (error) {
        if (error instanceof ApiError && error.status === 422 && error.code === 'invalid-cursor' && !restarted) {
          cursor = null; // the server forgot our place: start over
          restarted = true;
          continue;
        }
        throw error;
      }
      const changes = body?.changes;
      const next = body?.cursor;
      const hasMore = body?.has_more;
      if (!Array.isArray(changes) || typeof next !== 'string' || typeof hasMore !== 'boolean') {
        throw new ApiError({ status: 200, code: 'bad-answer', message: messageFor('bad-answer') });
      }
      await this.store.applyPulledChanges(changes, { cursor: next });
      report.pages += 1;
      report.changes += changes.length;
      this._emit('progress', { phase: 'pull', done: report.changes, total: report.changes + (hasMore ? this.pullLimit : 0) });
      if (!hasMore) break;
      if (next === cursor && !changes.length) {
        throw new ApiError({ status: 200, code: 'cursor-stuck', message: messageFor('cursor-stuck') });
      }
      cursor = next;
    }
    return report;
  }
}

/**
 * Sync by itself when the network returns (and every `intervalMs` if > 0), then upload evidence. Errors reach the
 * UI through the engine's events; nothing is thrown. Returns a function that stops it.
 */
export function autoSync(engine, win = globalThis.window, { uploader = null, intervalMs = 0 } = {}) {
  const run = async () => {
    try {
      await engine.syncOnce();
      if (uploader) await uploader.uploadAll();
    } catch { /* reported through engine events / media states */ }
  };
  const online = () => { run(); };
  win?.addEventListener?.('online', online);
  const timer = intervalMs > 0 ? setInterval(() => {
    if (win?.navigator?.onLine !== false) run();
  }, intervalMs) : null;
  return () => {
    win?.removeEventListener?.('online', online);
    if (timer) clearInterval(timer);
  };
}
