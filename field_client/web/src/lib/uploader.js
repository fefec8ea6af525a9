// Evidence files to the server over tus (tus-js-client), once the server has acknowledged their media records.
//
// The file is never in memory whole: tus-js-client reads it through our `fileReader`, which decrypts the stored
// 1 MiB chunks a PATCH needs and nothing more. The upload URL is kept in the `media` row as soon as the server
// made it, so an upload cut by a lost network, a closed tab or a reboot resumes at the offset the server reports
// (HEAD) instead of starting again. Each file's state is in its row: waiting → uploading → done, or failed with the
// Chinese reason (a permanent refusal, not retried by itself); a network loss leaves it waiting.
import { Upload as TusUpload } from 'tus-js-client';
import { ApiError } from './api.js';
import { DEVICE_CLOCK_HEADER, deviceClock } from './clock.js';
import { chunkAad } from './evidence.js';
import { messageFor, problemMessage } from './messages.js';
import { FieldStore } from './store.js';
import { isoLocal } from './times.js';

export const UPLOADS_PATH = '/api/v1/uploads/';
export const UPLOAD_CHUNK_SIZE = 4 * (1 << 20);
const DEFAULT_RETRY_DELAYS = [0, 1000, 3000, 5000, 10000];

function problemOf(response) {
  if (!response) return { status: 0, body: null, code: 'offline' };
  const status = response.getStatus();
  let body = null;
  try {
    body = JSON.parse(response.getBody() || 'null');
  } catch {
    body = null;
  }
  const type = body && typeof body.type === 'string' ? body.type : '';
  return { status, body, code: type ? type.split('/').pop() : `http-${status}` };
}

/** Whether a failed tus request may succeed if tried again (tus-js-client's onShouldRetry). */
export function retryable(status, code) {
  if (!status) return true; // no answer: the network
  if (status === 460) return code !== 'hash-mismatch'; // a chunk damaged in transit, not the whole file
  if (status === 400) return code === 'body-truncated';
  return status >= 500 || [408, 409, 423, 429].includes(status);
}

/** A FileSource for tus-js-client over a media's encrypted chunks: decrypts what a request needs, on demand. */
export function encryptedSource(db, vault, row) {
  const { id: mediaId, size } = row;
  const chunkSize = row.chunkSize || (1 << 20);
  let cached = null; // the last decrypted chunk: a PATCH boundary inside a chunk does not decrypt it twice
  async function chunk(index) {
    if (cached?.index === index) return cached.bytes;
    const stored = await db.table('chunks').get([mediaId, index]);
    if (!stored) throw Object.assign(new Error(`chunk ${index} of ${mediaId} missing`), { code: 'vault-missing' });
    const bytes = await vault.decryptBytes(stored, chunkAad(mediaId, index));
    cached = { index, bytes };
    return bytes;
  }
  return {
    size,
    async slice(start, end) {
      const stop = Math.min(end, size);
      if (start >= stop) return { value: Object.assign(new Uint8Array(0), { size: 0 }), done: true };
      const out = new Uint8Array(stop - start);
      let at = start;
      while (at < stop) {
        const index = Math.floor(at / chunkSize);
        const bytes = await chunk(index);
        const from = at - index * chunkSize;
        const take = Math.min(bytes.length - from, stop - at);
        if (take <= 0) throw Object.assign(new Error(`chunk ${index} of ${mediaId} is short`), { code: 'vault-missing' });
        out.set(bytes.subarray(from, from + take), at - start);
        at += take;
      }
      // tus-js-client measures a slice by `.size` (a Blob's); a Uint8Array is sent as it is by XHR and by Node.
      Object.defineProperty(out, 'size', { value: out.length });
      return { value: out, done: stop >= size };
    },
    close() {
      cached = null;
    },
  };
}

export class Uploader {
  constructor({ api, db, vault, baseUrl, store = null, chunkSize = UPLOAD_CHUNK_SIZE, retryDelays = DEFAULT_RETRY_DELAYS,
    Upload = TusUpload, now = () => new Date() }) {
    this.api = api;
    this.db = db;
    this.vault = vault;
    this.baseUrl = String(baseUrl ?? api?.baseUrl ?? '').replace(/\/+$/, '');
    this.store = store ?? new FieldStore(db, vault, {});
    this.chunkSize = chunkSize;
    this.retryDelays = retryDelays;
    this.Upload = Upload;
    this.now = now;
    this._running = new Map();
    this._active = new Map(); // media id -> tus Upload, to abort
    this.owner = vault?.username ?? null;
  }

  // Files of another user of this tablet are under their key: not ours to read or send.
  _mine(row) {
    return !row.owner || !this.owner || row.owner === this.owner;
  }

  get endpoint() {
    return `${this.baseUrl}${UPLOADS_PATH}`;
  }

