// The app's state between the screens and the core library (src/lib): the enrolled device, the unlocked vault,
// the store, sync and uploads. Screens read `session` and call its methods; it fires 'change' when anything a
// screen shows may have changed.
import { Api, ApiError } from '../lib/api.js';
import { inspectionCodeFor } from '../lib/codes.js';
import { openDatabase } from '../lib/db.js';
import { captureFile, cleanupInterruptedCaptures, readMedia, storageEstimate } from '../lib/evidence.js';
import { inspectionIdFor, uuid4 } from '../lib/ids.js';
import { keepDeviceKey, makeDeviceKey } from '../lib/manifest.js';
import { FieldStore } from '../lib/store.js';
import { SyncEngine, autoSync } from '../lib/sync.js';
import { Uploader } from '../lib/uploader.js';
import {
  VaultError, createVault, hasVault, lockVault, memoryTokens, resetVault, rewrapVault, setVaultUserInfo, unlockVault,
  vaultFailures, vaultTokens,
} from '../lib/vault.js';

const LAST_USER = 'inspect-once-last-user'; // a user name only: it fills the log-in form

class Session extends EventTarget {
  constructor() {
    super();
    this.db = null;
    this.device = null;
    this.vault = null;
    this.api = null;
    this.store = null;
    this.engine = null;
    this.uploader = null;
    this.user = null;
    this.online = navigator.onLine;
    this.uploadProgress = new Map(); // media id -> {sent, total}
    this.mediaUrls = new Map(); // media id -> object URL of the decrypted photo (while unlocked)
    this.storage = null;
    this.maxUploadBytes = null;
    this.departments = {}; // department id -> {id, code, name}
    this.syncing = false;
    this.lastReport = null;
    this._stopAuto = null;
    this._unsubscribers = [];
    window.addEventListener('online', () => { this.online = true; this.changed(); });
    window.addEventListener('offline', () => { this.online = false; this.changed(); });
  }

  changed() {
    this.dispatchEvent(new Event('change'));
  }

  get baseUrl() {
    return window.location.origin;
  }

  async start() {
    this.db = await openDatabase();
    this.device = (await this.db.table('meta').get('device'))?.value ?? null;
    // A capture cut short by a closed tab left chunks of a file that never became evidence.
    await cleanupInterruptedCaptures(this.db).catch(() => 0);
    this.storage = await storageEstimate().catch(() => null);
    this.changed();
  }

  get unlocked() {
    return Boolean(this.vault && !this.vault.locked && this.store);
  }

  lastUsername() {
    return localStorage.getItem(LAST_USER) || '';
  }

  // ---- enrolment ---------------------------------------------------------------------------------------------

  static normaliseCode(raw) {
    const letters = String(raw || '').toUpperCase().replace(/[^A-Z0-9]/g, '');
    return letters.length === 12 ? `${letters.slice(0, 4)}-${letters.slice(4, 8)}-${letters.slice(8)}` : null;
  }

  async enrol(code) {
    const api = new Api(this.baseUrl, { tokens: memoryTokens() });
    // A new signing key, made before the code is spent: the server records it with the enrolment (and revokes the
    // key of an earlier one). It replaces the tablet's key only once the server accepted it.
    const key = await makeDeviceKey();
    const device = await api.enrol(code, { publicKey: key.public_key });
    await this.db.transaction('rw', this.db.table('meta'), async () => {
      await this.db.table('meta').put({ key: 'device', value: device });
      await keepDeviceKey(this.db, key);
    });
    this.device = device;
    this.changed();
    return device;
  }

  // ---- log-in, offline unlock, log-off -----------------------------------------------------------------------

  async hasLocalAccount(username) {
    return Boolean(username) && hasVault(this.db, username);
  }

  async failures(username) {
    return vaultFailures(this.db, username);
  }

  /** Online log-in bound to this tablet; opens (or creates) the user's vault with the same password. */
  async login(username, password, oldPassword = null) {
    const probe = new Api(this.baseUrl, { tokens: memoryTokens() });
    const { user, tokens } = await probe.login({
      username, password, deviceId: this.device.device_id, deviceSecret: this.device.device_secret,
    });
    let vault;
    if (await hasVault(this.db, username)) {
      try {
        // The server has just accepted this password: a lock from wrong offline tries is lifted.
        vault = await unlockVault(this.db, { username, password, verifiedOnline: true });
      } catch (error) {
        if (!(error instanceof VaultError) || !['wrong-password', 'locked'].includes(error.code)) throw error;
        // The password was changed on the server since this tablet's vault was made with the old one.
        vault = oldPassword
          ? await rewrapVault(this.db, await unlockVault(this.db, { username, password: oldPassword, verifiedOnline: true }),
            { password })
          : await resetVault(this.db, { username, password, userInfo: { username, ...user } }); // refused while records wait
      }
    } else {
      vault = await createVault(this.db, { username, password, userInfo: { username, ...user } });
    }
    const info = { ...(vault.userInfo || {}), username, ...user };
    const kept = vaultTokens(this.db, vault);
    await kept.set(tokens);
    const api = new Api(this.baseUrl, { tokens: kept, onSessionLost: () => this.sessionLost() });
    try {
      const person = await api.get(`/users/${user.id}`);
      if (person?.full_name) info.full_name = person.full_name;
    } catch {
      // Only the name shown in the header; the task's team carries it too.
    }
    await setVaultUserInfo(this.db, vault, info);
    await this.open(vault, api, username);
    this.refreshUploadLimit();
    return info;
  }

