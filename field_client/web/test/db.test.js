import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, DB_VERSION } from '../src/lib/db.js';

test('a v1 database opened by v2 code keeps its rows and migrates them', async () => {
  const name = 'migrate-' + Math.random();
  const v1 = await openDatabase(name, { version: 1 });
  assert.equal(v1.verno, 1);
  await v1.table('meta').put({ key: 'cursor', value: 'c-17' });
  await v1.table('entities').put({ kind: 'finding', id: 'f1', taskId: 't', inspectionId: 'i', updatedAt: 'x',
    enc: { iv: new Uint8Array([1, 2]), data: new Uint8Array([3, 4]) } });
  await v1.table('outbox').add({ id: 'm1', kind: 'finding', entityId: 'f1', status: 'pending', enc: { iv: 1, data: 2 } });
  await v1.table('media').put({ id: 'md1', state: 'failed', offset: 0, uploadUrl: null, size: 5, sha256: 'ab',
    error: '旧版本的失败原因' });
  await v1.table('chunks').put({ mediaId: 'md1', index: 0, iv: new Uint8Array(12), data: new Uint8Array([9]) });
  v1.close();

  const v2 = await openDatabase(name);
  assert.equal(v2.verno, DB_VERSION);
  assert.deepEqual(await v2.table('meta').get('cursor'), { key: 'cursor', value: 'c-17' });
  const entity = await v2.table('entities').get(['finding', 'f1']);
  assert.deepEqual([...entity.enc.data], [3, 4]);
  const [mutation] = await v2.table('outbox').where('[status+seq]').between(['pending', 0], ['pending', Infinity]).toArray();
  assert.equal(mutation.id, 'm1');
  assert.equal(mutation.attempts, 0);
  const media = await v2.table('media').get('md1');
  assert.deepEqual(media.error, { code: 'failed', reason: '旧版本的失败原因' });
  assert.equal(media.acked, false);
  assert.equal(await v2.table('chunks').count(), 1);
  await v2.table('conflicts').put({ mutationId: 'm1', entityId: 'f1', detectedAt: 'now', enc: {} });
  assert.equal(await v2.table('conflicts').count(), 1);
  v2.close();
});