  async _update(mediaId, changes) {
    await this.db.table('media').update(mediaId, { ...changes, updatedAt: isoLocal(this.now()) });
    return this.db.table('media').get(mediaId);
  }

  /** Every captured file's upload state, with its name and the Chinese reason of a failure. */
  async states() {
    const rows = (await this.db.table('media').toArray()).filter((r) => r.state !== 'capturing' && this._mine(r));
    const out = [];
    for (const row of rows) {
      const view = await this.store.get('media', row.id).catch(() => null);
      out.push({
        id: row.id, state: row.state, offset: row.offset ?? 0, size: row.size, sha256: row.sha256, acked: Boolean(row.acked),
        attempts: row.attempts ?? 0, updatedAt: row.updatedAt ?? null, verification: row.verification ?? null,
        error: row.error ?? null, reason: row.error?.reason ?? null, stateText: messageFor(row.state),
        fileName: view?.file_name ?? null, contentType: view?.content_type ?? null, inspectionId: view?.inspection_id ?? null,
        proves: view?.proves ?? null,
      });
    }
    out.sort((a, b) => String(a.updatedAt).localeCompare(String(b.updatedAt)));
    return out;
  }

  /**
   * Failed files back to waiting (the inspector asked to try again). Only those whose record the server holds: a
   * file whose record was refused cannot go up, however often it is tried.
   */
  async retryFailed() {
    const rows = (await this.db.table('media').where('state').equals('failed').toArray())
      .filter((r) => this._mine(r) && r.acked);
    for (const row of rows) await this._update(row.id, { state: 'waiting', error: null });
    return rows.length;
  }

  async _eligible(row) {
    if (!row || !this._mine(row) || !['waiting', 'uploading'].includes(row.state)) return false;
    if (row.acked) return true;
    // The record may have come back on pull without this tablet seeing the push answer (another tab, a crash).
    const record = await this.store.record('media', row.id).catch(() => null);
    return Boolean(record && record.server.version > 0);
  }

  /** Upload every file whose media record the server has acknowledged, one by one. */
  async uploadAll(onProgress) {
    const summary = { uploaded: 0, failed: 0, waiting: 0 };
    const rows = await this.db.table('media').toArray();
    rows.sort((a, b) => String(a.updatedAt).localeCompare(String(b.updatedAt)));
    let offline = false;
    for (const row of rows) {
      if (!(await this._eligible(row))) continue;
      if (offline) {
        summary.waiting += 1;
        continue;
      }
      const after = await this.uploadOne(row.id, onProgress);
      if (after?.state === 'done') summary.uploaded += 1;
      else if (after?.state === 'failed') summary.failed += 1;
      else {
        summary.waiting += 1;
        offline = after?.error?.code === 'offline' || after?.error?.code === 'session-lost'; // the rest would fail too
      }
    }
    return summary;
  }

  uploadOne(mediaId, onProgress) {
    if (this._running.has(mediaId)) return this._running.get(mediaId);
    // Another tab uploading the same file holds its lock: leave it to that tab rather than fight over the offset.
    const locks = globalThis.navigator?.locks;
    const upload = locks?.request
      ? () => locks.request(`inspect-once-upload:${mediaId}`, { ifAvailable: true },
        (lock) => (lock ? this._upload(mediaId, onProgress) : this.db.table('media').get(mediaId)))
      : () => this._upload(mediaId, onProgress);
    const run = upload().finally(() => this._running.delete(mediaId));
    this._running.set(mediaId, run);
    return run;
  }

  /** Stop uploads in progress (they stay resumable). */
  async abortAll() {
    for (const upload of this._active.values()) await upload.abort(false).catch(() => {});
  }

  async _serverHolds(mediaId, sha256) {
    try {
      const body = await this.api.get(`/media/${mediaId}`);
      if (!body || typeof body !== 'object' || (body.sha256 && body.sha256 !== sha256)) return null;
      if ('uploaded_at' in body && !body.uploaded_at) return null; // the record is there, the file is not (yet)
      return body;
    } catch (error) {
      if (error instanceof ApiError && error.offline) throw error;
      return null; // 404: not there yet; anything else: the upload itself will say
    }
  }

  async _metadata(row) {
    const view = await this.store.get('media', row.id).catch(() => null);
    const meta = {
      sha256: row.sha256, filename: view?.file_name || row.sha256, filetype: view?.content_type || 'application/octet-stream',
      media_id: row.id, device_id: view?.device_id, capture_start: view?.capture_start,
    };
    return Object.fromEntries(Object.entries(meta).filter(([, v]) => typeof v === 'string' && v));
  }

