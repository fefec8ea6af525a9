import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { freshDb, freshVault, dumpDatabase } from './helpers.js';
import { FieldStore } from '../src/lib/store.js';
import { Hlc } from '../src/lib/hlc.js';
import {
  captureFile, CaptureError, CHUNK_SIZE, readMedia, cleanupInterruptedCaptures, sniffImage, sniffVideo, storageEstimate,
} from '../src/lib/evidence.js';

const INSPECTION = '300f3ba8-cc49-5812-ad8e-d4ed25349486';
const JPEG = [0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46];
const plenty = async () => ({ usage: 0, quota: 1e12, free: 1e12, persisted: true });

async function setup() {
  const db = await freshDb();
  const vault = await freshVault(db);
  const store = new FieldStore(db, vault, { deviceId: 'SCJG-TAB1', userId: 'u-1', hlc: new Hlc('SCJG-TAB1', () => 1764120000000) });
  return { db, vault, store };
}

function photoBytes(size) {
  const bytes = randomBytes(size);
  bytes.set(JPEG, 0);
  return bytes;
}

/** A Blob that records every slice read from it, to prove the file is never read whole. */
function watchedFile(bytes, type, name) {
  const file = new File([bytes], name, { type, lastModified: Date.UTC(2025, 10, 26, 1, 2, 3) });
  const reads = [];
  return {
    reads, size: file.size, type: file.type, name: file.name, lastModified: file.lastModified,
    slice(start, end) {
      reads.push(end - start);
      return file.slice(start, end);
    },
  };
}

