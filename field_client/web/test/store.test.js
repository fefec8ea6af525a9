import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDb, freshVault, dumpDatabase } from './helpers.js';
import { FieldStore } from '../src/lib/store.js';
import { Hlc, HLC_PATTERN, compareHlc, parseHlc } from '../src/lib/hlc.js';

const TASK = '0b8e5c1e-2f4a-4c3b-9d7e-1a2b3c4d5e6f';
const INSPECTION = '300f3ba8-cc49-5812-ad8e-d4ed25349486';
const ITEM = '7d1b1e3c-1111-4222-8333-444455556666';

async function setup(clock = { t: 1764120000000 }) {
  const db = await freshDb();
  const vault = await freshVault(db);
  const store = new FieldStore(db, vault, {
    deviceId: 'SCJG-TAB1', userId: 'u-1', departmentId: 'd-1',
    hlc: new Hlc('SCJG-TAB1', () => clock.t), now: () => new Date(clock.t),
  });
  return { db, vault, store, clock };
}

test('put appends a mutation built as the engine builds it and updates the view', async () => {
  const { store } = await setup();
  const m = await store.put('inspection', INSPECTION, { task_id: TASK, status: 'open', place: '城南农贸市场' });
  assert.deepEqual(Object.keys(m).sort(), ['base_version', 'entity', 'entity_id', 'fields', 'hlc', 'id', 'op']);
  assert.equal(m.entity, 'inspection');
  assert.equal(m.op, 'upsert');
  assert.equal(m.base_version, 0);
  assert.match(m.hlc, HLC_PATTERN);
  assert.equal(m.hlc, '1764120000000-0000-SCJG-TAB1');
  const second = await store.put('inspection', INSPECTION, { place: '城南农贸市场东门' });
  assert.equal(second.hlc, '1764120000000-0001-SCJG-TAB1', 'same millisecond: the counter moves');
  const view = await store.get('inspection', INSPECTION);
  assert.equal(view.place, '城南农贸市场东门');
  assert.equal(view.taskId, TASK);
  assert.equal(view.unconfirmed, true);
  assert.equal(view.version, 0);
  assert.equal(view.createdById, 'u-1');
  const pending = await store.pending();
  assert.deepEqual(pending.map((p) => p.id), [m.id, second.id]);
  // One mutation per entity in a batch.
  assert.deepEqual((await store.sendable(500)).map((p) => p.id), [m.id]);
  // A finding learns its task through its inspection.
  const finding = await store.put('finding', 'f-1', { inspection_id: INSPECTION, check_item_id: ITEM, result: 'compliant' });
  assert.equal((await store.get('finding', 'f-1')).taskId, TASK);
  assert.deepEqual((await store.sendable(500)).map((p) => p.id), [m.id, finding.id]);
  assert.deepEqual((await store.list('finding', { inspectionId: INSPECTION })).map((f) => f.id), ['f-1']);
  assert.deepEqual(await store.list('finding', { inspectionId: 'other' }), []);
});

test('records and the outbox are not in clear', async () => {
  const { db, store } = await setup();
  await store.put('inspection', INSPECTION, { task_id: TASK, representative: '王建国' });
  await store.put('finding', 'f-1', { inspection_id: INSPECTION, check_item_id: ITEM, result: 'non_compliant',
    note: '冷库温度记录缺失' });
  const dump = await dumpDatabase(db);
  for (const needle of ['王建国', '冷库温度记录缺失', 'non_compliant', Buffer.from('冷库温度记录缺失').toString('latin1')]) {
    assert.ok(!dump.includes(needle), `${needle} in clear`);
  }
});

test('an applied write made base+1: it becomes the confirmed state and the next write is rebased on it', async () => {
  const { store } = await setup();
  const first = await store.put('inspection', INSPECTION, { task_id: TASK, status: 'open' });
  const second = await store.put('inspection', INSPECTION, { place: '东门' });
  await store.noteAttempt([first.id]);
  const summary = await store.applyPushResults([{ id: first.id, status: 'applied', version: 1 }]);
  assert.equal(summary.applied, 1);
  const rec = await store.record('inspection', INSPECTION);
  assert.equal(rec.server.version, 1);
  assert.deepEqual(rec.server.fields, { task_id: TASK, status: 'open' });
  const [next] = await store.pending();
  assert.equal(next.id, second.id);
  assert.equal(next.base_version, 1, 'rebased on our own confirmed write');
  // Sent but unanswered: frozen, never rebased.
  await store.noteAttempt([second.id]);
  await store.applyPushResults([{ id: second.id, status: 'applied', version: 3 }]);
  const view = await store.get('inspection', INSPECTION);
  assert.equal(view.place, '东门', 'acknowledged but newer than confirmed: still in the view');
  assert.equal(view.unconfirmed, true);
  assert.equal((await store.record('inspection', INSPECTION)).server.version, 1, 'version 3 not known: not confirmed');
});

