import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFields } from '../src/lib/rules.js';

const ID = '300f3ba8-cc49-5812-ad8e-d4ed25349486';

test('field rules say in Chinese what the server would refuse', () => {
  assert.deepEqual(validateFields('finding', { inspection_id: ID, check_item_id: ID, result: 'compliant', note: '无问题' },
    { creating: true }), {});
  const errors = validateFields('finding', { inspection_id: 'x', result: 'maybe', note: 'a'.repeat(4001), colour: 1 },
    { creating: true });
  assert.equal(errors.inspection_id, '不是有效的 UUID');
  assert.match(errors.result, /^取值应为：compliant/);
  assert.equal(errors.note, '长度不能超过 4000 个字符');
  assert.equal(errors.colour, '未知字段：colour');
  assert.equal(errors.check_item_id, '缺少必填字段');
  assert.deepEqual(validateFields('inspection', { review: { status: 'approved' } }), { review: '审核意见由审核端写入，执法终端不能修改' });
  assert.equal(validateFields('inspection', { started_at: '2025-11-26T09:00:00' }).started_at, '时间必须带时区（如 +08:00）');
  assert.deepEqual(validateFields('inspection', { started_at: '2025-11-26T09:00:00.000+08:00', place: '😀'.repeat(300) }), {});
  assert.equal(validateFields('inspection', { place: 'a\u0000b' }).place, '不能包含空字符（NUL）或无效的 Unicode 字符');
  assert.equal(validateFields('inspection', { coercive_measures: [{ kind: 'seizure', description: '扣押' }] }).coercive_measures, undefined);
  assert.ok(validateFields('inspection', { coercive_measures: [{ kind: 'fine' }] }).coercive_measures);
  assert.equal(validateFields('media', { sha256: 'a'.repeat(64) }, { current: { sha256: 'b'.repeat(64) } }).sha256, '创建后不能修改');
});
