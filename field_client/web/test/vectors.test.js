// The JavaScript engine against the shared protocol vectors (tests/protocol/vectors.json): the file is the source
// of truth for both engines (the Python one runs it in tests/protocol/test_vectors_python.py). Its `format` key
// says what each kind's input and expect mean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freshDb, freshVault } from './helpers.js';
import { Hlc, compareHlc, formatHlc, parseHlc } from '../src/lib/hlc.js';
import { FieldStore, seenStamps } from '../src/lib/store.js';
import { Api, ApiError } from '../src/lib/api.js';
import { SyncEngine, refusedMutations } from '../src/lib/sync.js';
import { memoryTokens } from '../src/lib/vault.js';
import { isChinese } from '../src/lib/messages.js';

const PATH = fileURLToPath(new URL('../../../tests/protocol/vectors.json', import.meta.url));
const DOCUMENT = JSON.parse(readFileSync(PATH, 'utf8'));
const DEVICE = 'SCJG-TAB1';
const USER = '00000000-0000-4000-8000-000000000001';

const stampObject = (s) => ({ wall_ms: s.wall, counter: s.counter, node: s.node });

function refusing(fn) {
  try {
    return fn();
  } catch (error) {
    return { error: error.name };
  }
}

const RUNNERS = {
  'hlc.format': (input) => formatHlc({ wall: input.wall_ms, counter: input.counter, node: input.node }),
  'hlc.parse': (input) => refusing(() => stampObject(parseHlc(input.text))),
  'hlc.order': (input) => [...input.stamps].sort(compareHlc),
  'hlc.tick': (input) => refusing(() => new Hlc(input.node, () => input.now_ms, input.last).tick()),
  'hlc.receive': (input) => {
    const clock = new Hlc(input.node, () => input.then_tick_at, input.last);
    for (const seen of input.seen) clock.receive(seen);
    const result = { last: clock.last };
    if (input.then_tick_at !== null && input.then_tick_at !== undefined) result.tick = clock.tick();
    return result;
  },
  // What FieldStore.applyPulledChanges folds into the clock for one change, in order.
  'pull.seen': (input) => seenStamps(input.change, input.node).map(formatHlc),
  'push.refused_batch': (input) => {
    const { answer } = input;
    const body = { type: `/problems/${answer.code}`, title: 't', status: answer.status, detail: 'd' };
    if (answer.errors != null) body.errors = answer.errors;
    const named = refusedMutations(answer.status, body, input.batch_size);
    if (named === null) return null;
    return Object.fromEntries([...named].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), [...v].sort()]));
  },
  'push.scenario': pushScenario,
};

