import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError } from '../src/lib/api.js';
import { memoryTokens } from '../src/lib/vault.js';

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

test('login sends the device credential, keeps the pair and returns who logged in', async () => {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    if (url.endsWith('/api/v1/auth/token')) return json(200, { access_token: 'a', refresh_token: 'r', token_type: 'Bearer', expires_in: 900 });
    if (url.endsWith('/api/v1/auth/me')) {
      assert.equal(init.headers.Authorization, 'Bearer a');
      return json(200, { id: 'u-1', username: 'li', role: 'inspector', department_id: 'd-1' });
    }
    throw new Error(url);
  };
  const tokens = memoryTokens();
  const api = new Api('https://srv.example/', { fetch, tokens });
  const { user } = await api.login({ username: 'li', password: 'pw', deviceId: 'SCJG-TAB1', deviceSecret: 's3cret' });
  assert.equal(user.id, 'u-1');
  assert.deepEqual(JSON.parse(calls[0].init.body), { username: 'li', password: 'pw', device_id: 'SCJG-TAB1', device_secret: 's3cret' });
  assert.equal(calls[0].url, 'https://srv.example/api/v1/auth/token');
  assert.equal((await tokens.get()).access_token, 'a');
});

test('refusals are ApiErrors with the problem code and Chinese words', async () => {
  const api = new Api('', {
    fetch: async () => json(403, { type: 'https://srv/problems/device-not-allowed', title: 'Forbidden', status: 403,
      detail: 'This tablet belongs to another department' }),
  });
  await assert.rejects(api.login({ username: 'x', password: 'y', deviceId: 'T', deviceSecret: 's' }), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 403);
    assert.equal(e.code, 'device-not-allowed');
    assert.equal(e.detail, 'This tablet belongs to another department');
    assert.equal(e.message, '这台平板属于其他部门，不能用您的账号登录');
    assert.equal(e.offline, false);
    return true;
  });
});

test('a validation problem keeps its field errors for the program', async () => {
  const api = new Api('', {
    fetch: async () => json(422, { type: '/problems/validation-failed', title: '提交的数据未通过校验', status: 422,
      errors: { code: ['Missing data for required field.'] } }),
  });
  await assert.rejects(api.enrol(''), (e) => e.code === 'validation-failed' && e.errors.code.length === 1
    && e.message === '提交的数据未通过校验');
});

test('enrol spends a code and returns the device credential', async () => {
  let sent;
  const api = new Api('', {
    fetch: async (url, init) => {
      sent = { url, body: JSON.parse(init.body), auth: init.headers.Authorization };
      return json(201, { device_id: 'SCJG-TAB7', device_secret: 'xyz', department: { id: 'd', code: 'SCJG', name: '市场监管局' }, label: '7号' });
    },
  });
  const device = await api.enrol(' abcd-efgh-jklm ');
  assert.equal(device.device_id, 'SCJG-TAB7');
  assert.deepEqual(sent.body, { code: 'ABCD-EFGH-JKLM' });
  assert.equal(sent.url, '/api/v1/devices/enrol');
  assert.equal(sent.auth, undefined, 'no log-in for enrolment');
  const spent = new Api('', { fetch: async () => json(410, { type: '/problems/enrolment-code-used', title: 'Gone' }) });
  await assert.rejects(spent.enrol('AAAA-BBBB-CCCC'), (e) => e.code === 'enrolment-code-used' && /已被使用/.test(e.message));
});

test('a network failure is an offline ApiError; a non-JSON error page never reaches the inspector', async () => {
  const api = new Api('', { fetch: async () => { throw new TypeError('Failed to fetch'); }, tokens: memoryTokens({ access_token: 'a', refresh_token: 'r' }) });
  await assert.rejects(api.get('/sync/pull'), (e) => e.offline === true && e.status === 0 && e.code === 'offline' && /网络/.test(e.message));
  const proxy = new Api('', { fetch: async () => new Response('<html>Bad Gateway</html>', { status: 502 }), tokens: memoryTokens({ access_token: 'a', refresh_token: 'r' }) });
  await assert.rejects(proxy.get('/x'), (e) => e.status === 502 && e.code === 'http-502' && e.message === '服务器网关错误');
});

test('an inspector-only tablet refuses other roles', async () => {
  const api = new Api('', {
    fetch: async (url) => (url.endsWith('/token') ? json(200, { access_token: 'a', refresh_token: 'r' })
      : json(200, { id: 'u', role: 'supervisor' })),
  });
  await assert.rejects(api.login({ username: 's', password: 'p' }), { code: 'not-a-tablet' });
});
