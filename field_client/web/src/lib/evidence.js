// Evidence at capture: a photo, video or signature is checked (type, size, space), hashed with a streaming SHA-256
// and encrypted in 1 MiB chunks into IndexedDB — the file is never read into memory whole — before its media
// record (with the hash) is written to the outbox. Nothing here needs the network.
import { createSHA256 } from 'hash-wasm';
import { isUuid, uuid4 } from './ids.js';
import { messageFor } from './messages.js';
import { isoUtc, locationE7, signCapture } from './manifest.js';
import { FieldStore } from './store.js';
import { isoLocal } from './times.js';

export const CHUNK_SIZE = 1 << 20;
// Room kept free besides the file itself: ciphertext overhead, the records, the database's own bookkeeping.
const SPACE_MARGIN = 8 * CHUNK_SIZE;
// Chunks per IndexedDB write transaction.
const WRITE_BATCH = 4;

export class CaptureError extends Error {
  constructor(code, extra = {}) {
    super(messageFor(code));
    this.name = 'CaptureError';
    this.code = code;
    Object.assign(this, extra);
  }
}

export function chunkAad(mediaId, index) {
  return `${mediaId}:${index}`;
}

function startsWith(bytes, signature, offset = 0) {
  return signature.every((b, i) => bytes[offset + i] === b);
}

function ascii(bytes, start, end) {
  return String.fromCharCode(...bytes.slice(start, end));
}

const HEIF_BRANDS = { heic: 'image/heic', heix: 'image/heic', hevc: 'image/heic', hevx: 'image/heic', heim: 'image/heic',
  heis: 'image/heic', mif1: 'image/heif', msf1: 'image/heif', avif: 'image/avif', avis: 'image/avif' };

/** The image type the first bytes show, or null. */
export function sniffImage(bytes) {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (ascii(bytes, 0, 4) === 'GIF8') return 'image/gif';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 12) === 'WEBP') return 'image/webp';
  if (ascii(bytes, 4, 8) === 'ftyp' && HEIF_BRANDS[ascii(bytes, 8, 12)]) return HEIF_BRANDS[ascii(bytes, 8, 12)];
  return null;
}

/** The video container the first bytes show, or null (MP4/MOV/3GP, WebM/Matroska, AVI, Ogg, MPEG). */
export function sniffVideo(bytes) {
  const box = ascii(bytes, 4, 8);
  if (box === 'ftyp') return HEIF_BRANDS[ascii(bytes, 8, 12)] ? null : (ascii(bytes, 8, 11) === '3gp' ? 'video/3gpp' : 'video/mp4');
  if (['moov', 'mdat', 'wide', 'free', 'skip'].includes(box)) return 'video/quicktime';
  if (startsWith(bytes, [0x1a, 0x45, 0xdf, 0xa3])) return 'video/webm';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 11) === 'AVI') return 'video/x-msvideo';
  if (ascii(bytes, 0, 4) === 'OggS') return 'video/ogg';
  if (startsWith(bytes, [0x00, 0x00, 0x01, 0xba]) || startsWith(bytes, [0x00, 0x00, 0x01, 0xb3])) return 'video/mpeg';
  if (bytes[0] === 0x47 && (bytes.length < 189 || bytes[188] === 0x47)) return 'video/mp2t';
  return null;
}

/** The detected image type of a blob, or null. */
export async function sniffType(blob) {
  const head = new Uint8Array(await blob.slice(0, 256).arrayBuffer());
  return sniffImage(head) ?? sniffVideo(head);
}

/** A file's name as metadata: its last component, normalised, no path separators (capture.display_name). */
export function displayName(name) {
  const clean = String(name || '').normalize('NFC').replace(/[/\\]/g, '_').replace(/\0/g, '');
  return clean.slice(-255) || 'file';
}

/** Space the browser gives this origin: `{usage, quota, free, persisted}` (nulls where it cannot say). */
export async function storageEstimate() {
  const storage = globalThis.navigator?.storage;
  if (!storage?.estimate) return { usage: null, quota: null, free: null, persisted: null };
  let persisted = null;
  try {
    persisted = storage.persisted ? await storage.persisted() : null;
    // Ask once; the browser decides (and may ask the user). Evidence must not be evicted under storage pressure.
    if (persisted === false && storage.persist) persisted = await storage.persist();
  } catch {
    persisted = null;
  }
  const { usage = null, quota = null } = await storage.estimate();
  const free = usage != null && quota != null ? Math.max(0, quota - usage) : null;
  return { usage, quota, free, persisted };
}

