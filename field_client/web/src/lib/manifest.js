// Capture manifests signed by the tablet (issue 17; the format is fixed in docs/field-app.md, "Signed capture
// manifests"): at capture the tablet signs, with its own Ed25519 key, the file's hash and size, its type and
// capture times, the device, inspector, task, inspection and media record, a per-device counter and the hash of the
// previous manifest of this device. The server verifies the signature over the exact bytes it receives and parses
// them; it never re-serialises them, so the bytes are made here once and travel base64url-encoded.
//
// The key pair is made with WebCrypto before enrolment, its private half not extractable, and kept (as CryptoKey
// objects: IndexedDB stores them as they are) in `meta.device_key` once the server accepted the enrolment; the chain state of a device, `{counter, hash}`
// of its last manifest, in `meta['manifest_chain:<device id>']`, written in the same transaction as the media
// record it signs, so a counter is never used twice and never skipped by a capture that was not kept.
import Dexie from 'dexie';

export const MANIFEST_VERSION = 1;
export const MANIFEST_KEYS = Object.freeze(['v', 'device_id', 'counter', 'prev', 'sha256', 'size', 'media_type',
  'capture_start', 'capture_end', 'device_clock', 'media_id', 'task_id', 'inspection_id', 'inspector', 'location']);
export const KEY_META = 'device_key';
export const ED25519 = Object.freeze({ name: 'Ed25519' });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const UTC_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

const subtleOf = (subtle) => subtle ?? globalThis.crypto.subtle;
// WebCrypto's promises are not IndexedDB requests: inside a Dexie transaction they must go through waitFor.
const wait = (promise) => (Dexie.currentTransaction ? Dexie.waitFor(promise) : promise);

export function chainKey(deviceId) {
  return `manifest_chain:${deviceId}`;
}

// ---- encodings -------------------------------------------------------------------------------------------