  async _upload(mediaId, onProgress) {
    let row = await this.db.table('media').get(mediaId);
    if (!row || row.state === 'done' || row.state === 'capturing' || !this._mine(row)) return row ?? null;
    const chunks = await this.db.table('chunks').where('mediaId').equals(mediaId).count();
    if (chunks < (row.chunkCount ?? 1)) {
      return this._update(mediaId, { state: 'failed', error: { code: 'vault-missing', reason: messageFor('vault-missing') } });
    }
    let held;
    try {
      held = await this._serverHolds(mediaId, row.sha256);
    } catch (error) {
      return this._update(mediaId, { state: 'waiting', error: { code: 'offline', reason: error.message } });
    }
    if (held) {
      return this._update(mediaId, { state: 'done', offset: row.size, uploadUrl: null, error: null,
        verification: held.verification?.status ?? null, alreadyHeld: true });
    }
    row = await this._update(mediaId, { state: 'uploading', attempts: (row.attempts ?? 0) + 1 });
    const metadata = await this._metadata(row);
    const outcome = await this._tus(row, metadata, onProgress);
    if (outcome.ok) {
      let verification = null;
      try {
        verification = (await this._serverHolds(mediaId, row.sha256))?.verification?.status ?? null;
      } catch { /* the server took the last byte with the hash checked; its verdict comes later */ }
      return this._update(mediaId, { state: 'done', offset: row.size, uploadUrl: null, error: null, verification });
    }
    return this._update(mediaId, outcome.changes);
  }

  _tus(row, metadata, onProgress) {
    const { api, db, vault } = this;
    const mediaId = row.id;
    let refreshing = null;
    let refreshed = false;
    let sessionLost = null;
    let lastToken = null;
    return new Promise((resolve) => {
      const upload = new this.Upload({ mediaId }, {
        endpoint: this.endpoint,
        uploadUrl: row.uploadUrl || null,
        uploadSize: row.size,
        chunkSize: this.chunkSize,
        metadata,
        retryDelays: this.retryDelays,
        storeFingerprintForResuming: false,
        removeFingerprintOnSuccess: false,
        fingerprint: async () => `inspect-once-media:${mediaId}`,
        fileReader: { openFile: async () => encryptedSource(db, vault, row) },
        onBeforeRequest: async (req) => {
          if (refreshing) await refreshing;
          lastToken = await api.accessToken();
          if (lastToken) req.setHeader('Authorization', `Bearer ${lastToken}`);
          req.setHeader(DEVICE_CLOCK_HEADER, deviceClock(this.now())); // for the server's clock ledger
        },
        onUploadUrlAvailable: () => {
          db.table('media').update(mediaId, { uploadUrl: upload.url }).catch(() => {});
        },
        onChunkComplete: (_size, accepted) => {
          db.table('media').update(mediaId, { offset: accepted, updatedAt: isoLocal(this.now()) }).catch(() => {});
        },
        onProgress: (sent, total) => {
          if (onProgress) onProgress({ mediaId, sent, total });
        },
        onShouldRetry: (err) => {
          const { status, code } = problemOf(err.originalResponse);
          if (status === 401) {
            if (refreshed) return false;
            refreshed = true;
            refreshing = api.refresh(lastToken).catch((error) => { sessionLost = error; });
            return true;
          }
          if (globalThis.navigator && globalThis.navigator.onLine === false) return false;
          return retryable(status, code);
        },
        onSuccess: () => {
          this._active.delete(mediaId);
          resolve({ ok: true });
        },
        onError: (err) => {
          this._active.delete(mediaId);
          resolve({ ok: false, changes: this._failure(err, sessionLost) });
        },
      });
      this._active.set(mediaId, upload);
      upload.start();
    });
  }

  /** The row's new state after tus-js-client gave up. */
  _failure(err, sessionLost) {
    if (err?.code === 'vault-missing' || err?.causingError?.code === 'vault-missing') {
      return { state: 'failed', error: { code: 'vault-missing', reason: messageFor('vault-missing') } };
    }
    const { status, body, code } = problemOf(err?.originalResponse);
    if (status === 401 || sessionLost) {
      return { state: 'waiting', error: { code: 'session-lost', reason: sessionLost?.message ?? messageFor('session-lost') } };
    }
    if (!status) return { state: 'waiting', error: { code: 'offline', reason: messageFor('offline') } };
    if (retryable(status, code)) {
      return { state: 'waiting', error: { code, reason: problemMessage(status, body) } };
    }
    let reason = problemMessage(status, body);
    if (code === 'hash-mismatch') {
      reason = `${messageFor('hash-mismatch')}（${reason}）。不会自动重试；网络恢复正常后可在同步页面重新上传`;
    }
    // A permanent refusal: the stored upload (if any) is of no more use.
    return { state: 'failed', uploadUrl: null, error: { code, reason, status } };
  }
}
