// The tablet's local records and outbox, encrypted at rest (mirrors field_client/records.py, store.py and the
// result handling of sync.py).
//
// The local view of an entity is its confirmed state overlaid, in order, with this tablet's mutations the server
// has not yet shown back on pull (pending ones, and acknowledged ones newer than the confirmed version). Refused
// (set-aside) mutations are not part of the view; they stay in the outbox with their Chinese reason until the
// inspector has seen them.
//
// Every write is one IndexedDB transaction. WebCrypto's promises are not IndexedDB requests, so inside a
// transaction they go through Dexie.waitFor, which keeps the transaction alive while they run.
import Dexie from 'dexie';
import { Hlc, parseHlc } from './hlc.js';
import { uuid4 } from './ids.js';
import { rejectionReason } from './messages.js';
import { isoLocal, isoToEpochMs } from './times.js';

export const SYNCED_KINDS = ['inspection', 'finding', 'media', 'signature'];
export const REFERENCE_KINDS = ['task', 'check_item', 'enterprise', 'certificate'];

const wait = (promise) => (Dexie.currentTransaction ? Dexie.waitFor(promise) : promise);

function entityAad(kind, id) {
  return `entity:${kind}:${id}`;
}

function outboxAad(id) {
  return `outbox:${id}`;
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function deepEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

const WITH_ZONE = /(Z|[+-]\d{2}(:?\d{2})?)$/i;

/** Equal values; timestamps with an offset compare as instants (the server stores them in UTC), as records._same. */
export function sameValue(a, b) {
  if (deepEqual(a, b)) return true;
  if (typeof a === 'string' && typeof b === 'string' && a.length > 10 && b.length > 10
      && WITH_ZONE.test(a) && WITH_ZONE.test(b)) {
    const x = isoToEpochMs(a);
    return x !== null && x === isoToEpochMs(b);
  }
  return false;
}

/** The confirmed state overlaid with our unconfirmed mutations (in outbox order), as records.refresh_view. */
export function computeView(server, mutations) {
  let fields = server.fields != null ? { ...server.fields } : null;
  let deleted = Boolean(server.deleted);
  const overlay = mutations.filter((m) => m.status === 'pending'
    || (m.status === 'done' && Number.isInteger(m.resultVersion) && m.resultVersion > server.version));
  for (const m of overlay) {
    if (m.op === 'delete') deleted = true;
    else fields = { ...(fields || {}), ...m.fields };
  }
  return { fields, deleted, unconfirmed: overlay.length > 0 };
}

/** A stamp for a server time, as sync._hlc_from_time: its millisecond, counter 0. */
export function stampFromTime(value, node) {
  const ms = value ? isoToEpochMs(value) : null;
  return ms === null ? null : { wall: ms, counter: 0, node };
}

/** The stamps a pulled change makes the clock see, in order: its updated_at (counter 0, our node), then meta.hlc. */
export function seenStamps(change, node) {
  const seen = [];
  const fromTime = stampFromTime(typeof change?.updated_at === 'string' ? change.updated_at : null, node);
  if (fromTime) seen.push(fromTime);
  const meta = isObject(change?.meta) ? change.meta : {};
  if (typeof meta.hlc === 'string') {
    try {
      seen.push(parseHlc(meta.hlc));
    } catch { /* a stamp we cannot read is not folded in */ }
  }
  return seen;
}

export class FieldStore {
  constructor(db, vault, { deviceId, userId, departmentId = null, hlc, now = () => new Date() } = {}) {
    this.db = db;
    this.vault = vault;
    this.deviceId = deviceId;
    this.userId = userId;
    this.departmentId = departmentId;
    this.hlc = hlc ?? new Hlc(deviceId);
    this.now = now;
    // Rows are tagged with the vault's user in clear: another inspector's rows, under another key, are never
    // decrypted with ours (they are simply not there for this store).
    this.owner = vault?.username ?? null;
  }

  _mine(row) {
    return !row.owner || !this.owner || row.owner === this.owner;
  }

  _iso() {
    return isoLocal(this.now());
  }

  // ---- encrypted rows ------------------------------------------------------------------------------

  async _readEntity(kind, id) {
    const row = await this.db.table('entities').get([kind, id]);
    if (!row || !this._mine(row)) return null;
    try {
      return { row, rec: await wait(this.vault.decryptJSON(row.enc, entityAad(kind, id))) };
    } catch {
      return null; // not readable with this key: a cache row of someone else's, rebuilt by the next pull
    }
  }

  async _writeEntity(rec, order) {
    const enc = await wait(this.vault.encryptJSON(rec, entityAad(rec.kind, rec.id)));
    await this.db.table('entities').put({
      kind: rec.kind, id: rec.id, taskId: rec.taskId ?? null, inspectionId: rec.inspectionId ?? null,
      updatedAt: rec.updatedAt ?? null, order, owner: this.owner, enc,
    });
  }

  async _nextOrder() {
    const meta = this.db.table('meta');
    const n = ((await meta.get('entity_order'))?.value ?? 0) + 1;
    await meta.put({ key: 'entity_order', value: n });
    return n;
  }

  async _decryptMutation(row) {
    const body = await wait(this.vault.decryptJSON(row.enc, outboxAad(row.id)));
    return { seq: row.seq, id: row.id, status: row.status, attempts: row.attempts ?? 0, ...body };
  }

  async _writeMutation(m) {
    const { seq, id, status, attempts, ...body } = m;
    const enc = await wait(this.vault.encryptJSON(body, outboxAad(id)));
    const row = { id, kind: body.entity, entityId: body.entity_id, status, attempts: attempts ?? 0, owner: this.owner, enc };
    if (seq !== undefined) row.seq = seq;
    return this.db.table('outbox').put(row);
  }

  async _entityMutations(entityId) {
    const rows = (await this.db.table('outbox').where('entityId').equals(entityId).sortBy('seq')).filter((r) => this._mine(r));
    const out = [];
    for (const row of rows) out.push(await this._decryptMutation(row));
    return out;
  }

  async _refreshView(rec) {
    const view = computeView(rec.server, await this._entityMutations(rec.id));
    rec.view = { fields: view.fields, deleted: view.deleted };
    rec.unconfirmed = view.unconfirmed;
    return rec;
  }

  // ---- the clock -----------------------------------------------------------------------------------

  async _tick() {
    const meta = this.db.table('meta');
    const last = (await meta.get('hlc_last'))?.value;
    if (last) this.hlc.receive(last); // another tab (or a restart) may have got further
    const stamp = this.hlc.tick();
    await meta.put({ key: 'hlc_last', value: stamp });
    return stamp;
  }

  async _fold(stamps) {
    if (!stamps.length) return;
    const meta = this.db.table('meta');
    const last = (await meta.get('hlc_last'))?.value;
    if (last) this.hlc.receive(last);
    const before = this.hlc.last;
    for (const stamp of stamps) this.hlc.receive(stamp);
    if (this.hlc.last !== before) await meta.put({ key: 'hlc_last', value: this.hlc.last });
  }

  async lastStamp() {
    return (await this.db.table('meta').get('hlc_last'))?.value ?? null;
  }

  // ---- local writes --------------------------------------------------------------------------------

  /**
   * Record one local change: a mutation in the outbox and the entity's view updated, in one transaction.
   * `extend({taskId, inspectionId, fields})`, if given, runs inside that transaction (which holds `meta`) and its
   * result is merged into the fields: what must change exactly when this record is kept (a capture's signed
   * manifest and its device's chain counter, manifest.signCapture).
   */
  async put(kind, id, fields, { op = 'upsert', taskId, inspectionId, extend } = {}) {
    if (!SYNCED_KINDS.includes(kind)) throw new TypeError(`not a kind the tablet writes: ${kind}`);
    if (op !== 'upsert' && op !== 'delete') throw new TypeError(`bad op: ${op}`);
    let values = { ...(fields || {}) };
    const { db } = this;
    return db.transaction('rw', db.table('entities'), db.table('outbox'), db.table('meta'), async () => {
      const found = await this._readEntity(kind, id);
      let rec = found?.rec;
      const creating = !rec || rec.view?.fields == null;
      if (creating && rec && op === 'upsert') {
        // The mutations that created this entity were refused (set aside): a later change alone is a delta the
        // server can only refuse for missing required fields, so it carries the refused fields too and the server
        // judges the whole record (a correction makes it acceptable; a lasting refusal is named for what it is).
        const refused = (await this._entityMutations(id)).filter((m) => m.status === 'rejected' && m.op === 'upsert');
        values = Object.assign({}, ...refused.map((m) => m.fields), values);
      }
      let task = taskId ?? (kind === 'inspection' ? values.task_id : undefined);
      const parent = kind === 'inspection' ? null : (inspectionId ?? values.inspection_id ?? rec?.inspectionId ?? null);
      if (task == null && parent) {
        task = (await db.table('entities').get(['inspection', parent]))?.taskId ?? undefined;
      }
      if (!rec) {
        rec = {
          kind, id, taskId: null, inspectionId: null, departmentId: null, createdById: null,
          server: { fields: null, version: 0, deleted: false, updatedAt: null },
        };
      }
      rec.taskId = task ?? rec.taskId ?? null;
      rec.inspectionId = parent ?? rec.inspectionId ?? null;
      if (extend) {
        const extra = await extend({ taskId: rec.taskId, inspectionId: rec.inspectionId, fields: values });
        values = { ...values, ...(extra ?? {}) };
      }
      if (creating) {
        rec.departmentId = rec.departmentId ?? this.departmentId;
        rec.createdById = rec.createdById ?? this.userId ?? null;
      }
      const now = this._iso();
      const mutation = {
        id: uuid4(), entity: kind, entity_id: id, op, base_version: rec.server.version, hlc: await this._tick(),
        fields: values,
      };
      await this._writeMutation({
        ...mutation, status: 'pending', attempts: 0, userId: this.userId ?? null, result: null, resultVersion: null,
        errorCode: null, errorReason: null, createdAt: now, updatedAt: now,
      });
      rec.updatedAt = now;
      await this._refreshView(rec);
      await this._writeEntity(rec, found?.row.order ?? await this._nextOrder());
      return mutation;
    });
  }

  /** Delete an entity: a tombstone mutation. */
  async remove(kind, id) {
    return this.put(kind, id, {}, { op: 'delete' });
  }

  // ---- reading -------------------------------------------------------------------------------------

  static view(rec) {
    if (REFERENCE_KINDS.includes(rec.kind)) {
      return { ...(rec.server.fields || {}), id: rec.id, kind: rec.kind, version: rec.server.version,
        deleted: Boolean(rec.server.deleted), updatedAt: rec.server.updatedAt ?? null };
    }
    return {
      ...(rec.view?.fields || {}),
      id: rec.id, kind: rec.kind, taskId: rec.taskId ?? null, inspectionId: rec.inspectionId ?? null,
      departmentId: rec.departmentId ?? null, createdById: rec.createdById ?? null, version: rec.server.version,
      unconfirmed: Boolean(rec.unconfirmed), meta: rec.meta ?? null,
    };
  }

  static visible(rec) {
    if (REFERENCE_KINDS.includes(rec.kind)) return true;
    return rec.view?.fields != null && !rec.view.deleted;
  }

  /** An entity's local view, or null (a synced entity deleted or not here). Reference records keep `deleted`. */
  async get(kind, id) {
    const found = await this._readEntity(kind, id);
    if (!found || !FieldStore.visible(found.rec)) return null;
    return FieldStore.view(found.rec);
  }

  /** Raw decrypted record (confirmed state, view, where it belongs), for tests and diagnostics. */
  async record(kind, id) {
    return (await this._readEntity(kind, id))?.rec ?? null;
  }

  async list(kind, { taskId, inspectionId, includeDeleted = false } = {}) {
    let rows = await this.db.table('entities').where('kind').equals(kind).toArray();
    if (taskId != null) rows = rows.filter((r) => r.taskId === taskId);
    if (inspectionId != null) rows = rows.filter((r) => r.inspectionId === inspectionId);
    rows = rows.filter((r) => this._mine(r)).sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
    const out = [];
    for (const row of rows) {
      let rec;
      try {
        rec = await this.vault.decryptJSON(row.enc, entityAad(row.kind, row.id));
      } catch {
        continue;
      }
      if (!FieldStore.visible(rec)) continue;
      if (!includeDeleted && REFERENCE_KINDS.includes(kind) && rec.server.deleted) continue;
      out.push(FieldStore.view(rec));
    }
    return out;
  }

  // ---- the outbox ----------------------------------------------------------------------------------

  static envelope(m) {
    return { id: m.id, entity: m.entity, entity_id: m.entity_id, op: m.op, base_version: m.base_version, hlc: m.hlc,
      fields: m.fields };
  }

  static item(m) {
    return { seq: m.seq, ...FieldStore.envelope(m), attempts: m.attempts, userId: m.userId ?? null,
      createdAt: m.createdAt, updatedAt: m.updatedAt, errorCode: m.errorCode ?? null, errorReason: m.errorReason ?? null };
  }

  async _byStatus(status) {
    const rows = (await this.db.table('outbox').where('[status+seq]').between([status, Dexie.minKey], [status, Dexie.maxKey])
      .toArray()).filter((r) => this._mine(r));
    const out = [];
    for (const row of rows) out.push(await this._decryptMutation(row));
    return out;
  }

  /** Pending mutations in outbox order. */
  async pending() {
    return (await this._byStatus('pending')).map(FieldStore.item);
  }

  /**
   * Pending mutations that head their entity's queue, oldest first (store.sendable): only one mutation per entity
   * goes in a batch, since the next one's base_version may move up once the server answers for this one.
   */
  async sendable(limit) {
    const rows = (await this.db.table('outbox').where('[status+seq]').between(['pending', Dexie.minKey], ['pending', Dexie.maxKey])
      .toArray()).filter((r) => this._mine(r));
    const seen = new Set();
    const heads = [];
    for (const row of rows) {
      if (seen.has(row.entityId)) continue;
      seen.add(row.entityId);
      heads.push(row);
      if (heads.length >= limit) break;
    }
    const out = [];
    for (const row of heads) out.push(FieldStore.item(await this._decryptMutation(row)));
    return out;
  }

  async _updateMutations(ids, change) {
    const { db } = this;
    await db.transaction('rw', db.table('outbox'), async () => {
      for (const id of ids) {
        const row = await db.table('outbox').get({ id });
        if (!row || !this._mine(row)) continue;
        const m = await this._decryptMutation(row);
        change(m);
        m.updatedAt = this._iso();
        await this._writeMutation(m);
      }
    });
  }

  /** Count an attempt before the request leaves: from here on the mutation's content is frozen (never rebased). */
  async noteAttempt(ids) {
    await this._updateMutations(ids, (m) => { m.attempts = (m.attempts ?? 0) + 1; });
  }

  async noteFailure(ids, code, reason) {
    await this._updateMutations(ids, (m) => { m.errorCode = code; m.errorReason = reason; });
  }

  /** Settle each mutation by its push result (sync._settle). */
  async applyPushResults(results) {
    const summary = { applied: 0, duplicate: 0, conflict: 0, rejected: [], unknown: 0, unknownIds: [], conflicts: [] };
    const { db } = this;
    await db.transaction('rw', [db.table('entities'), db.table('outbox'), db.table('meta'), db.table('conflicts'),
      db.table('media')], async () => {
      for (const result of results || []) {
        if (!isObject(result) || typeof result.id !== 'string') continue;
        const row = await db.table('outbox').get({ id: result.id });
        if (!row || !this._mine(row)) continue;
        const m = await this._decryptMutation(row);
        const now = this._iso();
        const status = result.status;
        const version = Number.isInteger(result.version) ? result.version : null;
        if (status === 'applied' || status === 'duplicate' || status === 'conflict') {
          Object.assign(m, { status: 'done', result: status, resultVersion: version, errorCode: null, errorReason: null,
            updatedAt: now });
          await this._writeMutation(m);
          summary[status] += 1;
          if (status === 'conflict') {
            const item = { mutationId: m.id, entity: m.entity, entity_id: m.entity_id, fields: m.fields, detectedAt: now };
            await db.table('conflicts').put({ mutationId: m.id, entityId: m.entity_id, detectedAt: now, owner: this.owner,
              enc: await wait(this.vault.encryptJSON(item, `conflict:${m.id}`)) });
            summary.conflicts.push(item);
          } else if (version !== null && version === m.base_version + 1) {
            await this._confirmOwnWrite(m);
          }
          if (m.entity === 'media' && m.op === 'upsert') {
            await db.table('media').update(m.entity_id, { acked: true });
          }
        } else if (status === 'rejected') {
          const code = String(result.code || 'rejected');
          const reason = rejectionReason(code, result.reason);
          Object.assign(m, { status: 'rejected', result: 'rejected', resultVersion: null, errorCode: code,
            errorReason: reason, updatedAt: now });
          await this._writeMutation(m);
          summary.rejected.push(FieldStore.refused(m));
          await this._mediaRefused(m);
        } else {
          Object.assign(m, { errorCode: 'unknown-result', errorReason: `服务器返回了未知的结果：${JSON.stringify(status)}`,
            updatedAt: now });
          await this._writeMutation(m);
          summary.unknown += 1;
          summary.unknownIds.push(m.id);
          continue;
        }
        const found = await this._readEntity(m.entity, m.entity_id);
        if (found) {
          await this._refreshView(found.rec);
          await this._writeEntity(found.rec, found.row.order);
        }
      }
    });
    return summary;
  }

  /** Our mutation made version base+1: nobody wrote in between, so we know that version's content. */
  async _confirmOwnWrite(m) {
    const base = m.base_version;
    const made = base + 1;
    const found = await this._readEntity(m.entity, m.entity_id);
    if (found && found.rec.server.version === base) {
      const { server } = found.rec;
      if (m.op === 'delete') {
        found.rec.server = { fields: { ...(server.fields || {}) }, version: made, deleted: true, updatedAt: null };
      } else {
        found.rec.server = { fields: { ...(server.fields || {}), ...m.fields }, version: made,
          deleted: Boolean(server.deleted), updatedAt: null };
      }
      await this._writeEntity(found.rec, found.row.order);
    }
    // Rebase never-sent mutations of the entity from `base` onto `made`.
    for (const other of await this._entityMutations(m.entity_id)) {
      if (other.status === 'pending' && (other.attempts ?? 0) === 0 && other.base_version === base) {
        other.base_version = made;
        await this._writeMutation(other);
      }
    }
  }

  static refused(m) {
    return { id: m.id, entity: m.entity, entity_id: m.entity_id, op: m.op, fields: m.fields,
      code: m.errorCode || 'rejected', reason: m.errorReason || '', at: m.updatedAt };
  }

  /** A media record the server refused: its file will not go up, and the upload list says why (the file stays). */
  async _mediaRefused(m) {
    if (m.entity !== 'media' || m.op !== 'upsert') return;
    const row = await this.db.table('media').get(m.entity_id);
    if (row && row.state !== 'done' && !row.acked) {
      await this.db.table('media').update(m.entity_id, { state: 'failed', error: { code: m.errorCode, reason: m.errorReason },
        updatedAt: this._iso() });
    }
  }

  /** Keep a mutation the server cannot take as refused: shown to the inspector, never sent again by itself. */
  async setAside(mutationId, code, reason) {
    const { db } = this;
    let item = null;
    await db.transaction('rw', db.table('entities'), db.table('outbox'), db.table('media'), async () => {
      const row = await db.table('outbox').get({ id: mutationId });
      if (!row || !this._mine(row)) return;
      const m = await this._decryptMutation(row);
      Object.assign(m, { status: 'rejected', result: 'rejected', resultVersion: null, errorCode: code,
        errorReason: reason, updatedAt: this._iso() });
      await this._writeMutation(m);
      item = FieldStore.refused(m);
      await this._mediaRefused(m);
      const found = await this._readEntity(m.entity, m.entity_id);
      if (found) {
        await this._refreshView(found.rec);
        await this._writeEntity(found.rec, found.row.order);
      }
    });
    return item;
  }

  /** Refused mutations (this user's, if the store has a user), with their Chinese reasons. */
  async setAsideList() {
    const rows = await this._byStatus('rejected');
    return rows.filter((m) => !this.userId || !m.userId || m.userId === this.userId).map(FieldStore.refused);
  }

  /** Our edits the server stored as conflict; `overridden`: our values that lost, once a pull brought the merge. */
  async conflicts() {
    const rows = (await this.db.table('conflicts').toArray()).filter((r) => this._mine(r));
    const out = [];
    for (const row of rows) {
      const item = await this.vault.decryptJSON(row.enc, `conflict:${row.mutationId}`);
      const mrow = await this.db.table('outbox').get({ id: row.mutationId });
      const sent = mrow ? await this._decryptMutation(mrow) : null;
      if (sent && this.userId && sent.userId && sent.userId !== this.userId) continue;
      const found = await this._readEntity(item.entity, item.entity_id);
      const caughtUp = Boolean(found && sent && Number.isInteger(sent.resultVersion)
        && found.rec.server.version >= sent.resultVersion);
      const confirmed = found?.rec.server.fields || {};
      const overridden = {};
      for (const [k, v] of Object.entries(item.fields || {})) {
        if (caughtUp && Object.hasOwn(confirmed, k) && !sameValue(confirmed[k], v)) overridden[k] = confirmed[k];
      }
      out.push({ ...item, overridden });
    }
    out.sort((a, b) => (a.detectedAt < b.detectedAt ? -1 : a.detectedAt > b.detectedAt ? 1
      : a.mutationId < b.mutationId ? -1 : 1));
    return out;
  }

  async counts() {
    const outbox = this.db.table('outbox');
    return {
      pending: await outbox.where('status').equals('pending').filter((r) => this._mine(r)).count(),
      setAside: (await this.setAsideList()).length,
      conflicts: (await this.conflicts()).length,
    };
  }

  // ---- pull ----------------------------------------------------------------------------------------

  /** Apply one page of pulled changes (sync._apply), with its cursor, in one transaction. */
  async applyPulledChanges(changes, { cursor } = {}) {
    const { db } = this;
    let applied = 0;
    await db.transaction('rw', db.table('entities'), db.table('outbox'), db.table('meta'), async () => {
      const seen = [];
      for (const change of changes || []) {
        if (!isObject(change)) continue;
        if (await this._applyChange(change, seen)) applied += 1;
      }
      await this._fold(seen);
      if (cursor !== undefined) await db.table('meta').put({ key: 'cursor', value: cursor });
      await db.table('meta').put({ key: 'last_pull_at', value: this._iso() });
    });
    return applied;
  }

  async _applyChange(change, seen) {
    const kind = change.entity;
    const entityId = change.entity_id;
    if (typeof entityId !== 'string' || typeof kind !== 'string') return false;
    const fields = isObject(change.fields) ? change.fields : {};
    const version = Number.isInteger(change.version) ? change.version : 0;
    const deleted = change.op === 'delete';
    const updatedAt = typeof change.updated_at === 'string' ? change.updated_at : null;
    const meta = isObject(change.meta) ? change.meta : {};
    seen.push(...seenStamps(change, this.deviceId || 'local'));
    if (REFERENCE_KINDS.includes(kind)) {
      const found = await this._readEntity(kind, entityId);
      const rec = {
        kind, id: entityId, taskId: kind === 'task' ? entityId : null, inspectionId: null, updatedAt,
        server: { fields, version, deleted, updatedAt },
      };
      await this._writeEntity(rec, found?.row.order ?? await this._nextOrder());
      return true;
    }
    if (!SYNCED_KINDS.includes(kind)) return false; // from a newer server: ignored, not fatal
    const found = await this._readEntity(kind, entityId);
    const rec = found?.rec ?? {
      kind, id: entityId, taskId: null, inspectionId: null, departmentId: null, createdById: null,
      server: { fields: null, version: 0, deleted: false, updatedAt: null },
    };
    rec.taskId = meta.task_id || fields.task_id || rec.taskId || null;
    if (kind !== 'inspection') rec.inspectionId = fields.inspection_id || rec.inspectionId || null;
    rec.departmentId = meta.department_id || rec.departmentId || null;
    rec.createdById = meta.created_by_id || rec.createdById || null;
    if (version >= rec.server.version) {
      rec.server = { fields, version, deleted, updatedAt };
      rec.meta = Object.keys(meta).length ? meta : (rec.meta ?? null);
      rec.updatedAt = updatedAt ?? rec.updatedAt ?? null;
    }
    await this._refreshView(rec);
    await this._writeEntity(rec, found?.row.order ?? await this._nextOrder());
    return true;
  }

  async cursor() {
    return (await this.db.table('meta').get('cursor'))?.value ?? null;
  }

  async setCursor(value) {
    if (value == null) await this.db.table('meta').delete('cursor');
    else await this.db.table('meta').put({ key: 'cursor', value });
  }

  // ---- meta, secrets, log --------------------------------------------------------------------------

  async getMeta(key) {
    return (await this.db.table('meta').get(key))?.value ?? null;
  }

  async setMeta(key, value) {
    if (value == null) await this.db.table('meta').delete(key);
    else await this.db.table('meta').put({ key, value });
  }

  async getSecret(key) {
    const row = await this.db.table('meta').get(`secret:${key}`);
    return row ? this.vault.decryptJSON(row.value, `meta:${key}`) : null;
  }

  async setSecret(key, value) {
    if (value == null) await this.db.table('meta').delete(`secret:${key}`);
    else await this.db.table('meta').put({ key: `secret:${key}`, value: await this.vault.encryptJSON(value, `meta:${key}`) });
  }

  /**
   * Forget what was pulled (another user or server now) and rebuild this user's own unsynced records from the
   * outbox, so what was captured here stays visible until the next pull brings the server's state.
   */
  async forgetPulled() {
    const { db } = this;
    await db.transaction('rw', db.table('entities'), db.table('meta'), db.table('outbox'), async () => {
      await db.table('entities').clear();
      await db.table('meta').bulkDelete(['cursor', 'last_pull_at']);
      const pending = await this._byStatus('pending');
      const byEntity = new Map();
      for (const m of pending) {
        if (!byEntity.has(m.entity_id)) byEntity.set(m.entity_id, m);
      }
      for (const first of byEntity.values()) {
        const kind = first.entity;
        if (!SYNCED_KINDS.includes(kind)) continue;
        const fields = first.fields || {};
        let taskId = kind === 'inspection' ? fields.task_id ?? null : null;
        const inspectionId = kind === 'inspection' ? null : fields.inspection_id ?? null;
        if (!taskId && inspectionId) {
          const parent = pending.find((m) => m.entity === 'inspection' && m.entity_id === inspectionId);
          taskId = parent?.fields?.task_id ?? null;
        }
        const rec = {
          kind, id: first.entity_id, taskId, inspectionId, departmentId: this.departmentId, createdById: first.userId ?? null,
          server: { fields: null, version: first.base_version ?? 0, deleted: false, updatedAt: null },
        };
        await this._refreshView(rec);
        await this._writeEntity(rec, await this._nextOrder());
      }
    });
  }

  /** Pending records of other users of this tablet (their data is under their keys): `[{owner, pending}]`. */
  async othersPending() {
    const counts = new Map();
    await this.db.table('outbox').where('status').equals('pending').each((row) => {
      if (!this._mine(row)) counts.set(row.owner, (counts.get(row.owner) ?? 0) + 1);
    });
    return [...counts].map(([owner, pending]) => ({ owner, pending }));
  }

  async addLog(kind, detail = {}) {
    const at = this._iso();
    await this.db.table('log').add({ at, kind, owner: this.owner, enc: await this.vault.encryptJSON(detail, `log:${at}`) });
  }

  async logEntries(limit = 50) {
    const rows = await this.db.table('log').orderBy('seq').reverse().filter((r) => this._mine(r)).limit(limit).toArray();
    const out = [];
    for (const row of rows) {
      out.push({ seq: row.seq, at: row.at, kind: row.kind, detail: await this.vault.decryptJSON(row.enc, `log:${row.at}`) });
    }
    return out;
  }
}
