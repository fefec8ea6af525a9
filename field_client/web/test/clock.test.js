import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { freshDb, freshVault } from './helpers.js';
import { Api } from '../src/lib/api.js';
import { deviceClock } from '../src/lib/clock.js';
import { captureFile, CHUNK_SIZE } from '../src/lib/evidence.js';
import { Hlc } from '../src/lib/hlc.js';
import { FieldStore } from '../src/lib/store.js';
import { Uploader } from '../src/lib/uploader.js';
import { memoryTokens } from '../src/lib/vault.js';

test('the device clock is ISO 8601 in UTC to the millisecond', () => {
  assert.equal(deviceClock(Date.UTC(2026, 2, 10, 4, 0, 0, 123)), '2026-03-10T04:00:00.123Z');
  assert.equal(deviceClock(new Date('2026-03-10T12:00:00+08:00')), '2026-03-10T04:00:00.000Z');
});

test('every API call (sync push and pull among them) tells the tablet\'s clock', async () => {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push(init.headers['Device-Clock']);
    return new Response(JSON.stringify({ changes: [], cursor: 'c', has_more: false }),
      { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  const api = new Api('https://srv.example', { fetch, tokens: memoryTokens({ access_token: 'a', refresh_token: 'r' }) });
  const before = Date.now();
  await api.request('GET', '/sync/pull');
  await api.request('POST', '/sync/push', { body: { device_id: 'SCJG-TAB1', mutations: [] } });
  assert.equal(seen.length, 2);
  for (const told of seen) {
    assert.match(told, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(told) - before) < 5000);
  }
});

test('each tus request of an upload tells the tablet\'s clock', async () => {
  const told = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname.startsWith('/api/v1/media/')) {
        res.writeHead(404, { 'Content-Type': 'application/problem+json' });
        return res.end(JSON.stringify({ type: '/problems/not-found', title: 'Not Found' }));
      }
      told.push([req.method, req.headers['device-clock']]);
      if (req.method === 'POST') {
        res.writeHead(201, { 'Tus-Resumable': '1.0.0', Location: '/api/v1/uploads/u1' });
        return res.end();
      }
      res.writeHead(204, { 'Tus-Resumable': '1.0.0', 'Upload-Offset': req.headers['content-length'] });
      return res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const db = await freshDb();
    const vault = await freshVault(db);
    const store = new FieldStore(db, vault, { deviceId: 'SCJG-TAB1', userId: 'u-1', hlc: new Hlc('SCJG-TAB1', () => 1764120000000) });
    const bytes = randomBytes(1000);
    bytes.set([0xff, 0xd8, 0xff, 0xe0], 0);
    await captureFile(store, vault, new File([bytes], 'IMG.jpg', { type: 'image/jpeg' }), {
      kind: 'photo', inspectionId: '300f3ba8-cc49-5812-ad8e-d4ed25349486', captureStart: '2026-03-10T12:00:00.000+08:00',
      estimate: async () => ({ usage: 0, quota: 1e12, free: 1e12, persisted: true }) });
    const pending = await store.pending();
    await store.applyPushResults(pending.map((m) => ({ id: m.id, status: 'applied', version: 1 })));
    const api = new Api(base, { tokens: memoryTokens({ access_token: 'A1', refresh_token: 'R1' }) });
    const now = () => new Date('2026-03-10T04:00:00.123Z');
    const uploader = new Uploader({ api, db, vault, baseUrl: base, store, chunkSize: CHUNK_SIZE, retryDelays: [], now });
    assert.deepEqual(await uploader.uploadAll(), { uploaded: 1, failed: 0, waiting: 0 });
    assert.deepEqual(told, [['POST', '2026-03-10T04:00:00.123Z'], ['PATCH', '2026-03-10T04:00:00.123Z']]);
  } finally {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  }
});