  /** Offline: the password unwraps the data key kept on the tablet. */
  async unlock(username, password) {
    const vault = await unlockVault(this.db, { username, password });
    const api = new Api(this.baseUrl, { tokens: vaultTokens(this.db, vault), onSessionLost: () => this.sessionLost() });
    await this.open(vault, api, username);
    return vault.userInfo;
  }

  async open(vault, api, username) {
    const previous = (await this.db.table('meta').get('last_user'))?.value;
    this.vault = vault;
    this.api = api;
    this.user = vault.userInfo || { username };
    this.store = new FieldStore(this.db, vault, {
      deviceId: this.device.device_id, userId: this.user.id, departmentId: this.user.department_id ?? null,
    });
    if (previous && previous !== username) {
      // Pulled data of another inspector is encrypted under their key: pull again for this one.
      await this.store.forgetPulled();
    }
    await this.db.table('meta').put({ key: 'last_user', value: username });
    localStorage.setItem(LAST_USER, username);
    this.engine = new SyncEngine({ api, store: this.store, deviceId: this.device.device_id });
    this.uploader = new Uploader({ api, db: this.db, vault, baseUrl: this.baseUrl, store: this.store });
    this.maxUploadBytes = (await this.store.getMeta('max_upload_bytes')) ?? null;
    this.departments = (await this.store.getSecret('departments')) ?? {};
    if (this.device.department) this.departments[this.device.department.id] = this.device.department;
    // Not 'status': the screens re-read the status on every change, which would announce it again.
    this._unsubscribers = ['synced', 'error', 'conflict', 'set-aside', 'progress']
      .map((name) => this.engine.on(name, () => this.changed()));
    this._stopAuto = autoSync(this.engine, window, {
      uploader: { uploadAll: () => this.uploadAll() },
    });
    await this.engine.refreshStatus();
    this.changed();
    if (navigator.onLine) this.sync().catch(() => {});
  }

  logoff() {
    this._stopAuto?.();
    for (const stop of this._unsubscribers) stop?.();
    this._unsubscribers = [];
    for (const url of this.mediaUrls.values()) URL.revokeObjectURL(url);
    this.mediaUrls.clear();
    lockVault(this.vault);
    this.vault = null;
    this.store = null;
    this.engine = null;
    this.uploader = null;
    this.api = null;
    this.user = null;
    this.changed();
  }

  sessionLost() {
    this.sessionExpired = true;
    this.changed();
  }

  // ---- sync and uploads -----------------------------------------------------------------------------------------

  async sync() {
    if (!this.engine) return null;
    this.syncing = true;
    this.changed();
    try {
      this.lastReport = await this.engine.syncOnce();
      this.sessionExpired = false;
      await this.learnDepartments();
      await this.uploadAll();
      this.refreshUploadLimit();
      return this.lastReport;
    } finally {
      this.syncing = false;
      this.storage = await storageEstimate().catch(() => this.storage);
      this.changed();
    }
  }

  async uploadAll() {
    if (!this.uploader) return null;
    const result = await this.uploader.uploadAll(({ mediaId, sent, total }) => {
      this.uploadProgress.set(mediaId, { sent, total });
      this.changed();
    });
    this.changed();
    return result;
  }

  async retryUploads() {
    await this.uploader.retryFailed();
    return this.uploadAll();
  }

  /** The server's upload limit (tus `Tus-Max-Size`), so a file too large is refused at capture, not at sync. */
  async refreshUploadLimit() {
    try {
      const answer = await fetch(`${this.baseUrl}/api/v1/uploads/`, { method: 'OPTIONS', headers: { 'Tus-Resumable': '1.0.0' } });
      const limit = Number(answer.headers.get('Tus-Max-Size'));
      if (limit > 0 && this.store) {
        this.maxUploadBytes = limit;
        await this.store.setMeta('max_upload_bytes', limit);
      }
    } catch {
      // Offline: the last known limit stays.
    }
  }

  /** Names of the departments of joint tasks (the joint record names them; pull carries only their ids). */
  async learnDepartments() {
    const tasks = await this.store.list('task');
    let learnt = false;
    for (const task of tasks) {
      const ids = new Set((task.team || []).map((m) => m.department_id));
      if (task.department_id) ids.add(task.department_id);
      if ([...ids].every((id) => this.departments[id])) continue;
      try {
        const record = await this.api.get(`/tasks/${task.id}/joint-record`);
        for (const d of record?.departments || []) this.departments[d.id] = { id: d.id, code: d.code, name: d.name };
        learnt = true;
      } catch {
        // Not essential: the screens fall back to the teammates' names.
      }
    }
    if (learnt) await this.store.setSecret('departments', this.departments);
  }

