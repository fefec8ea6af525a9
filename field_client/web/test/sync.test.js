import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDb, freshVault } from './helpers.js';
import { FieldStore } from '../src/lib/store.js';
import { Hlc } from '../src/lib/hlc.js';
import { Api, ApiError } from '../src/lib/api.js';
import { SyncEngine, autoSync, refusedMutations } from '../src/lib/sync.js';
import { memoryTokens } from '../src/lib/vault.js';
import { isChinese } from '../src/lib/messages.js';

const TASK = '0b8e5c1e-2f4a-4c3b-9d7e-1a2b3c4d5e6f';
const INSPECTION = '300f3ba8-cc49-5812-ad8e-d4ed25349486';

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status, headers: { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers },
  });
}

/** A fake server: push applies each mutation (version = base + 1) unless `behaviour` says otherwise. */
function fakeServer(behaviour = {}) {
  const server = { pushes: [], pulls: [], versions: new Map(), changes: [], offline: false, refreshes: 0,
    access: 'A1', ...behaviour };
  server.fetch = async (url, init = {}) => {
    if (server.offline) throw new TypeError('Failed to fetch');
    const { pathname, searchParams } = new URL(url);
    const body = init.body ? JSON.parse(init.body) : undefined;
    const auth = init.headers?.Authorization;
    if (pathname === '/api/v1/auth/refresh') {
      server.refreshes += 1;
      server.access = `A${server.refreshes + 1}`;
      return json(200, { access_token: server.access, refresh_token: `R${server.refreshes + 1}` });
    }
    if (auth !== `Bearer ${server.access}`) {
      return json(401, { type: '/problems/token-invalid', title: 'Unauthorized', status: 401 });
    }
    if (pathname === '/api/v1/sync/push') {
      server.pushes.push(body);
      if (server.onPush) {
        const answer = server.onPush(body, server);
        if (answer) return answer;
      }
      return json(200, { results: body.mutations.map((m) => server.result(m)) });
    }
    if (pathname === '/api/v1/sync/pull') {
      server.pulls.push(Object.fromEntries(searchParams));
      if (server.onPull) return server.onPull(searchParams, server);
      return json(200, { changes: server.changes, cursor: 'c-end', has_more: false });
    }
    return json(404, { type: '/problems/not-found', title: 'Not Found', status: 404 });
  };
  server.result = (m) => {
    if (m.fields.reject) return { id: m.id, status: 'rejected', code: 'forbidden', reason: 'Not on the team' };
    if (m.fields.conflict) return { id: m.id, status: 'conflict', version: 7 };
    const version = (server.versions.get(m.entity_id) ?? 0) + 1;
    server.versions.set(m.entity_id, version);
    return { id: m.id, status: 'applied', version };
  };
  return server;
}

async function setup(behaviour) {
  const db = await freshDb();
  const vault = await freshVault(db);
  const store = new FieldStore(db, vault, { deviceId: 'SCJG-TAB1', userId: 'u-1', hlc: new Hlc('SCJG-TAB1', () => 1764120000000) });
  const server = fakeServer(behaviour);
  const api = new Api('http://server.test', { fetch: server.fetch, tokens: memoryTokens({ access_token: 'A1', refresh_token: 'R1' }) });
  const sleeps = [];
  const engine = new SyncEngine({ api, store, deviceId: 'SCJG-TAB1', sleep: async (ms) => { sleeps.push(ms); } });
  return { db, store, server, api, engine, sleeps };
}

test('push sends the outbox in batches, then pull applies every page with its cursor', async () => {
  const { store, server, engine } = await setup({
    onPull(params) {
      if (!params.get('cursor')) {
        return json(200, { changes: [{ entity: 'task', entity_id: TASK, op: 'upsert', version: 1, fields: { title: '检查' } }],
          cursor: 'c-1', has_more: true });
      }
      return json(200, { changes: [], cursor: 'c-2', has_more: false });
    },
  });
  engine.batchSize = 2;
  await store.put('inspection', INSPECTION, { task_id: TASK });
  await store.put('inspection', INSPECTION, { place: '东门' });
  for (let i = 0; i < 3; i++) await store.put('finding', `f-${i}`, { inspection_id: INSPECTION, result: 'compliant' });
  const progress = [];
  engine.on('progress', (p) => progress.push(p));
  const report = await engine.syncOnce();
  assert.equal(report.pushed.applied, 5);
  assert.ok(server.pushes.every((p) => p.mutations.length <= 2 && p.device_id === 'SCJG-TAB1'));
  // The second edit of the inspection went after the first was confirmed, rebased on version 1.
  const second = server.pushes.flatMap((p) => p.mutations).find((m) => m.fields.place === '东门');
  assert.equal(second.base_version, 1);
  assert.deepEqual(server.pulls.map((p) => p.cursor ?? null), [null, 'c-1']);
  assert.equal(await store.cursor(), 'c-2');
  assert.equal((await store.get('task', TASK)).title, '检查');
  const status = engine.status();
  assert.equal(status.pending, 0);
  assert.ok(status.lastSyncAt);
  assert.equal(status.lastError, null);
  assert.ok(progress.some((p) => p.phase === 'push') && progress.some((p) => p.phase === 'pull'));
});