test('a write that made more than base+1 is not taken for the server state (someone wrote in between)', async () => {
  const { store } = await setup();
  const first = await store.put('inspection', INSPECTION, { task_id: TASK });
  const second = await store.put('inspection', INSPECTION, { place: 'A' });
  await store.applyPushResults([{ id: first.id, status: 'applied', version: 2 }]);
  assert.equal((await store.pending())[0].base_version, 0);
  assert.equal((await store.record('inspection', INSPECTION)).server.version, 0);
  assert.equal(second.base_version, 0);
});

test('pulled changes become the confirmed state; our unconfirmed writes stay on top', async () => {
  const { store, clock } = await setup();
  await store.put('inspection', INSPECTION, { task_id: TASK, status: 'open', place: '我们的地点' });
  await store.applyPulledChanges([
    { entity: 'task', entity_id: TASK, op: 'upsert', version: 4, fields: { status: 'dispatched', title: '食品安全检查' },
      updated_at: '2025-11-26T01:00:00+00:00' },
    { entity: 'inspection', entity_id: INSPECTION, op: 'upsert', version: 2,
      fields: { task_id: TASK, status: 'returned', place: '同事的地点', review: { status: 'returned', comment: '补拍营业执照' } },
      updated_at: '2025-11-26T01:00:00+00:00',
      meta: { task_id: TASK, department_id: 'd-2', created_by_id: 'u-9', hlc: '1764130000000-0005-SCJG-TAB2' } },
    { entity: 'future_kind', entity_id: 'x', op: 'upsert', version: 1, fields: {} },
  ], { cursor: 'cur-1' });
  assert.equal(await store.cursor(), 'cur-1');
  const view = await store.get('inspection', INSPECTION);
  assert.equal(view.place, '我们的地点', 'our pending write wins locally until the server answers');
  assert.equal(view.status, 'open');
  assert.equal(view.review.comment, '补拍营业执照');
  assert.equal(view.version, 2);
  assert.equal(view.departmentId, 'd-2');
  const task = await store.get('task', TASK);
  assert.equal(task.title, '食品安全检查');
  assert.deepEqual((await store.list('task')).map((t) => t.id), [TASK]);
  // The clock folded the server's stamp in: the next edit orders after it, even with our clock behind.
  clock.t = 1764120000500;
  const next = await store.put('inspection', INSPECTION, { conclusion: '整改' });
  assert.equal(next.hlc, '1764130000000-0006-SCJG-TAB1');
  assert.equal(next.base_version, 2, 'based on the pulled version');
  assert.ok(compareHlc(next.hlc, '1764130000000-0005-SCJG-TAB2') > 0);
  // An older page never goes back in time.
  await store.applyPulledChanges([{ entity: 'inspection', entity_id: INSPECTION, op: 'upsert', version: 1,
    fields: { task_id: TASK, place: '旧' } }]);
  assert.equal((await store.record('inspection', INSPECTION)).server.version, 2);
});

test('a pulled delete hides the entity; a delete of ours is a tombstone mutation', async () => {
  const { store } = await setup();
  await store.applyPulledChanges([{ entity: 'finding', entity_id: 'f-9', op: 'upsert', version: 1,
    fields: { inspection_id: INSPECTION, check_item_id: ITEM, result: 'compliant' } }]);
  assert.ok(await store.get('finding', 'f-9'));
  const m = await store.remove('finding', 'f-9');
  assert.equal(m.op, 'delete');
  assert.equal(m.base_version, 1);
  assert.equal(await store.get('finding', 'f-9'), null);
});

test('conflict is recorded; after the pull the values of ours that lost are named', async () => {
  const { store } = await setup();
  const m = await store.put('inspection', INSPECTION, { task_id: TASK, place: '我的' });
  const summary = await store.applyPushResults([{ id: m.id, status: 'conflict', version: 3 }]);
  assert.equal(summary.conflict, 1);
  let [c] = await store.conflicts();
  assert.equal(c.mutationId, m.id);
  assert.deepEqual(c.overridden, {});
  await store.applyPulledChanges([{ entity: 'inspection', entity_id: INSPECTION, op: 'upsert', version: 3,
    fields: { task_id: TASK, place: '别人的' } }]);
  [c] = await store.conflicts();
  assert.deepEqual(c.overridden, { place: '别人的' });
  assert.equal((await store.counts()).conflicts, 1);
});