  async syncState() {
    const status = this.engine ? await this.engine.refreshStatus() : null;
    const [setAside, conflicts, media, log] = this.store
      ? await Promise.all([this.store.setAsideList(), this.store.conflicts(), this.uploader.states(), this.store.logEntries(20)])
      : [[], [], [], []];
    this.storage = await storageEstimate().catch(() => this.storage);
    return { status, setAside, conflicts, media, log, storage: this.storage };
  }

  // ---- records ------------------------------------------------------------------------------------------------

  departmentName(id) {
    return this.departments[id]?.name ?? null;
  }

  async tasks() {
    const tasks = await this.store.list('task');
    const result = [];
    for (const task of tasks) {
      const inspection = await this.store.get('inspection', await inspectionIdFor(task.id));
      result.push({ task, inspection });
    }
    return result;
  }

  async taskView(taskId) {
    const task = await this.store.get('task', taskId);
    if (!task) return null;
    const inspectionId = await inspectionIdFor(taskId);
    const inspection = await this.store.get('inspection', inspectionId);
    const items = [];
    for (const id of task.check_item_ids || []) {
      const item = await this.store.get('check_item', id);
      items.push(item || { id, title: id, missing: true });
    }
    const [findings, media, signatures, certificates] = await Promise.all([
      this.store.list('finding', { inspectionId }), this.store.list('media', { inspectionId }),
      this.store.list('signature', { inspectionId }), this.store.list('certificate'),
    ]);
    return { task, inspectionId, inspection, items, findings, media, signatures, certificates };
  }

  now() {
    return new Date().toISOString();
  }

  async startInspection(taskId) {
    const id = await inspectionIdFor(taskId);
    const existing = await this.store.get('inspection', id);
    if (!existing) {
      // The record carries the code the team holds for the visit (the one shown to the enterprise): the server
      // checks it and flags a visit begun without one.
      const task = await this.store.get('task', taskId);
      await this.store.put('inspection', id, {
        task_id: taskId, started_at: this.now(), status: 'open', inspection_code: inspectionCodeFor(task),
      });
    }
    this.changed();
    return id;
  }

  async updateInspection(taskId, fields) {
    const id = await inspectionIdFor(taskId);
    await this.store.put('inspection', id, fields);
    this.changed();
  }

  /** The finding this department keeps for a check item (created on first answer). */
  async saveFinding(inspectionId, checkItemId, fields, existingId) {
    const id = existingId || uuid4();
    const base = existingId ? {} : { inspection_id: inspectionId, check_item_id: checkItemId, evidence: [] };
    await this.store.put('finding', id, { ...base, ...fields, recorded_at: this.now() });
    this.changed();
    return id;
  }

  /**
   * Where the tablet is, for the capture's manifest: only when the inspector has already allowed location (no prompt
   * in the middle of a capture) and a fix comes quickly; null otherwise.
   */
  async position() {
    try {
      const allowed = await navigator.permissions?.query({ name: 'geolocation' });
      if (allowed?.state !== 'granted' || !navigator.geolocation) return null;
      return await new Promise((resolve) => {
        navigator.geolocation.getCurrentPosition((p) => resolve(p.coords), () => resolve(null),
          { maximumAge: 60_000, timeout: 3_000, enableHighAccuracy: true });
      });
    } catch {
      return null;
    }
  }

  async capture(file, { kind, inspectionId, findingId, proves, onProgress }) {
    const media = await captureFile(this.store, this.vault, file, {
      kind, inspectionId, findingId, proves, maxBytes: this.maxUploadBytes ?? undefined, deviceId: this.device.device_id,
      location: await this.position(), onProgress,
    });
    this.storage = await storageEstimate().catch(() => this.storage);
    this.changed();
    return media;
  }

  async mediaUrl(media) {
    if (this.mediaUrls.has(media.id)) return this.mediaUrls.get(media.id);
    const blob = await readMedia(this.db, this.vault, media.id, media.content_type);
    const url = URL.createObjectURL(blob);
    this.mediaUrls.set(media.id, url);
    return url;
  }

  async saveSignature(inspectionId, blob, { signerRole, signerName }) {
    const file = new File([blob], `signature-${Date.now()}.png`, { type: 'image/png' });
    const media = await this.capture(file, { kind: 'signature', inspectionId, proves: 'signature' });
    await this.store.put('signature', uuid4(), {
      inspection_id: inspectionId, signer_role: signerRole, signer_name: signerName, media_id: media.id,
      signed_at: this.now(),
    });
    this.changed();
    return media;
  }
}

export { ApiError, VaultError };
export const session = new Session();
export const normaliseCode = Session.normaliseCode;
