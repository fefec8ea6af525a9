import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import 'fake-indexeddb/auto';
import { FAST } from './helpers.js';
import { openDatabase } from '../src/lib/db.js';
import { captureFile } from '../src/lib/evidence.js';
import { Hlc } from '../src/lib/hlc.js';
import {
  advanceChain, b64url, chainState, deviceKey, fromB64url, keepDeviceKey, locationE7, makeDeviceKey, manifestBytes, nextLink,
  parseManifest, verifyManifest,
} from '../src/lib/manifest.js';
import { validateFields } from '../src/lib/rules.js';
import { FieldStore } from '../src/lib/store.js';
import { createVault, unlockVault } from '../src/lib/vault.js';

const DEVICE = 'SCJG-TAB1';
const INSPECTION = '300f3ba8-cc49-5812-ad8e-d4ed25349486';
const TASK = '7d1c1a52-0c1e-4b2f-9a55-2f0e5b7f3a10';
const USER = '0b8e7d0e-5a7e-4a49-8a0e-3c1d2b4a5f60';
const AT = new Date(Date.UTC(2026, 11, 3, 2, 0, 0));
const plenty = async () => ({ usage: 0, quota: 1e12, free: 1e12, persisted: true });

const FIELDS = {
  device_id: DEVICE, counter: 1, prev: '', sha256: 'ab'.repeat(32), size: 1234, media_type: 'image/jpeg',
  capture_start: '2026-12-03T02:00:00.000Z', capture_end: '2026-12-03T02:00:00.000Z',
  device_clock: '2026-12-03T02:00:01.500Z', media_id: 'c2b1c9a6-3a5e-4d2b-9a1f-6b7c8d9e0f12', task_id: TASK,
  inspection_id: INSPECTION, inspector: USER, location: { lon_e7: 1116000000, lat_e7: 262000000, accuracy_m: 12 },
};

test('the manifest bytes are the fixed keys in order, compact JSON, integers only', () => {
  const bytes = manifestBytes(FIELDS);
  assert.equal(new TextDecoder().decode(bytes),
    '{"v":1,"device_id":"SCJG-TAB1","counter":1,"prev":"","sha256":"' + 'ab'.repeat(32) + '","size":1234,'
    + '"media_type":"image/jpeg","capture_start":"2026-12-03T02:00:00.000Z","capture_end":"2026-12-03T02:00:00.000Z",'
    + '"device_clock":"2026-12-03T02:00:01.500Z","media_id":"c2b1c9a6-3a5e-4d2b-9a1f-6b7c8d9e0f12",'
    + `"task_id":"${TASK}","inspection_id":"${INSPECTION}","inspector":"${USER}",`
    + '"location":{"lat_e7":262000000,"lon_e7":1116000000,"accuracy_m":12}}');
  assert.deepEqual(parseManifest(b64url(bytes)), { v: 1, ...FIELDS, location: { lat_e7: 262000000, lon_e7: 1116000000, accuracy_m: 12 } });
  assert.deepEqual(locationE7({ latitude: 26.2, longitude: 111.6, accuracy: 11.6 }), { lat_e7: 262000000, lon_e7: 1116000000, accuracy_m: 12 });
  assert.equal(b64url(fromB64url('_-8')), '_-8');
  // Nothing off the format is ever signed.
  for (const bad of [{ size: 1.5 }, { counter: 0 }, { prev: 'ab'.repeat(32) }, { capture_start: '2026-12-03T10:00:00+08:00' },
    { location: { lat_e7: 26.2, lon_e7: 1, accuracy_m: 1 } }, { media_id: 'x' }, { extra: 1 }]) {
    assert.throws(() => manifestBytes({ ...FIELDS, ...bad }), TypeError, JSON.stringify(bad));
  }
  const { task_id: _omitted, ...missing } = FIELDS;
  assert.throws(() => manifestBytes(missing), /missing keys task_id/);
  assert.throws(() => manifestBytes({ ...FIELDS, counter: 2 }), /prev/);
});

test('the chain state only ever moves to the next counter', () => {
  assert.deepEqual(nextLink(null), { counter: 1, prev: '' });
  const one = advanceChain(null, { counter: 1, prev: '' }, 'cd'.repeat(32));
  assert.deepEqual(nextLink(one), { counter: 2, prev: 'cd'.repeat(32) });
  assert.throws(() => advanceChain(one, { counter: 1, prev: '' }, 'ef'.repeat(32)), /does not follow/);
  assert.throws(() => advanceChain(one, { counter: 3, prev: 'cd'.repeat(32) }, 'ef'.repeat(32)), /does not follow/);
});

function photo(seed) {
  const bytes = randomBytes(2000 + seed);
  bytes.set([0xff, 0xd8, 0xff, 0xe0], 0);
  return new File([bytes], `IMG_${seed}.jpg`, { type: 'image/jpeg', lastModified: AT.getTime() - 1000 * seed });
}

async function tablet(name, { key = true } = {}) {
  const db = await openDatabase(name);
  if (key) await keepDeviceKey(db, await makeDeviceKey());
  const vault = await createVault(db, { username: 'insp', password: 'pw', userInfo: {}, iterations: FAST });
  return { db, vault, store: storeOf(db, vault) };
}