/** Set up the confirmed states and the outbox, push through the scripted rounds, report what happened. */
async function pushScenario(input) {
  const db = await freshDb();
  const vault = await freshVault(db);
  const store = new FieldStore(db, vault, { deviceId: DEVICE, userId: USER, departmentId: 'd',
    hlc: new Hlc(DEVICE, () => 1773115200000), now: () => new Date(1773115200000) });
  for (const entity of input.confirmed) {
    const rec = { kind: entity.entity, id: entity.entity_id, taskId: null, inspectionId: null,
      server: { fields: entity.fields, version: entity.version, deleted: Boolean(entity.deleted), updatedAt: null } };
    await store._refreshView(rec);
    await store._writeEntity(rec, await store._nextOrder());
  }
  for (const [n, m] of input.outbox.entries()) {
    await store._writeMutation({
      id: m.id, entity: m.entity, entity_id: m.entity_id, op: m.op, base_version: m.base_version,
      hlc: `${String(1773115200000 + n).padStart(13, '0')}-0000-${DEVICE}`, fields: m.fields, status: 'pending',
      attempts: m.attempts ?? 0, userId: USER, result: null, resultVersion: null, errorCode: null, errorReason: null,
      createdAt: 'now', updatedAt: 'now',
    });
    const found = await store.record(m.entity, m.entity_id);
    const rec = found ?? { kind: m.entity, id: m.entity_id, taskId: null, inspectionId: null,
      server: { fields: null, version: 0, deleted: false, updatedAt: null } };
    await store._refreshView(rec);
    const row = await db.table('entities').get([m.entity, m.entity_id]);
    await store._writeEntity(rec, row?.order ?? await store._nextOrder());
  }

  const rounds = [...input.rounds];
  const sent = [];
  const fetch = async (url, init) => {
    if (!new URL(url).pathname.endsWith('/api/v1/sync/push') || !rounds.length) {
      return new Response(JSON.stringify({ type: '/problems/test', title: 't', status: 599, detail: '脚本已用完' }), { status: 599 });
    }
    const body = JSON.parse(init.body);
    sent.push(body.mutations.map((m) => ({ id: m.id, entity_id: m.entity_id, base_version: m.base_version })));
    const { answer } = rounds.shift();
    if (Array.isArray(answer)) return new Response(JSON.stringify({ results: answer }), { status: 200 });
    const problem = { type: `/problems/${answer.code}`, title: 't', status: answer.status, detail: answer.detail ?? '请求被拒绝',
      ...(answer.errors ? { errors: answer.errors } : {}) };
    return new Response(JSON.stringify(problem), { status: answer.status, headers: { 'Content-Type': 'application/problem+json' } });
  };
  const api = new Api('http://server.test', { fetch, tokens: memoryTokens({ access_token: 'token', refresh_token: 'refresh' }) });
  const engine = new SyncEngine({ api, store, deviceId: DEVICE, batchSize: input.batch_size ?? 500, maxAttempts: 1,
    sleep: async () => {} });
  let raised = null;
  let report = null;
  try {
    report = await engine.push();
  } catch (error) {
    if (!(error instanceof ApiError) || error.offline || error.status >= 500) throw error;
    raised = error.code;
  }

  const serverReasons = new Map();
  for (const round of input.rounds) {
    if (Array.isArray(round.answer)) for (const r of round.answer) serverReasons.set(r.id, r.reason);
  }
  const outbox = [];
  for (const row of await db.table('outbox').orderBy('seq').toArray()) {
    const m = await store._decryptMutation(row);
    const item = { id: m.id, state: m.status, base_version: m.base_version };
    if (m.result != null) item.result = m.result;
    if (m.status === 'rejected') {
      item.code = m.errorCode;
      const given = serverReasons.get(m.id);
      item.reason_from = given !== undefined && m.errorReason === given ? 'server' : 'client';
      if (item.reason_from === 'client') assert.ok(isChinese(m.errorReason), m.errorReason);
    }
    outbox.push(item);
  }
  const entities = {};
  for (const row of await db.table('entities').toArray()) {
    const rec = await store.record(row.kind, row.id);
    entities[rec.id] = { version: rec.server.version, fields: rec.server.fields, deleted: Boolean(rec.server.deleted),
      view: rec.view?.fields ?? null, view_deleted: Boolean(rec.view?.deleted), unconfirmed: Boolean(rec.unconfirmed) };
  }
  return {
    sent,
    raised,
    report: report === null ? null : { applied: report.applied, duplicate: report.duplicate, conflict: report.conflict,
      rejected: report.rejected.length },
    outbox,
    conflicts: (await store.conflicts()).map((c) => c.mutationId).sort(),
    entities,
  };
}

test('every kind of vector has a runner here', () => {
  assert.deepEqual(Object.keys(DOCUMENT.format.kinds).sort(), Object.keys(RUNNERS).sort());
  assert.ok(DOCUMENT.vectors.length >= 50);
});

for (const vector of DOCUMENT.vectors) {
  test(`${vector.kind}: ${vector.name}`, async () => {
    const got = await RUNNERS[vector.kind](vector.input);
    if (vector.expect && typeof vector.expect === 'object' && 'error' in vector.expect && Object.keys(vector.expect).length === 1) {
      assert.ok(got && typeof got === 'object' && 'error' in got, `expected a refusal, got ${JSON.stringify(got)}`);
      return;
    }
    assert.deepStrictEqual(got, vector.expect);
  });
}