const uuidOrNull = (value) => (typeof value === 'string' && isUuid(value) ? value.toLowerCase() : null);

function isQuotaError(error) {
  const names = [error?.name, error?.inner?.name, error?.cause?.name];
  return names.includes('QuotaExceededError') || /quota/i.test(String(error?.message ?? ''));
}

async function removeChunks(db, mediaId) {
  await db.table('chunks').where('mediaId').equals(mediaId).delete();
}

function classify(kind, declared, head) {
  const type = String(declared || '').toLowerCase();
  if (kind === 'photo' || kind === 'signature') {
    const sniffed = sniffImage(head);
    if (!sniffed || (type && !type.startsWith('image/'))) return null;
    return type || sniffed;
  }
  if (kind === 'video') {
    if (type && !type.startsWith('video/')) return null;
    const sniffed = sniffVideo(head);
    if (!sniffed) return null;
    return type || sniffed;
  }
  throw new TypeError(`capture kind must be photo, video or signature, not ${kind}`);
}

/**
 * Keep a photo, video or signature as evidence; returns the media record's view.
 *
 * Throws CaptureError: 'empty', 'not-media' (type or first bytes not a photo/video), 'too-large' (over the server's
 * upload limit `maxBytes`), 'quota' (no room on the tablet; nothing of it is kept, what was stored stays).
 */