test('a rejected mutation is set aside with a Chinese reason and leaves the view', async () => {
  const { store } = await setup();
  await store.applyPulledChanges([{ entity: 'inspection', entity_id: INSPECTION, op: 'upsert', version: 1,
    fields: { task_id: TASK, place: '服务器' } }]);
  const m = await store.put('inspection', INSPECTION, { place: '本机' });
  assert.equal((await store.get('inspection', INSPECTION)).place, '本机');
  const summary = await store.applyPushResults([{ id: m.id, status: 'rejected', code: 'task-closed', reason: 'Task is closed' }]);
  assert.equal(summary.rejected.length, 1);
  const [aside] = await store.setAsideList();
  assert.equal(aside.code, 'task-closed');
  assert.equal(aside.reason, '检查任务已关闭，不能再修改其记录', 'the English reason is replaced by ours');
  assert.equal((await store.get('inspection', INSPECTION)).place, '服务器');
  assert.deepEqual(await store.pending(), []);
  // The server's Chinese reason is kept as it is.
  const other = await store.put('inspection', INSPECTION, { place: 'x' });
  await store.applyPushResults([{ id: other.id, status: 'rejected', code: 'forbidden', reason: '您不是检查组成员' }]);
  assert.equal((await store.setAsideList())[1].reason, '您不是检查组成员');
  const counts = await store.counts();
  assert.deepEqual(counts, { pending: 0, setAside: 2, conflicts: 0 });
});

test('an unknown result leaves the mutation pending with a note', async () => {
  const { store } = await setup();
  const m = await store.put('inspection', INSPECTION, { task_id: TASK });
  const summary = await store.applyPushResults([{ id: m.id, status: 'weird' }]);
  assert.equal(summary.unknown, 1);
  const [p] = await store.pending();
  assert.equal(p.errorCode, 'unknown-result');
});

test('the clock survives a new store on the same database', async () => {
  const { db, vault, store } = await setup({ t: 1764120000000 });
  await store.put('inspection', INSPECTION, { task_id: TASK });
  const again = new FieldStore(db, vault, { deviceId: 'SCJG-TAB1', userId: 'u-1', hlc: new Hlc('SCJG-TAB1', () => 1764110000000) });
  const m = await again.put('inspection', INSPECTION, { place: 'p' });
  assert.deepEqual(parseHlc(m.hlc), { wall: 1764120000000, counter: 1, node: 'SCJG-TAB1' });
});

test('two inspectors on one tablet: each sees only their own records, never decrypts the other\'s', async () => {
  const { db, store: li } = await setup();
  const { freshVault: makeVault } = await import('./helpers.js');
  const wangVault = await makeVault(db, 'wang', 'another password');
  const wang = new FieldStore(db, wangVault, { deviceId: 'SCJG-TAB1', userId: 'u-2', hlc: new Hlc('SCJG-TAB1', () => 1764120000000) });
  await li.put('inspection', INSPECTION, { task_id: TASK, place: '李的记录' });
  assert.equal(await wang.get('inspection', INSPECTION), null);
  assert.deepEqual(await wang.pending(), []);
  assert.deepEqual(await wang.sendable(10), []);
  assert.deepEqual(await wang.list('inspection'), []);
  assert.deepEqual(await wang.othersPending(), [{ owner: 'inspector1', pending: 1 }]);
  assert.equal((await wang.counts()).pending, 0);
  // Wang's pull and forgetting it leave Li's captured record visible to Li again.
  await wang.applyPulledChanges([{ entity: 'inspection', entity_id: INSPECTION, op: 'upsert', version: 1, fields: { task_id: TASK } }]);
  await li.forgetPulled();
  const back = await li.get('inspection', INSPECTION);
  assert.equal(back.place, '李的记录');
  assert.equal(back.taskId, TASK);
  assert.equal(back.unconfirmed, true);
  assert.equal((await li.pending()).length, 1);
});

test('a change after a refused creation carries the refused fields, the new values on top', async () => {
  const { store } = await setup();
  const created = await store.put('inspection', INSPECTION, { task_id: TASK, status: 'open', place: '前厅' });
  await store.applyPushResults([{ id: created.id, status: 'rejected', code: 'invalid-fields', reason: '检查地点有误' }]);
  const change = await store.put('inspection', INSPECTION, { place: '仓库' });
  assert.deepEqual(change.fields, { task_id: TASK, status: 'open', place: '仓库' },
    'a bare delta could only be refused again for the task it lacks');
  const [aside] = await store.setAsideList();
  assert.equal(aside.id, created.id, 'the refusal stays on show');
  const later = await store.put('inspection', INSPECTION, { note: '复查' });
  assert.deepEqual(later.fields, { note: '复查' }, 'once a pending change carries the record, deltas are deltas');
});
