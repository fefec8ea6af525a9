import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST, freshDb, freshVault, dumpDatabase } from './helpers.js';
import {
  createVault, unlockVault, lockVault, rewrapVault, VaultError, MAX_FAILURES, DEFAULT_ITERATIONS, vaultTokens,
  vaultFailures,
} from '../src/lib/vault.js';

test('the default derivation is PBKDF2 with at least 600,000 iterations', async () => {
  assert.ok(DEFAULT_ITERATIONS >= 600000);
  const db = await freshDb();
  await createVault(db, { username: 'slow', password: 'pw', userInfo: null, iterations: FAST });
  const row = await db.table('meta').get('vault:slow');
  assert.equal(row.value.iterations, FAST);
  assert.equal(row.value.salt.length, 16);
});

test('each user gets a random salt and key', async () => {
  const db = await freshDb();
  await freshVault(db, 'a', 'same');
  await freshVault(db, 'b', 'same');
  const a = (await db.table('meta').get('vault:a')).value;
  const b = (await db.table('meta').get('vault:b')).value;
  assert.notDeepEqual([...a.salt], [...b.salt]);
  assert.notDeepEqual([...a.wrapped], [...b.wrapped]);
});

test('unlocks offline with the password and reads what it wrote', async () => {
  const db = await freshDb();
  const vault = await freshVault(db);
  const record = await vault.encryptJSON({ note: '消防通道堵塞' });
  lockVault(vault);
  assert.equal(vault.locked, true);
  await assert.rejects(vault.encryptJSON({}), (e) => e instanceof VaultError && e.code === 'vault-locked');
  const again = await unlockVault(db, { username: 'inspector1', password: 'correct horse' });
  assert.deepEqual(await again.decryptJSON(record), { note: '消防通道堵塞' });
  assert.equal(again.userInfo.full_name, '李明');
});

test('a wrong password is refused and says how many tries are left', async () => {
  const db = await freshDb();
  await freshVault(db);
  await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'nope' }), (e) => {
    assert.ok(e instanceof VaultError);
    assert.equal(e.code, 'wrong-password');
    assert.equal(e.remaining, MAX_FAILURES - 1);
    assert.match(e.message, /密码错误/);
    return true;
  });
  await assert.rejects(unlockVault(db, { username: 'nobody', password: 'x' }), { code: 'no-vault' });
});

test('five wrong passwords in a row lock it; only an online log-in opens it again', async () => {
  const db = await freshDb();
  await freshVault(db);
  for (let i = 1; i < MAX_FAILURES; i++) {
    await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'bad' + i }), { code: 'wrong-password' });
  }
  await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'bad5' }), { code: 'locked' });
  // Now even the right password is refused offline.
  await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'correct horse' }), { code: 'locked' });
  // After the server accepted the (new) password online: the old one unwraps, the key is rewrapped.
  const vault = await unlockVault(db, { username: 'inspector1', password: 'correct horse', verifiedOnline: true });
  assert.equal(await vaultFailures(db, 'inspector1'), 0);
  await rewrapVault(db, vault, { password: 'new password', iterations: FAST });
  const reopened = await unlockVault(db, { username: 'inspector1', password: 'new password' });
  assert.equal(reopened.locked, false);
  await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'correct horse' }), { code: 'wrong-password' });
});

test('a success resets the count of wrong passwords', async () => {
  const db = await freshDb();
  await freshVault(db);
  for (let i = 0; i < MAX_FAILURES - 1; i++) {
    await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'bad' }));
  }
  await unlockVault(db, { username: 'inspector1', password: 'correct horse' });
  await assert.rejects(unlockVault(db, { username: 'inspector1', password: 'bad' }), { code: 'wrong-password', remaining: MAX_FAILURES - 1 });
});

test('ciphertext holds no plaintext, and bytes are bound to their place', async () => {
  const db = await freshDb();
  const vault = await freshVault(db);
  const secret = '经营者张三拒绝出示营业执照';
  const rec = await vault.encryptJSON({ secret }, 'entities:finding:1');
  const bytes = await vault.encryptBytes(new TextEncoder().encode('JFIF-photo-bytes'), 'm:0');
  await db.table('entities').put({ kind: 'finding', id: '1', enc: rec });
  await db.table('chunks').put({ mediaId: 'm', index: 0, ...bytes });
  const tokens = vaultTokens(db, vault);
  await tokens.set({ access_token: 'ACCESS-SECRET', refresh_token: 'REFRESH-SECRET' });
  const dump = await dumpDatabase(db);
  for (const needle of [secret, Buffer.from(secret).toString('latin1'), 'JFIF-photo-bytes', 'ACCESS-SECRET', '李明']) {
    assert.ok(!dump.includes(needle), `found ${needle} in clear`);
  }
  await assert.rejects(vault.decryptJSON(rec, 'entities:finding:2'));
  assert.deepEqual(await vault.decryptJSON(rec, 'entities:finding:1'), { secret });
  assert.deepEqual(await vaultTokens(db, vault).get(), { access_token: 'ACCESS-SECRET', refresh_token: 'REFRESH-SECRET' });
  // Two encryptions of the same value differ (fresh IVs).
  const again = await vault.encryptJSON({ secret }, 'entities:finding:1');
  assert.notDeepEqual([...again.iv], [...rec.iv]);
});

test('a password changed on the server: a new vault only when nothing of the user waits to go up', async () => {
  const { resetVault } = await import('../src/lib/vault.js');
  const db = await freshDb();
  await freshVault(db, 'li', 'old');
  await db.table('outbox').add({ id: 'm1', kind: 'finding', entityId: 'f', status: 'pending', owner: 'li', enc: {} });
  await db.table('entities').put({ kind: 'task', id: 't', owner: 'li', enc: {} });
  await db.table('entities').put({ kind: 'task', id: 'other', owner: 'wang', enc: {} });
  await assert.rejects(resetVault(db, { username: 'li', password: 'new', iterations: FAST }),
    (e) => e.code === 'has-pending' && e.pending === 1 && /原密码/.test(e.message));
  await db.table('outbox').where('id').equals('m1').modify({ status: 'done' });
  const vault = await resetVault(db, { username: 'li', password: 'new', userInfo: { id: 'u' }, iterations: FAST });
  assert.equal(vault.locked, false);
  assert.deepEqual((await db.table('entities').toArray()).map((r) => r.id), ['other']);
  assert.equal(await db.table('outbox').count(), 0);
  await unlockVault(db, { username: 'li', password: 'new' });
});