export async function captureFile(store, vault, file, {
  kind, inspectionId, findingId = null, proves, maxBytes, now = () => new Date(), deviceId, captureStart, captureEnd,
  location = null, onProgress, estimate = storageEstimate,
} = {}) {
  if (!inspectionId) throw new TypeError('inspectionId is required');
  if (!file || typeof file.slice !== 'function') throw new TypeError('file must be a Blob or File');
  const size = file.size;
  if (!size) throw new CaptureError('empty');
  const head = new Uint8Array(await file.slice(0, 256).arrayBuffer());
  const contentType = classify(kind, file.type, head);
  if (!contentType) throw new CaptureError('not-media', { contentType: file.type || null });
  if (Number.isFinite(maxBytes) && maxBytes > 0 && size > maxBytes) {
    throw new CaptureError('too-large', { size, maxBytes });
  }
  let space = null;
  try {
    space = await estimate();
  } catch { /* no estimate: the write itself will say if the quota runs out */ }
  if (space?.free != null && space.free < size + SPACE_MARGIN) {
    throw new CaptureError('quota', { size, free: space.free });
  }

  const { db } = store;
  const at = typeof now === 'function' ? now() : now;
  const mediaId = uuid4();
  const chunkCount = Math.ceil(size / CHUNK_SIZE);
  const row = {
    id: mediaId, state: 'capturing', offset: 0, uploadUrl: null, size, sha256: null, error: null, chunkSize: CHUNK_SIZE,
    chunkCount, acked: false, attempts: 0, updatedAt: isoLocal(at), owner: store.owner ?? null,
  };
  await db.table('media').put(row);
  let sha256;
  try {
    const hasher = await createSHA256();
    hasher.init();
    // A pipeline, so a 1 GB video is not hashing, encrypting and writing by turns: the next chunk is read while
    // this one is hashed, chunks are encrypted (off the main thread in browsers) while the previous batch is
    // written, and a few chunks go in one IndexedDB transaction. At most two batches are in memory.
    const readChunk = (index) => {
      const start = index * CHUNK_SIZE;
      return file.slice(start, Math.min(size, start + CHUNK_SIZE)).arrayBuffer()
        .then((buffer) => ({ bytes: new Uint8Array(buffer) }), (error) => ({ error }));
    };
    let read = 0;
    let writeError = null;
    let writing = Promise.resolve();
    let batch = [];
    let next = readChunk(0);
    for (let index = 0; index < chunkCount; index++) {
      const got = await next;
      if (got.error) throw got.error;
      if (index + 1 < chunkCount) next = readChunk(index + 1);
      const { bytes } = got;
      hasher.update(bytes);
      read += bytes.length;
      batch.push(vault.encryptBytes(bytes, chunkAad(mediaId, index)).then(({ iv, data }) => ({ mediaId, index, iv, data })));
      if (batch.length === WRITE_BATCH || index + 1 === chunkCount) {
        const rows = await Promise.all(batch);
        batch = [];
        await writing;
        if (writeError) throw writeError;
        writing = db.table('chunks').bulkPut(rows).catch((error) => { writeError = error; });
      }
      if (onProgress) onProgress(read, size);
    }
    await writing;
    if (writeError) throw writeError;
    if (read !== size) throw new Error(`read ${read} bytes of ${size}`); // the file changed while it was read
    sha256 = hasher.digest('hex');
    await db.table('media').update(mediaId, { state: 'waiting', sha256, updatedAt: isoLocal(at) });
  } catch (error) {
    await removeChunks(db, mediaId).catch(() => {});
    await db.table('media').delete(mediaId).catch(() => {});
    if (isQuotaError(error)) throw new CaptureError('quota', { size });
    throw error;
  }

  const start = captureStart ?? isoLocal(file.lastModified ? new Date(file.lastModified) : at);
  const fields = {
    inspection_id: inspectionId, sha256, size, content_type: contentType.slice(0, 100),
    file_name: displayName(file.name || `${kind}-${mediaId}`), capture_start: start, capture_end: captureEnd ?? start,
    device_id: deviceId ?? store.deviceId ?? null,
    proves: proves ?? (kind === 'signature' ? 'signature' : 'scene'),
  };
  // The signed manifest (when the tablet has a key) is made in the record's own transaction: the device's counter
  // moves exactly when the record is kept, and the record never exists without its manifest.
  const signer = fields.device_id;
  const signedAt = () => (typeof now === 'function' ? now() : now);
  const extend = signer ? async ({ taskId }) => {
    const signed = await signCapture(db, signer, {
      sha256, size, media_type: fields.content_type, capture_start: isoUtc(fields.capture_start),
      capture_end: isoUtc(fields.capture_end), media_id: mediaId, task_id: uuidOrNull(taskId),
      inspection_id: uuidOrNull(inspectionId), inspector: uuidOrNull(store.userId),
      location: location && 'lat_e7' in location ? location : locationE7(location),
    }, { now: signedAt });
    return signed ? { manifest: signed.manifest, manifest_signature: signed.manifest_signature } : {};
  } : null;
  try {
    await store.put('media', mediaId, fields, { inspectionId, extend });
    if (findingId) {
      const finding = await store.get('finding', findingId);
      if (finding) {
        const evidence = [...new Set([...(finding.evidence || []), mediaId])];
        await store.put('finding', findingId, { evidence });
      }
    }
  } catch (error) {
    if (isQuotaError(error)) {
      // The record could not be written: the file is not evidence yet, so it does not stay half-kept.
      await removeChunks(db, mediaId).catch(() => {});
      await db.table('media').delete(mediaId).catch(() => {});
      throw new CaptureError('quota', { size });
    }
    throw error;
  }
  return store.get('media', mediaId);
}

/**
 * Remove what a capture interrupted (tab closed, crash) left behind: media rows still 'capturing' and their chunks.
 * Call once when the app opens, before any capture.
 */
export async function cleanupInterruptedCaptures(db) {
  const rows = await db.table('media').where('state').equals('capturing').toArray();
  for (const row of rows) {
    await removeChunks(db, row.id);
    await db.table('media').delete(row.id);
  }
  return rows.length;
}

/** One decrypted chunk of a media file. */
export async function mediaChunk(db, vault, mediaId, index) {
  const row = await db.table('chunks').get([mediaId, index]);
  if (!row) throw new CaptureError('vault-missing', { mediaId, index });
  return vault.decryptBytes(row, chunkAad(mediaId, index));
}

/** The decrypted file as a Blob (to show a photo or a signature; the chunks are decrypted one by one). */
export async function readMedia(db, vault, mediaId, type) {
  const media = await db.table('media').get(mediaId);
  if (!media) throw new CaptureError('vault-missing', { mediaId });
  let contentType = type;
  if (!contentType) {
    const view = await new FieldStore(db, vault, {}).get('media', mediaId).catch(() => null);
    contentType = view?.content_type || '';
  }
  const parts = [];
  for (let index = 0; index < media.chunkCount; index++) parts.push(await mediaChunk(db, vault, mediaId, index));
  return new Blob(parts, { type: contentType });
}