test('a 422 naming one mutation sets it aside; the rest are pushed and it is never resent', async () => {
  const { store, server, engine } = await setup({
    onPush(body) {
      const bad = body.mutations.findIndex((m) => m.entity === 'gadget');
      if (bad >= 0) {
        return json(422, { type: '/problems/validation-failed', title: 'Unprocessable Entity', status: 422,
          errors: { [`mutations.${bad}.entity`]: ['Must be one of: inspection, finding.'] } });
      }
      return null;
    },
  });
  await store.put('inspection', INSPECTION, { task_id: TASK });
  // A damaged outbox row: a kind this server does not know.
  const bad = await store.put('finding', 'f-bad', { inspection_id: INSPECTION, result: 'compliant' });
  const row = await store.db.table('outbox').get({ id: bad.id });
  const m = await store.vault.decryptJSON(row.enc, `outbox:${bad.id}`);
  m.entity = 'gadget';
  await store.db.table('outbox').put({ ...row, enc: await store.vault.encryptJSON(m, `outbox:${bad.id}`) });
  const refused = [];
  engine.on('set-aside', (items) => refused.push(...items));
  const report = await engine.syncOnce();
  assert.equal(report.pushed.applied, 1);
  assert.equal(report.pushed.rejected.length, 1);
  const [aside] = await store.setAsideList();
  assert.equal(aside.code, 'unknown-entity-kind');
  assert.ok(isChinese(aside.reason) && !/Must be/.test(aside.reason));
  assert.equal(refused.length, 1);
  const pushesBefore = server.pushes.length;
  await engine.syncOnce();
  assert.equal(server.pushes.length, pushesBefore, 'nothing left to push: the refused one is not resent');
  assert.equal(engine.status().setAside, 1);
});

test('a 422 naming nothing is bisected until the bad mutation is alone, and it is set aside', async () => {
  const { store, server, engine } = await setup({
    onPush(body) {
      if (body.mutations.some((m) => m.fields.poison)) {
        return json(422, { type: '/problems/validation-failed', title: 'Unprocessable Entity', detail: 'bad batch' });
      }
      return null;
    },
  });
  for (let i = 0; i < 8; i++) {
    await store.put('finding', `f-${i}`, { inspection_id: INSPECTION, result: 'compliant', ...(i === 5 ? { poison: 1 } : {}) });
  }
  const report = await engine.syncOnce();
  assert.equal(report.pushed.applied, 7);
  const aside = await store.setAsideList();
  assert.deepEqual(aside.map((a) => a.entity_id), ['f-5']);
  assert.equal(aside[0].code, 'invalid-mutation');
  assert.match(aside[0].reason, /^服务器无法读取这条记录/);
  assert.ok(server.pushes.length <= 1 + 2 * 3, `bisection bounded: ${server.pushes.length} pushes`);
  // Every batch refused was smaller than the one before it: never the same batch twice.
  const seen = new Set();
  for (const p of server.pushes) {
    const key = p.mutations.map((m) => m.id).join();
    assert.ok(!seen.has(key), 'a batch was resent unchanged');
    seen.add(key);
  }
});

test('a conflict is surfaced to the UI, a rejection with an English reason reads in Chinese', async () => {
  const { store, engine } = await setup();
  await store.put('inspection', INSPECTION, { task_id: TASK, conflict: true });
  await store.put('finding', 'f-1', { inspection_id: INSPECTION, result: 'compliant', reject: true });
  const conflicts = [];
  engine.on('conflict', (items) => conflicts.push(...items));
  const report = await engine.syncOnce();
  assert.equal(report.pushed.conflict, 1);
  assert.equal(conflicts.length, 1);
  assert.equal(conflicts[0].entity_id, INSPECTION);
  assert.equal(engine.status().conflicts, 1);
  assert.equal((await store.conflicts()).length, 1);
  const [aside] = await store.setAsideList();
  assert.equal(aside.reason, '您无权修改该记录（不是检查组成员，或记录属于其他部门）');
});

test('offline: the error says so in Chinese, everything stays pending, status keeps it', async () => {
  const { store, server, engine } = await setup({ offline: true });
  await store.put('inspection', INSPECTION, { task_id: TASK });
  const errors = [];
  engine.on('error', (e) => errors.push(e));
  await assert.rejects(engine.syncOnce(), (e) => e instanceof ApiError && e.offline && isChinese(e.message));
  assert.equal(errors.length, 1);
  const status = engine.status();
  assert.equal(status.pending, 1);
  assert.equal(status.lastError.offline, true);
  assert.equal(status.lastError.code, 'offline');
  assert.equal(status.lastSyncAt, null);
  server.offline = false;
  await engine.syncOnce();
  assert.equal(engine.status().pending, 0);
  assert.equal(engine.status().lastError, null);
});

