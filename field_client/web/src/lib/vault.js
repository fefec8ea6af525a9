// Encryption at rest (WebCrypto only): a random AES-GCM-256 data key encrypts records, the outbox and evidence;
// the data key is wrapped by a key derived from the inspector's password (PBKDF2-SHA-256, 600,000 iterations,
// per-user random salt), so after one online log-in the app unlocks offline with the password.
//
// The failure counter lives in `meta` in clear: it stops guessing at the screen, not an attacker who copies the
// profile — against that, the iteration count is the defence.
import { messageFor } from './messages.js';

export const DEFAULT_ITERATIONS = 600000;
export const MAX_FAILURES = 5;
const CHECK_TEXT = 'inspect-once vault check v1';
const enc = new TextEncoder();
const dec = new TextDecoder();

export class VaultError extends Error {
  constructor(code, extra = {}) {
    super(messageFor(code));
    this.name = 'VaultError';
    this.code = code;
    Object.assign(this, extra);
  }
}

function vaultKey(username) {
  return `vault:${username}`;
}

function failuresKey(username) {
  return `vault-failures:${username}`;
}

function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

function additional(aad) {
  return aad == null ? {} : { additionalData: enc.encode(String(aad)) };
}

async function deriveWrappingKey(password, salt, iterations) {
  const material = await crypto.subtle.importKey('raw', enc.encode(password), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, material,
    { name: 'AES-GCM', length: 256 }, false, ['wrapKey', 'unwrapKey']);
}

export class Vault {
  constructor(username, key, userInfo) {
    this.username = username;
    this._key = key;
    this.userInfo = userInfo ?? null;
  }

  get locked() {
    return this._key == null;
  }

  _need() {
    if (this._key == null) throw new VaultError('vault-locked');
    return this._key;
  }

  async encryptBytes(bytes, aad) {
    const iv = randomBytes(12);
    const data = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, ...additional(aad) }, this._need(), bytes);
    return { iv, data: new Uint8Array(data) };
  }

  async decryptBytes(record, aad) {
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: record.iv, ...additional(aad) }, this._need(),
      record.data);
    return new Uint8Array(plain);
  }

  async encryptJSON(value, aad) {
    return this.encryptBytes(enc.encode(JSON.stringify(value)), aad);
  }

  async decryptJSON(record, aad) {
    return JSON.parse(dec.decode(await this.decryptBytes(record, aad)));
  }
}

async function wrapRecord(key, password, iterations) {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const wrapping = await deriveWrappingKey(password, salt, iterations);
  const wrapped = new Uint8Array(await crypto.subtle.wrapKey('raw', key, wrapping, { name: 'AES-GCM', iv }));
  return { salt, iv, iterations, wrapped };
}

export async function hasVault(db, username) {
  return (await db.table('meta').get(vaultKey(username))) !== undefined;
}

/** A new vault for `username`: a fresh data key wrapped under `password`. */
export async function createVault(db, { username, password, userInfo = null, iterations = DEFAULT_ITERATIONS }) {
  if (!username || typeof password !== 'string' || !password) throw new TypeError('username and password required');
  // Extractable so that rewrapVault can wrap it again under a new password; it never leaves this module in clear.
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
  const vault = new Vault(username, key, userInfo);
  const record = await wrapRecord(key, password, iterations);
  const check = await vault.encryptJSON(CHECK_TEXT, vaultKey(username));
  const info = await vault.encryptJSON(userInfo, `user:${username}`);
  await db.transaction('rw', db.table('meta'), async () => {
    await db.table('meta').put({ key: vaultKey(username), value: { ...record, check, info, createdAt: new Date().toISOString() } });
    await db.table('meta').delete(failuresKey(username));
  });
  return vault;
}

