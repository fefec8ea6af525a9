import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { freshDb, freshVault } from './helpers.js';
import { FieldStore } from '../src/lib/store.js';
import { Hlc } from '../src/lib/hlc.js';
import { Api } from '../src/lib/api.js';
import { memoryTokens } from '../src/lib/vault.js';
import { captureFile, CHUNK_SIZE } from '../src/lib/evidence.js';
import { Uploader, encryptedSource } from '../src/lib/uploader.js';

const INSPECTION = '300f3ba8-cc49-5812-ad8e-d4ed25349486';
const plenty = async () => ({ usage: 0, quota: 1e12, free: 1e12, persisted: true });

/** A small tus 1.0.0 server with the knobs the tests need. */
async function tusServer(options = {}) {
  const state = { uploads: new Map(), posts: 0, patches: 0, heads: 0, media: new Map(), token: 'A1', ...options };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const body = Buffer.concat(chunks);
      const send = (status, headers = {}, payload) => {
        res.writeHead(status, { 'Tus-Resumable': '1.0.0', ...headers });
        res.end(payload === undefined ? undefined : JSON.stringify(payload));
      };
      if (url.pathname.startsWith('/api/v1/media/')) {
        const id = url.pathname.split('/').pop();
        const held = state.media.get(id);
        return held ? send(200, { 'Content-Type': 'application/json' }, held)
          : send(404, { 'Content-Type': 'application/problem+json' }, { type: '/problems/not-found', title: 'Not Found' });
      }
      if (req.headers.authorization !== `Bearer ${state.token}`) {
        return send(401, { 'Content-Type': 'application/problem+json' }, { type: '/problems/token-invalid', title: 'Unauthorized' });
      }
      if (req.method === 'POST' && url.pathname === '/api/v1/uploads/') {
        state.posts += 1;
        const metadata = Object.fromEntries(String(req.headers['upload-metadata'] || '').split(',').filter(Boolean).map((pair) => {
          const [k, v] = pair.trim().split(' ');
          return [k, v ? Buffer.from(v, 'base64').toString('utf8') : ''];
        }));
        const id = `u${state.posts}`;
        state.uploads.set(id, { length: Number(req.headers['upload-length']), data: Buffer.alloc(0), metadata });
        return send(201, { Location: `/api/v1/uploads/${id}` });
      }
      const id = url.pathname.split('/').pop();
      const upload = state.uploads.get(id);
      if (!upload) return send(404, { 'Content-Type': 'application/problem+json' }, { type: '/problems/not-found', title: 'Not Found' });
      if (req.method === 'HEAD') {
        state.heads += 1;
        return send(200, { 'Upload-Offset': String(upload.data.length), 'Upload-Length': String(upload.length), 'Cache-Control': 'no-store' });
      }
      if (req.method === 'PATCH') {
        state.patches += 1;
        if (Number(req.headers['upload-offset']) !== upload.data.length) return send(409, {}, { type: '/problems/offset-mismatch' });
        if (state.failPatch && state.failPatch(state, upload)) {
          req.socket.destroy(); // the network drops mid-upload
          return undefined;
        }
        upload.data = Buffer.concat([upload.data, body]);
        if (upload.data.length === upload.length) {
          const sha = createHash('sha256').update(upload.data).digest('hex');
          if (sha !== upload.metadata.sha256 || state.mismatch) {
            return send(460, { 'Content-Type': 'application/problem+json' },
              { type: '/problems/hash-mismatch', title: '文件与声明的 SHA-256 不符', detail: `收到的文件 SHA-256 为 ${sha}` });
          }
          state.media.set(upload.metadata.media_id, { id: upload.metadata.media_id, sha256: sha, uploaded_at: 'now',
            verification: { status: 'pending', reasons: [] } });
        }
        return send(204, { 'Upload-Offset': String(upload.data.length) });
      }
      return send(405);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${server.address().port}`;
  state.close = () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); });
  return state;
}

async function setup(server) {
  const db = await freshDb();
  const vault = await freshVault(db);
  const store = new FieldStore(db, vault, { deviceId: 'SCJG-TAB1', userId: 'u-1', hlc: new Hlc('SCJG-TAB1', () => 1764120000000) });
  const api = new Api(server.url, { tokens: memoryTokens({ access_token: 'A1', refresh_token: 'R1' }) });
  return { db, vault, store, api };
}

async function captured(store, vault, size) {
  const bytes = randomBytes(size);
  bytes.set([0xff, 0xd8, 0xff, 0xe0], 0);
  const media = await captureFile(store, vault, new File([bytes], '执照.jpg', { type: 'image/jpeg' }),
    { kind: 'photo', inspectionId: INSPECTION, estimate: plenty, captureStart: '2025-11-26T09:00:00.000+08:00' });
  return { bytes, media };
}

async function acknowledge(store) {
  const pending = await store.pending();
  await store.applyPushResults(pending.map((m) => ({ id: m.id, status: 'applied', version: 1 })));
}

test('the decrypting file source gives any byte range of the original', async () => {
  const server = { url: 'http://unused' };
  const { db, vault, store } = await setup(server);
  const { bytes, media } = await captured(store, vault, 2 * CHUNK_SIZE + 77);
  const source = encryptedSource(db, vault, await db.table('media').get(media.id));
  for (const [start, end] of [[0, 10], [CHUNK_SIZE - 5, CHUNK_SIZE + 5], [0, bytes.length], [2 * CHUNK_SIZE, 3 * CHUNK_SIZE]]) {
    const { value, done } = await source.slice(start, end);
    assert.ok(Buffer.from(value).equals(bytes.subarray(start, Math.min(end, bytes.length))), `${start}-${end}`);
    assert.equal(done, end >= bytes.length);
  }
});

test('an acknowledged media goes up over tus with the metadata the server needs; others wait', async () => {
  const server = await tusServer();
  try {
    const { db, vault, store, api } = await setup(server);
    const { bytes, media } = await captured(store, vault, CHUNK_SIZE * 2 + 1000);
    const uploader = new Uploader({ api, db, vault, baseUrl: server.url, store, chunkSize: CHUNK_SIZE, retryDelays: [] });
    assert.deepEqual(await uploader.uploadAll(), { uploaded: 0, failed: 0, waiting: 0 }, 'not acknowledged: not sent');
    assert.equal(server.posts, 0);
    await acknowledge(store);
    const progress = [];
    const summary = await uploader.uploadAll((p) => progress.push(p));
    assert.deepEqual(summary, { uploaded: 1, failed: 0, waiting: 0 });
    const [upload] = server.uploads.values();
    assert.ok(upload.data.equals(bytes));
    assert.deepEqual(upload.metadata, { sha256: media.sha256, filename: '执照.jpg', filetype: 'image/jpeg', media_id: media.id,
      device_id: 'SCJG-TAB1', capture_start: '2025-11-26T09:00:00.000+08:00' });
    assert.equal(server.patches, 3, 'one PATCH per upload chunk');
    const [state] = await uploader.states();
    assert.equal(state.state, 'done');
    assert.equal(state.verification, 'pending');
    assert.equal(state.fileName, '执照.jpg');
    assert.ok(progress.length > 0 && progress.at(-1).sent === bytes.length);
    // Done is done: nothing sent again.
    await uploader.uploadAll();
    assert.equal(server.posts, 1);
  } finally {
    await server.close();
  }
});

test('a network cut mid-upload leaves it waiting; after a restart it resumes at the server\'s offset', async () => {
  const server = await tusServer({ failPatch: (s) => s.patches === 2 && !s.healed });
  try {
    const { db, vault, store, api } = await setup(server);
    const { bytes, media } = await captured(store, vault, CHUNK_SIZE * 3);
    await acknowledge(store);
    const first = new Uploader({ api, db, vault, baseUrl: server.url, store, chunkSize: CHUNK_SIZE, retryDelays: [] });
    const summary = await first.uploadAll();
    assert.deepEqual(summary, { uploaded: 0, failed: 0, waiting: 1 });
    const row = await db.table('media').get(media.id);
    assert.equal(row.state, 'waiting');
    assert.equal(row.error.code, 'offline');
    assert.match(row.error.reason, /网络/);
    assert.ok(row.uploadUrl.endsWith('/api/v1/uploads/u1'), 'the upload URL survives for the restart');
    assert.equal(row.offset, CHUNK_SIZE);
    server.healed = true;
    // A new Uploader: what the app makes after a restart.
    const again = new Uploader({ api, db, vault, baseUrl: server.url, store: new FieldStore(db, vault, {}), chunkSize: CHUNK_SIZE });
    const after = await again.uploadOne(media.id);
    assert.equal(after.state, 'done');
    assert.equal(server.posts, 1, 'resumed, not started again');
    assert.ok(server.heads >= 1);
    assert.ok(server.uploads.get('u1').data.equals(bytes));
  } finally {
    await server.close();
  }
});

test('a refused file fails with the server\'s Chinese reason and is not retried by itself', async () => {
  const server = await tusServer({ mismatch: true });
  try {
    const { db, vault, store, api } = await setup(server);
    const { media } = await captured(store, vault, 5000);
    await acknowledge(store);
    const uploader = new Uploader({ api, db, vault, baseUrl: server.url, store });
    assert.deepEqual(await uploader.uploadAll(), { uploaded: 0, failed: 1, waiting: 0 });
    const [state] = await uploader.states();
    assert.equal(state.state, 'failed');
    assert.equal(state.error.code, 'hash-mismatch');
    assert.match(state.reason, /SHA-256/);
    assert.match(state.reason, /不会自动重试/);
    assert.deepEqual(await uploader.uploadAll(), { uploaded: 0, failed: 0, waiting: 0 });
    assert.equal(server.posts, 1);
    server.mismatch = false;
    assert.equal(await uploader.retryFailed(), 1);
    assert.equal((await uploader.uploadOne(media.id)).state, 'done');
  } finally {
    await server.close();
  }
});

test('an expired token is refreshed once during an upload', async () => {
  const server = await tusServer({ token: 'A2' });
  try {
    const { db, vault, store } = await setup(server);
    const refreshes = [];
    const api = new Api(server.url, { tokens: memoryTokens({ access_token: 'A1', refresh_token: 'R1' }) });
    api.refresh = async (old) => { refreshes.push(old); await api.tokens.set({ access_token: 'A2', refresh_token: 'R2' }); };
    const { media } = await captured(store, vault, 3000);
    await acknowledge(store);
    const uploader = new Uploader({ api, db, vault, baseUrl: server.url, store, retryDelays: [0, 0] });
    assert.equal((await uploader.uploadOne(media.id)).state, 'done');
    assert.deepEqual(refreshes, ['A1']);
  } finally {
    await server.close();
  }
});

test('a file the server already holds is not sent again', async () => {
  const server = await tusServer();
  try {
    const { db, vault, store, api } = await setup(server);
    const { media } = await captured(store, vault, 3000);
    await acknowledge(store);
    server.media.set(media.id, { id: media.id, sha256: media.sha256, uploaded_at: 'earlier', verification: { status: 'verified' } });
    const uploader = new Uploader({ api, db, vault, baseUrl: server.url, store });
    const row = await uploader.uploadOne(media.id);
    assert.equal(row.state, 'done');
    assert.equal(row.verification, 'verified');
    assert.equal(server.posts, 0);
  } finally {
    await server.close();
  }
});