test('an expired access token is refreshed once and the call goes again', async () => {
  const { store, server, engine, api } = await setup();
  server.access = 'A2'; // the server no longer takes A1; the refresh hands out A2
  await store.put('inspection', INSPECTION, { task_id: TASK });
  await engine.syncOnce();
  assert.equal(server.refreshes, 1);
  assert.equal(await api.accessToken(), 'A2');
  assert.equal(engine.status().pending, 0);
});

test('a refresh the server refuses ends the session: tokens forgotten, the UI told, records kept', async () => {
  const lost = [];
  const server = fakeServer({ access: 'nobody-has-this' });
  const inner = server.fetch;
  server.fetch = async (url, init) => (new URL(url).pathname === '/api/v1/auth/refresh'
    ? json(401, { type: '/problems/refresh-invalid', title: 'Unauthorized', detail: '登录已失效，请重新登录' })
    : inner(url, init));
  const tokens = memoryTokens({ access_token: 'A1', refresh_token: 'R1' });
  const api = new Api('http://server.test', { fetch: server.fetch, tokens, onSessionLost: (e) => lost.push(e.code) });
  await assert.rejects(api.get('/sync/pull'), (e) => e.code === 'refresh-invalid' && e.message === '登录已失效，请重新登录');
  assert.deepEqual(lost, ['refresh-invalid']);
  assert.equal(await tokens.get(), null);
});

test('a refusal of the request itself leaves everything pending', async () => {
  const { store, engine } = await setup({
    onPush: () => json(403, { type: '/problems/device-mismatch', title: 'Forbidden', status: 403 }),
  });
  await store.put('inspection', INSPECTION, { task_id: TASK });
  await assert.rejects(engine.syncOnce(), (e) => e.code === 'device-mismatch' && e.status === 403 && isChinese(e.message));
  assert.equal((await store.pending()).length, 1);
  assert.deepEqual(await store.setAsideList(), []);
});

test('5xx and 429 are retried with backoff; Retry-After is a floor', async () => {
  let failures = 2;
  const { store, engine, sleeps } = await setup({
    onPush() {
      if (failures-- > 0) return json(503, { type: '/problems/unavailable', title: 'Service Unavailable' }, { 'Retry-After': '2' });
      return null;
    },
  });
  await store.put('inspection', INSPECTION, { task_id: TASK });
  const report = await engine.syncOnce();
  assert.equal(report.pushed.applied, 1);
  assert.equal(sleeps.length, 2);
  assert.ok(sleeps.every((ms) => ms >= 2000));
});

test('an unknown cursor restarts the pull from the beginning once', async () => {
  const { store, server, engine } = await setup({
    onPull(params) {
      if (params.get('cursor') === 'stale') return json(422, { type: '/problems/invalid-cursor', title: 'Unprocessable Entity' });
      return json(200, { changes: [], cursor: 'fresh', has_more: false });
    },
  });
  await store.setCursor('stale');
  await engine.syncOnce();
  assert.deepEqual(server.pulls.map((p) => p.cursor ?? null), ['stale', null]);
  assert.equal(await store.cursor(), 'fresh');
});

test('answers that do not match what was sent leave the mutations pending', async () => {
  const { store, engine } = await setup({ onPush: () => json(200, { results: [] }) });
  await store.put('inspection', INSPECTION, { task_id: TASK });
  await assert.rejects(engine.syncOnce(), { code: 'results-mismatch' });
  assert.equal((await store.pending()).length, 1);
});

test('refusedMutations reads the paths of the errors as the engine does', () => {
  assert.equal(refusedMutations(403, {}, 3), null);
  assert.equal(refusedMutations(422, { type: '/problems/unknown-device' }, 3), null);
  assert.equal(refusedMutations(422, { errors: { device_id: ['bad'] } }, 3), null);
  assert.deepEqual([...refusedMutations(422, { errors: { 'mutations.1.hlc': ['x'], '/mutations/2/entity': ['y'] } }, 3)],
    [[1, ['hlc']], [2, ['entity']]]);
  assert.deepEqual([...refusedMutations(400, { errors: { json: ['x'] } }, 3)], []);
});

test('autoSync syncs when the network returns and stops when asked', async () => {
  const { store, engine } = await setup();
  await store.put('inspection', INSPECTION, { task_id: TASK });
  const win = new EventTarget();
  win.navigator = { onLine: true };
  let uploads = 0;
  const stop = autoSync(engine, win, { uploader: { uploadAll: async () => { uploads += 1; } } });
  const synced = new Promise((resolve) => engine.on('synced', resolve));
  win.dispatchEvent(new Event('online'));
  await synced;
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(engine.status().pending, 0);
  assert.equal(uploads, 1);
  stop();
  win.dispatchEvent(new Event('online'));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(uploads, 1);
});