/** Open the vault with the password; counts wrong passwords and locks after MAX_FAILURES in a row. */
export async function unlockVault(db, { username, password, verifiedOnline = false }) {
  const row = await db.table('meta').get(vaultKey(username));
  if (!row) throw new VaultError('no-vault');
  const failures = (await db.table('meta').get(failuresKey(username)))?.value ?? 0;
  if (failures >= MAX_FAILURES && !verifiedOnline) throw new VaultError('locked', { remaining: 0 });
  const { salt, iv, iterations, wrapped, check, info } = row.value;
  let key;
  try {
    const wrapping = await deriveWrappingKey(String(password ?? ''), salt, iterations);
    key = await crypto.subtle.unwrapKey('raw', wrapped, wrapping, { name: 'AES-GCM', iv }, { name: 'AES-GCM', length: 256 },
      true, ['encrypt', 'decrypt']);
  } catch {
    const count = failures + 1;
    await db.table('meta').put({ key: failuresKey(username), value: count });
    if (count >= MAX_FAILURES && !verifiedOnline) throw new VaultError('locked', { remaining: 0 });
    throw new VaultError('wrong-password', { remaining: Math.max(0, MAX_FAILURES - count) });
  }
  const vault = new Vault(username, key, null);
  // GCM already authenticated the unwrap; the check value catches a vault record pieced together from others.
  if ((await vault.decryptJSON(check, vaultKey(username))) !== CHECK_TEXT) throw new VaultError('wrong-password');
  vault.userInfo = await vault.decryptJSON(info, `user:${username}`);
  await db.table('meta').delete(failuresKey(username));
  return vault;
}

/**
 * A new vault for a user whose password changed on the server (the old one, which wraps the key here, is not
 * known): allowed only when nothing of the user waits to go up — their unsynced records and files would become
 * unreadable. Their cached rows are removed (the next pull brings them back), then a fresh vault is created.
 * Throws VaultError('has-pending', {pending, files}) otherwise: the old password must open the vault first.
 */
export async function resetVault(db, { username, password, userInfo = null, iterations = DEFAULT_ITERATIONS }) {
  const mine = (row) => row.owner === username;
  const pending = await db.table('outbox').where('status').equals('pending').filter(mine).count();
  const files = await db.table('media').filter((row) => mine(row) && row.state !== 'done').count();
  if (pending || files) throw new VaultError('has-pending', { pending, files });
  await db.transaction('rw', ['entities', 'outbox', 'conflicts', 'log', 'media', 'chunks'].map((t) => db.table(t)), async () => {
    for (const table of ['entities', 'outbox', 'conflicts', 'log']) await db.table(table).filter(mine).delete();
    const media = await db.table('media').filter(mine).primaryKeys();
    for (const id of media) await db.table('chunks').where('mediaId').equals(id).delete();
    await db.table('media').bulkDelete(media);
  });
  return createVault(db, { username, password, userInfo, iterations });
}

/** Wrap the same data key under a new password (after an online log-in with it); resets the counter. */
export async function rewrapVault(db, vault, { password, iterations } = {}) {
  const key = vault._need();
  const row = await db.table('meta').get(vaultKey(vault.username));
  if (!row) throw new VaultError('no-vault');
  const record = await wrapRecord(key, password, iterations ?? row.value.iterations ?? DEFAULT_ITERATIONS);
  await db.transaction('rw', db.table('meta'), async () => {
    await db.table('meta').put({ key: vaultKey(vault.username), value: { ...row.value, ...record } });
    await db.table('meta').delete(failuresKey(vault.username));
  });
  return vault;
}

/** Update the user information kept (encrypted) with the vault. */
export async function setVaultUserInfo(db, vault, userInfo) {
  const row = await db.table('meta').get(vaultKey(vault.username));
  if (!row) throw new VaultError('no-vault');
  const info = await vault.encryptJSON(userInfo, `user:${vault.username}`);
  await db.table('meta').put({ key: vaultKey(vault.username), value: { ...row.value, info } });
  vault.userInfo = userInfo;
}

export async function vaultFailures(db, username) {
  return (await db.table('meta').get(failuresKey(username)))?.value ?? 0;
}

/** Forget the key in memory (log-off). The wrapped key stays; the password opens it again. */
export function lockVault(vault) {
  if (vault) {
    vault._key = null;
    vault.userInfo = null;
  }
}

/** A token store for Api keeping the pair encrypted in meta.tokens. */
export function vaultTokens(db, vault) {
  const aad = `tokens:${vault.username}`;
  let cached;
  return {
    async get() {
      if (cached !== undefined) return cached;
      const row = await db.table('meta').get('tokens');
      cached = row && row.value && row.value.username === vault.username
        ? await vault.decryptJSON(row.value.enc, aad) : null;
      return cached;
    },
    async set(pair) {
      cached = pair ?? null;
      if (pair == null) await db.table('meta').delete('tokens');
      else await db.table('meta').put({ key: 'tokens', value: { username: vault.username, enc: await vault.encryptJSON(pair, aad) } });
    },
  };
}

export function memoryTokens(initial = null) {
  let pair = initial;
  return {
    async get() { return pair; },
    async set(value) { pair = value ?? null; },
  };
}
