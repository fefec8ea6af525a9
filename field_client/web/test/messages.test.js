import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  messageFor, isChinese, problemMessage, rejectionReason, unreadableReason, REJECTION_TEXTS, PROBLEM_TEXTS, STATUS_TEXTS,
} from '../src/lib/messages.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const python = readFileSync(`${root}field_client/messages.py`, 'utf8');

function dictKeys(name) {
  const body = python.split(`${name} = {`)[1].split('\n}')[0];
  return [...body.matchAll(/^\s*"([a-z0-9-]+)":|,\s*"([a-z0-9-]+)":|^\s*(\d{3}):|,\s*(\d{3}):/gm)]
    .map((m) => m[1] || m[2] || m[3] || m[4]);
}

test('every code of field_client/messages.py has Chinese and English text here', () => {
  const codes = [...dictKeys('REJECTION_TEXTS'), ...dictKeys('PROBLEM_TEXTS')];
  assert.ok(codes.length >= 25, `parsed ${codes.length} codes`);
  for (const code of codes) {
    assert.ok(isChinese(messageFor(code)), `${code}: ${messageFor(code)}`);
    assert.ok(!isChinese(messageFor(code, 'en')), `${code} in English`);
    assert.ok(!messageFor(code).includes('代码'), `${code} has its own text`);
  }
  for (const status of dictKeys('_STATUS_TEXTS')) assert.ok(isChinese(messageFor(Number(status))), status);
});

test('every rejection code of docs/sync.md and every push result has a text', () => {
  const sync = readFileSync(`${root}docs/sync.md`, 'utf8');
  const codes = sync.split('Codes:')[1].split('- `conflict`')[0];
  const found = [...codes.matchAll(/`([a-z]+-[a-z-]+|forbidden)`/g)].map((m) => m[1]);
  assert.ok(found.includes('record-full') && found.includes('inspection-id'));
  for (const code of found) assert.ok(Object.hasOwn(REJECTION_TEXTS, code), code);
  for (const result of ['applied', 'duplicate', 'conflict', 'rejected']) assert.ok(isChinese(messageFor(result)), result);
  for (const code of ['enrolment-code-invalid', 'enrolment-code-used', 'enrolment-code-expired', 'device-unknown',
    'device-not-allowed', 'device-mismatch', 'device-required', 'hash-mismatch', 'upload-too-large', 'offline']) {
    assert.ok(Object.hasOwn(PROBLEM_TEXTS, code), code);
  }
  assert.ok(Object.keys(STATUS_TEXTS).length >= 16);
});

test('an English server string is never what the inspector reads', () => {
  assert.equal(problemMessage(403, { type: '/problems/device-not-allowed', title: 'Forbidden', detail: 'Other department' }),
    PROBLEM_TEXTS['device-not-allowed'].zh);
  assert.equal(problemMessage(422, { type: 'https://x/problems/validation-failed', title: '校验失败', detail: 'bad' }), '校验失败');
  assert.equal(problemMessage(400, { detail: '登记码不正确' }), '登记码不正确');
  assert.equal(problemMessage(418, {}), '服务器拒绝了请求（HTTP 418）');
  assert.equal(problemMessage(503, 'not json'), '服务暂时不可用');
  assert.match(problemMessage(401, { type: '/problems/unknown-device' }), /。请管理员/);
  assert.equal(rejectionReason('clock-skew', 'HLC too far ahead'), REJECTION_TEXTS['clock-skew'].zh);
  assert.equal(rejectionReason('new-code-from-2030', 'Nope'), '服务器拒绝了这条记录（代码 new-code-from-2030）');
  assert.equal(unreadableReason(['hlc', 'entity_id']), '服务器无法读取这条记录（本机记录可能已损坏）：时间戳、记录编号有误');
  assert.equal(messageFor('/problems/token-invalid'), PROBLEM_TEXTS['token-invalid'].zh);
  assert.equal(messageFor('whatever'), '服务器拒绝了请求（代码 whatever）');
});