/** base64url without padding (RFC 4648 §5) of bytes. */
export function b64url(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = '';
  for (let i = 0; i < u8.length; i += 0x8000) binary += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The bytes of a base64url text (padding optional); throws TypeError on anything else. */
export function fromB64url(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new TypeError('not base64url');
  const b64 = text.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Hex SHA-256 of bytes: a manifest's hash, the next manifest's `prev`. */
export async function sha256Hex(bytes, { subtle } = {}) {
  return hex(await wait(subtleOf(subtle).digest('SHA-256', bytes)));
}

/** A time (Date, epoch ms or ISO 8601 with an offset) as ISO 8601 UTC with Z, to the millisecond. */
export function isoUtc(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (value == null || value === '' || Number.isNaN(date.getTime())) throw new TypeError(`not a time: ${value}`);
  return date.toISOString();
}

/** A Geolocation position's coordinates as the manifest's integers (degrees × 10⁷, metres), or null. */
export function locationE7(coords) {
  if (!coords) return null;
  const { latitude, longitude, accuracy } = coords;
  if (![latitude, longitude].every(Number.isFinite) || Math.abs(latitude) > 90 || Math.abs(longitude) > 180) return null;
  return {
    lat_e7: Math.round(latitude * 1e7), lon_e7: Math.round(longitude * 1e7),
    accuracy_m: Number.isFinite(accuracy) && accuracy >= 0 ? Math.round(accuracy) : 0,
  };
}

// ---- the bytes -----------------------------------------------------------------------------------------------

function check(ok, what) {
  if (!ok) throw new TypeError(`manifest: ${what}`);
}

const nullableUuid = (value) => value === null || (typeof value === 'string' && UUID.test(value));

/**
 * The manifest's bytes: UTF-8 JSON of exactly the manifest keys, in their order, integers only. `fields` carries
 * every key but `v`. Throws TypeError naming what does not fit the format, so nothing malformed is ever signed.
 */
export function manifestBytes(fields) {
  const m = { v: MANIFEST_VERSION, ...fields };
  const extra = Object.keys(m).filter((k) => !MANIFEST_KEYS.includes(k));
  check(extra.length === 0, `unknown keys ${extra.join(', ')}`);
  const missing = MANIFEST_KEYS.filter((k) => !Object.hasOwn(m, k));
  check(missing.length === 0, `missing keys ${missing.join(', ')}`);
  check(m.v === MANIFEST_VERSION, 'v must be 1');
  check(typeof m.device_id === 'string' && m.device_id.length > 0 && m.device_id.length <= 64, 'device_id');
  check(Number.isSafeInteger(m.counter) && m.counter >= 1, 'counter must be an integer ≥ 1');
  check(m.counter === 1 ? m.prev === '' : (typeof m.prev === 'string' && HEX64.test(m.prev)),
    'prev must be "" for counter 1, else the hex SHA-256 of the previous manifest');
  check(typeof m.sha256 === 'string' && HEX64.test(m.sha256), 'sha256 must be lowercase hex');
  check(Number.isSafeInteger(m.size) && m.size >= 0, 'size must be an integer');
  check(typeof m.media_type === 'string' && m.media_type.length > 0 && m.media_type.length <= 100, 'media_type');
  for (const key of ['capture_start', 'capture_end', 'device_clock']) {
    check(typeof m[key] === 'string' && UTC_ISO.test(m[key]) && !Number.isNaN(Date.parse(m[key])),
      `${key} must be ISO 8601 UTC with Z`);
  }
  for (const key of ['media_id', 'task_id', 'inspection_id', 'inspector']) check(nullableUuid(m[key]), `${key} uuid or null`);
  if (m.location !== null) {
    const l = m.location;
    check(l && typeof l === 'object' && !Array.isArray(l)
      && Object.keys(l).sort().join(',') === 'accuracy_m,lat_e7,lon_e7'
      && [l.lat_e7, l.lon_e7, l.accuracy_m].every(Number.isSafeInteger), 'location {lat_e7, lon_e7, accuracy_m} integers');
  }
  const ordered = {};
  for (const key of MANIFEST_KEYS) {
    ordered[key] = key === 'location' && m.location
      ? { lat_e7: m.location.lat_e7, lon_e7: m.location.lon_e7, accuracy_m: m.location.accuracy_m }
      : m[key];
  }
  return new TextEncoder().encode(JSON.stringify(ordered));
}

/** The manifest a base64url text (or its bytes) carries, parsed (for display and tests). */
export function parseManifest(encoded) {
  const bytes = typeof encoded === 'string' ? fromB64url(encoded) : encoded;
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

// ---- the chain -------------------------------------------------------------------------------------------

/** Where the next manifest of a device stands, from its chain state (`null`: none signed yet). */
export function nextLink(state) {
  if (state == null) return { counter: 1, prev: '' };
  check(Number.isSafeInteger(state.counter) && state.counter >= 1 && HEX64.test(state.hash ?? ''), 'bad chain state');
  return { counter: state.counter + 1, prev: state.hash };
}

/** The chain state once the manifest `{counter, prev}` with hash `hash` is signed; refuses anything but the next. */
export function advanceChain(state, { counter, prev }, hash) {
  const expected = nextLink(state);
  check(counter === expected.counter && prev === expected.prev, `counter ${counter} does not follow the chain`);
  check(HEX64.test(hash), 'hash');
  return { counter, hash };
}

// ---- the key -------------------------------------------------------------------------------------------------

/** A new Ed25519 key pair whose private key cannot be exported. */
export async function generateDeviceKey({ subtle } = {}) {
  return subtleOf(subtle).generateKey(ED25519, false, ['sign', 'verify']);
}

/** The raw 32-byte public key, base64url (what the server keeps). */
export async function exportPublicKey(publicKey, { subtle } = {}) {
  return b64url(await wait(subtleOf(subtle).exportKey('raw', publicKey)));
}

/** The tablet's key as stored: `{privateKey, publicKey, public_key (base64url), created_at}`, or null. */
export async function deviceKey(db) {
  return (await db.table('meta').get(KEY_META))?.value ?? null;
}

/**
 * A new key record `{privateKey, publicKey, public_key (base64url), created_at}`, not yet kept: the app sends
 * `public_key` with the enrolment code and keeps the record only once the server has accepted it (a refused code
 * leaves the tablet's current key in place). Each enrolment brings a new key; the server revokes the earlier one.
 */
export async function makeDeviceKey({ subtle, now = () => new Date() } = {}) {
  const pair = await generateDeviceKey({ subtle });
  return {
    privateKey: pair.privateKey, publicKey: pair.publicKey, public_key: await exportPublicKey(pair.publicKey, { subtle }),
    created_at: isoUtc(now()),
  };
}

/** Keep a key record as the tablet's signing key (in the caller's transaction, if any). */
export async function keepDeviceKey(db, record) {
  check(record?.privateKey && record?.publicKey && typeof record.public_key === 'string', 'not a key record');
  await db.table('meta').put({ key: KEY_META, value: record });
  return record;
}

/** Where the device's chain stands: `{counter, hash}` of its last manifest, or null. */
export async function chainState(db, deviceId) {
  return (await db.table('meta').get(chainKey(deviceId)))?.value ?? null;
}

/**
 * Sign the manifest of one capture and advance the device's chain. Call it inside the transaction that writes the
 * media record (it needs `meta` in that transaction), so the counter moves exactly when the record is kept.
 * `fields`: every manifest key but `v`, `device_id`, `counter`, `prev` and `device_clock`.
 * Returns null when the tablet has no key (enrolled before keys existed: its records stay unsigned), else
 * `{manifest, manifest_signature, counter, hash, bytes}`.
 */
export async function signCapture(db, deviceId, fields, { subtle, now = () => new Date() } = {}) {
  const key = await deviceKey(db);
  if (!key?.privateKey) return null;
  const meta = db.table('meta');
  const state = await chainState(db, deviceId);
  const link = nextLink(state);
  const bytes = manifestBytes({ device_id: deviceId, ...link, ...fields, device_clock: isoUtc(now()) });
  const signature = new Uint8Array(await wait(subtleOf(subtle).sign(ED25519, key.privateKey, bytes)));
  const hash = await sha256Hex(bytes, { subtle });
  await meta.put({ key: chainKey(deviceId), value: advanceChain(state, link, hash) });
  return { manifest: b64url(bytes), manifest_signature: b64url(signature), counter: link.counter, hash, bytes };
}

/** True if `signature` (base64url) is the key's signature over the manifest (base64url): for tests and checks. */
export async function verifyManifest(publicKey, manifest, signature, { subtle } = {}) {
  const s = subtleOf(subtle);
  const key = typeof publicKey === 'string'
    ? await s.importKey('raw', fromB64url(publicKey), ED25519, false, ['verify'])
    : publicKey;
  return s.verify(ED25519, key, fromB64url(signature), fromB64url(manifest));
}