test('a multi-chunk photo is hashed while it streams; the hash is the file\'s SHA-256', async () => {
  const { db, vault, store } = await setup();
  const bytes = photoBytes(2 * CHUNK_SIZE + 12345);
  const file = watchedFile(bytes, 'image/jpeg', '现场照片.jpg');
  const progress = [];
  const media = await captureFile(store, vault, file, { kind: 'photo', inspectionId: INSPECTION, maxBytes: 10 * CHUNK_SIZE,
    estimate: plenty, onProgress: (done, total) => progress.push([done, total]) });
  assert.equal(media.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.equal(media.size, bytes.length);
  assert.equal(media.content_type, 'image/jpeg');
  assert.equal(media.file_name, '现场照片.jpg');
  assert.equal(media.proves, 'scene');
  assert.equal(media.device_id, 'SCJG-TAB1');
  assert.equal(media.inspection_id, INSPECTION);
  assert.equal(media.capture_start, media.capture_end);
  assert.equal(Date.parse(media.capture_start), Date.UTC(2025, 10, 26, 1, 2, 3));
  assert.ok(file.reads.every((n) => n <= CHUNK_SIZE), `reads: ${file.reads}`);
  assert.equal(await db.table('chunks').where('mediaId').equals(media.id).count(), 3);
  assert.deepEqual(progress.at(-1), [bytes.length, bytes.length]);
  const row = await db.table('media').get(media.id);
  assert.equal(row.state, 'waiting');
  assert.equal(row.sha256, media.sha256);
  assert.equal(row.chunkCount, 3);
  // The media record went to the outbox with the fields the server expects.
  const [mutation] = await store.pending();
  assert.equal(mutation.entity, 'media');
  assert.deepEqual(Object.keys(mutation.fields).sort(), ['capture_end', 'capture_start', 'content_type', 'device_id',
    'file_name', 'inspection_id', 'proves', 'sha256', 'size']);
  // Reading it back gives the same bytes; the stored chunks are not the photo's bytes.
  const back = new Uint8Array(await (await readMedia(db, vault, media.id)).arrayBuffer());
  assert.ok(Buffer.from(back).equals(bytes));
  const dump = await dumpDatabase(db);
  assert.ok(!dump.includes(bytes.subarray(100, 164).toString('latin1')), 'photo bytes in clear');
  assert.ok(!dump.includes('现场照片'), 'file name in clear');
});

test('a video is accepted by its container; a finding gets the media as evidence', async () => {
  const { vault, store } = await setup();
  await store.put('finding', 'f-1', { inspection_id: INSPECTION, check_item_id: 'c', result: 'non_compliant', evidence: [] });
  const mp4 = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypmp42'), randomBytes(5000)]);
  const media = await captureFile(store, vault, new File([mp4], 'clip.mp4', { type: 'video/mp4' }),
    { kind: 'video', inspectionId: INSPECTION, findingId: 'f-1', estimate: plenty });
  assert.equal(media.content_type, 'video/mp4');
  assert.deepEqual((await store.get('finding', 'f-1')).evidence, [media.id]);
  const sig = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
  const signature = await captureFile(store, vault, new Blob([sig], { type: 'image/png' }),
    { kind: 'signature', inspectionId: INSPECTION, estimate: plenty });
  assert.equal(signature.proves, 'signature');
});

test('what is not a photo or video is refused at capture, and nothing is kept', async () => {
  const { db, vault, store } = await setup();
  const cases = [
    [new File(['这不是照片'], 'note.txt', { type: 'text/plain' }), 'photo'],
    [new File(['plain text pretending'], 'fake.jpg', { type: 'image/jpeg' }), 'photo'],
    [new File([Buffer.from(JPEG)], 'photo.jpg', { type: 'image/jpeg' }), 'video'],
    [new File(['%PDF-1.7'], 'doc.mp4', { type: 'video/mp4' }), 'video'],
  ];
  for (const [file, kind] of cases) {
    await assert.rejects(captureFile(store, vault, file, { kind, inspectionId: INSPECTION, estimate: plenty }), (e) => {
      assert.ok(e instanceof CaptureError, String(e));
      assert.equal(e.code, 'not-media', file.name);
      assert.match(e.message, /不是照片或视频/);
      return true;
    });
  }
  await assert.rejects(captureFile(store, vault, new File([], 'e.jpg', { type: 'image/jpeg' }), { kind: 'photo', inspectionId: INSPECTION }),
    { code: 'empty' });
  assert.equal(await db.table('chunks').count(), 0);
  assert.equal(await db.table('media').count(), 0);
  assert.deepEqual(await store.pending(), []);
});

test('a file over the server\'s upload limit is refused at capture, not at send time', async () => {
  const { db, vault, store } = await setup();
  const file = new File([photoBytes(4096)], 'big.jpg', { type: 'image/jpeg' });
  await assert.rejects(captureFile(store, vault, file, { kind: 'photo', inspectionId: INSPECTION, maxBytes: 4095, estimate: plenty }),
    (e) => e.code === 'too-large' && e.maxBytes === 4095 && /大小上限/.test(e.message));
  assert.equal(await db.table('media').count(), 0);
});

test('no room on the tablet: refused before writing, what was stored stays', async () => {
  const { db, vault, store } = await setup();
  const first = await captureFile(store, vault, new File([photoBytes(1000)], 'a.jpg', { type: 'image/jpeg' }),
    { kind: 'photo', inspectionId: INSPECTION, estimate: plenty });
  const full = async () => ({ usage: 99e6, quota: 1e8, free: 1e6, persisted: false });
  await assert.rejects(captureFile(store, vault, new File([photoBytes(2 * CHUNK_SIZE)], 'b.jpg', { type: 'image/jpeg' }),
    { kind: 'photo', inspectionId: INSPECTION, estimate: full }), (e) => e.code === 'quota' && /存储空间不足/.test(e.message));
  // The browser refusing a write midway is reported the same way and leaves no half file.
  const quotaVault = Object.create(vault);
  let n = 0;
  quotaVault.encryptBytes = async (...args) => {
    if (++n === 2) throw new DOMException('full', 'QuotaExceededError');
    return vault.encryptBytes(...args);
  };
  await assert.rejects(captureFile(store, quotaVault, new File([photoBytes(3 * CHUNK_SIZE)], 'c.jpg', { type: 'image/jpeg' }),
    { kind: 'photo', inspectionId: INSPECTION, estimate: plenty }), { code: 'quota' });
  assert.deepEqual((await db.table('media').toArray()).map((m) => m.id), [first.id]);
  assert.equal(await db.table('chunks').count(), 1);
  assert.equal((await store.list('media')).length, 1);
});

test('an interrupted capture is cleaned up at the next start', async () => {
  const { db } = await setup();
  await db.table('media').put({ id: 'm-x', state: 'capturing', size: 10, chunkCount: 1 });
  await db.table('chunks').put({ mediaId: 'm-x', index: 0, iv: new Uint8Array(12), data: new Uint8Array(4) });
  await db.table('media').put({ id: 'm-ok', state: 'waiting', size: 10, chunkCount: 1 });
  assert.equal(await cleanupInterruptedCaptures(db), 1);
  assert.deepEqual((await db.table('media').toArray()).map((m) => m.id), ['m-ok']);
  assert.equal(await db.table('chunks').count(), 0);
});

test('magic bytes', () => {
  assert.equal(sniffImage(new Uint8Array(JPEG)), 'image/jpeg');
  assert.equal(sniffImage(new Uint8Array([...Buffer.from('RIFF'), 0, 0, 0, 0, ...Buffer.from('WEBPVP8 ')])), 'image/webp');
  assert.equal(sniffImage(new Uint8Array([0, 0, 0, 0x18, ...Buffer.from('ftypheic')])), 'image/heic');
  assert.equal(sniffVideo(new Uint8Array([0, 0, 0, 0x18, ...Buffer.from('ftypheic')])), null);
  assert.equal(sniffVideo(new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 1])), 'video/webm');
  assert.equal(sniffImage(Buffer.from('hello world')), null);
});

test('storage estimate without a browser says it cannot tell', async () => {
  const estimate = await storageEstimate();
  if (!globalThis.navigator?.storage) assert.deepEqual(estimate, { usage: null, quota: null, free: null, persisted: null });
});

test('a media record the server refuses marks its file failed with the reason; the file stays', async () => {
  const { db, vault, store } = await setup();
  const media = await captureFile(store, vault, new File([photoBytes(2000)], 'x.jpg', { type: 'image/jpeg' }),
    { kind: 'photo', inspectionId: INSPECTION, estimate: plenty });
  const [m] = await store.pending();
  await store.applyPushResults([{ id: m.id, status: 'rejected', code: 'record-full', reason: 'Record full' }]);
  const row = await db.table('media').get(media.id);
  assert.equal(row.state, 'failed');
  assert.equal(row.error.code, 'record-full');
  assert.match(row.error.reason, /上限/);
  assert.equal(await db.table('chunks').where('mediaId').equals(media.id).count(), 1);
});
