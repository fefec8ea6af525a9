// The inspection code's offline checker (src/public-check/verify.js) against tokens the server signed
// (tests/protocol/code_vectors.json, made and checked by tests/protocol/test_code_vectors.py).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';

import {
  CodeError, NOT_CHECKED_OFFLINE, checkOffline, keysFromDocument, officeTime, offlineReport, parseToken,
  tokenFromPath, verifyToken, windowState,
} from '../src/public-check/verify.js';

const VECTORS = JSON.parse(fs.readFileSync(new URL('../../../tests/protocol/code_vectors.json', import.meta.url), 'utf8'));
const KEYS = keysFromDocument(VECTORS.keys);
const GENUINE = VECTORS.tokens.find((t) => t.name === 'genuine');
const TAMPERED = VECTORS.tokens.find((t) => t.name.startsWith('tampered')).token;
const FOREIGN = VECTORS.tokens.find((t) => t.expect.code === 'unknown-key').token;
const EXPECTED = GENUINE.expect.claims;
const IN_WINDOW = (EXPECTED.window_start + 3600) * 1000;

async function outcome(token, keys = KEYS) {
  try {
    const claims = await verifyToken(token, keys);
    return {
      ok: true,
      claims: {
        key_id: claims.keyId, task_id: claims.taskId, enterprise_name: claims.enterpriseName,
        credit_code_masked: claims.creditCodeMasked, departments: claims.departments,
        window_start: claims.windowStart, window_end: claims.windowEnd, issued_at: claims.issuedAt,
      },
    };
  } catch (error) {
    assert.ok(error instanceof CodeError, `${error}`);
    return { ok: false, code: error.code };
  }
}

describe('the Python side\'s vectors', () => {
  for (const vector of VECTORS.tokens) {
    it(`answers as the server for: ${vector.name}`, async () => {
      assert.deepEqual(await outcome(vector.token), vector.expect);
    });
  }

  it('decides the window from the injected clock as the server does', async () => {
    const claims = await verifyToken(GENUINE.token, KEYS);
    for (const { now_ms: now, state } of VECTORS.window) assert.equal(windowState(claims, now), state, `at ${now}`);
  });
});

describe('parse and verify', () => {
  it('parses the payload without a key', () => {
    const { payload, signature } = parseToken(GENUINE.token);
    assert.equal(payload.n, '祁阳市浯溪食品有限公司');
    assert.equal(payload.k, VECTORS.keys.keys[0].id);
    assert.equal(signature.length, 64);
  });

  it('refuses a token signed by a key it does not hold, naming the key id', async () => {
    await assert.rejects(verifyToken(FOREIGN, KEYS), (e) => e.code === 'unknown-key' && /^[0-9a-f]{16}$/.test(e.keyId));
    await assert.rejects(verifyToken(GENUINE.token, new Map()), { code: 'unknown-key' });
  });

  it('reads only Ed25519 keys of 32 bytes from the keys document', () => {
    assert.equal(keysFromDocument({ algorithm: 'RSA', keys: VECTORS.keys.keys }).size, 0);
    assert.equal(keysFromDocument({ algorithm: 'Ed25519', keys: [{ id: 'x', public_key: 'AAAA' }] }).size, 0);
    assert.equal(keysFromDocument(null).size, 0);
    assert.deepEqual([...KEYS.keys()], [VECTORS.keys.keys[0].id]);
  });

  it('takes the token from the page\'s path', () => {
    assert.equal(tokenFromPath(`/public/c/${GENUINE.token}`), GENUINE.token);
    assert.equal(tokenFromPath(`/public/c/${GENUINE.token}/qr.svg`), GENUINE.token);
    assert.equal(tokenFromPath('/public/c/'), null);
    assert.equal(tokenFromPath('/review/'), null);
  });
});

describe('what the offline page states', () => {
  it('in the window: what the token proves, and what it cannot', async () => {
    const report = await checkOffline(GENUINE.token, VECTORS.keys, IN_WINDOW);
    assert.equal(report.state, 'valid');
    const text = report.checked.map((c) => `${c.label}：${c.value}`).join('\n');
    assert.match(text, /签名：有效：此码由行政执法监督平台的签名密钥/);
    assert.match(text, /检查对象：祁阳市浯溪食品有限公司/);
    assert.match(text, /统一社会信用代码：914311\*{8}Q21X/);
    assert.match(text, /检查部门：市场监督管理局、生态环境局/);
    assert.match(text, /计划检查时间：2026-12-03 08:00 至 2026-12-03 17:00（北京时间）/);
    assert.match(text, /现在在计划检查时间内（本机时间 2026-12-03 09:00）/);
    assert.deepEqual(report.unchecked, NOT_CHECKED_OFFLINE);
    assert.ok(report.unchecked.some((u) => u.includes('取消')) && report.unchecked.some((u) => u.includes('执法证')));
    assert.ok(report.unchecked.some((u) => u.includes('审批')) && report.unchecked.some((u) => u.includes('上限')));
    assert.match(report.notes.join(''), /恢复网络后重新打开此页面/);
  });

  it('before and after the window, by the phone\'s clock', async () => {
    const early = await checkOffline(GENUINE.token, VECTORS.keys, EXPECTED.window_start * 1000 - 60_000);
    assert.equal(early.state, 'not-yet-valid');
    assert.match(early.verdict, /尚未开始/);
    const late = await checkOffline(GENUINE.token, VECTORS.keys, EXPECTED.window_end * 1000 + 60_000);
    assert.equal(late.state, 'expired');
    assert.match(late.verdict, /已经结束/);
  });

  it('a tampered token is called forged and none of its contents is repeated', async () => {
    const report = await checkOffline(TAMPERED, VECTORS.keys, IN_WINDOW);
    assert.equal(report.state, 'forged');
    assert.match(report.verdict, /签名无效，可能系伪造/);
    assert.deepEqual(report.checked, []);
    assert.doesNotMatch(JSON.stringify(report), /另一家/);
  });

  it('a token of an unknown key cannot be checked with the keys held', async () => {
    const report = await checkOffline(FOREIGN, VECTORS.keys, IN_WINDOW);
    assert.equal(report.state, 'unknown-key');
    assert.match(report.verdict, /无法用本机保存的密钥核验/);
    assert.match(report.notes.join(''), /恢复网络后/);
  });

  it('malformed, no keys held, and an unexpected failure', async () => {
    assert.equal((await checkOffline('abc', VECTORS.keys, IN_WINDOW)).state, 'malformed');
    assert.equal((await checkOffline(null, VECTORS.keys, IN_WINDOW)).state, 'malformed');
    assert.equal((await checkOffline(GENUINE.token, null, IN_WINDOW)).state, 'no-keys');
    assert.equal(offlineReport(new TypeError('boom'), IN_WINDOW).state, 'error');
  });

  it('formats times in Beijing time whatever the phone\'s zone', () => {
    assert.equal(officeTime(Date.UTC(2026, 11, 2, 16, 5)), '2026-12-03 00:05');
  });
});