function storeOf(db, vault) {
  return new FieldStore(db, vault, { deviceId: DEVICE, userId: USER, hlc: new Hlc(DEVICE, () => AT.getTime()), now: () => AT });
}

async function capture(store, vault, seed, extra = {}) {
  return captureFile(store, vault, photo(seed), {
    kind: 'photo', inspectionId: INSPECTION, estimate: plenty, now: () => AT, ...extra,
  });
}

test('a capture signs its manifest with the non-extractable key; the chain survives a restart', async () => {
  const name = `manifest-${process.pid}-${Math.random()}`;
  const { db, vault, store } = await tablet(name);
  const key = await deviceKey(db);
  assert.equal(key.privateKey.extractable, false);
  assert.equal(key.privateKey.algorithm.name, 'Ed25519');
  assert.equal(fromB64url(key.public_key).length, 32);
  // The inspection's task is known to the tablet: the manifest names it.
  await store.put('inspection', INSPECTION, { task_id: TASK, status: 'open' });

  const first = await capture(store, vault, 1, { location: { latitude: 26.2, longitude: 111.6, accuracy: 8 } });
  const second = await capture(store, vault, 2);
  const m1 = parseManifest(first.manifest);
  const m2 = parseManifest(second.manifest);
  assert.equal(m1.counter, 1);
  assert.equal(m1.prev, '');
  assert.equal(m2.counter, 2);
  assert.equal(m2.prev, createHash('sha256').update(fromB64url(first.manifest)).digest('hex'));
  assert.deepEqual(m1.location, { lat_e7: 262000000, lon_e7: 1116000000, accuracy_m: 8 });
  assert.equal(m2.location, null);
  assert.equal(m1.sha256, first.sha256);
  assert.equal(m1.size, first.size);
  assert.equal(m1.media_type, 'image/jpeg');
  assert.equal(m1.media_id, first.id);
  assert.equal(m1.task_id, TASK);
  assert.equal(m1.inspection_id, INSPECTION);
  assert.equal(m1.inspector, USER);
  assert.equal(m1.device_id, DEVICE);
  assert.equal(Date.parse(m1.capture_start), Date.parse(first.capture_start)); // the record's time, in UTC
  assert.match(m1.capture_start, /Z$/);
  assert.equal(m1.device_clock, AT.toISOString());
  assert.equal(fromB64url(first.manifest_signature).length, 64);
  assert.ok(await verifyManifest(key.public_key, first.manifest, first.manifest_signature));
  assert.ok(await verifyManifest(key.public_key, second.manifest, second.manifest_signature));
  assert.ok(!(await verifyManifest(key.public_key, second.manifest, first.manifest_signature)));
  // The mutation the server receives carries both fields, and they pass the server's field rules.
  const sent = (await store.pending()).filter((m) => m.entity === 'media');
  assert.deepEqual(sent.map((m) => m.fields.manifest), [first.manifest, second.manifest]);
  assert.deepEqual(validateFields('media', sent[0].fields, { creating: true }), {});
  assert.ok(validateFields('media', { manifest: 'a+b/=' }).manifest); // base64url only, as the server
  assert.equal(validateFields('media', { manifest: 'abc' }, { current: { manifest: 'abd' } }).manifest, '创建后不能修改');

  // The tablet restarts: the key and the chain come back from IndexedDB.
  db.close();
  const again = await openDatabase(name);
  const reopened = await unlockVault(again, { username: 'insp', password: 'pw' });
  const third = await capture(storeOf(again, reopened), reopened, 3);
  const m3 = parseManifest(third.manifest);
  assert.equal(m3.counter, 3);
  assert.equal(m3.prev, createHash('sha256').update(fromB64url(second.manifest)).digest('hex'));
  assert.ok(await verifyManifest(key.public_key, third.manifest, third.manifest_signature));
  again.close();
});

test('a counter is never reused nor skipped: parallel captures, and a capture whose record was not kept', async () => {
  const { db, vault, store } = await tablet(`manifest-${process.pid}-${Math.random()}`);
  const parallel = await Promise.all([1, 2, 3, 4].map((seed) => capture(store, vault, seed)));
  assert.deepEqual(parallel.map((m) => parseManifest(m.manifest).counter).sort(), [1, 2, 3, 4]);

  // The record's write fails: the transaction that signed is undone with it, the counter stays where it was.
  const put = store.put.bind(store);
  store.put = async (kind, id, fields, options) => {
    store.put = put;
    return put(kind, id, fields, { ...options, extend: async (args) => { await options.extend(args); throw new Error('disk'); } });
  };
  await assert.rejects(capture(store, vault, 5), /disk/);
  assert.equal((await chainState(db, DEVICE)).counter, 4);
  const next = await capture(store, vault, 6);
  assert.equal(parseManifest(next.manifest).counter, 5);
  const counters = new Set((await store.list('media')).map((m) => parseManifest(m.manifest).counter));
  assert.equal(counters.size, 5);
  db.close();
});

test('a tablet enrolled before keys existed captures unsigned records', async () => {
  const { db, vault, store } = await tablet(`manifest-${process.pid}-${Math.random()}`, { key: false });
  const media = await capture(store, vault, 1);
  assert.equal(media.manifest, undefined);
  assert.equal(await chainState(db, DEVICE), null);
  db.close();
});
