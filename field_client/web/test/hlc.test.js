import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hlc, compareHlc, parseHlc, formatHlc, validNode } from '../src/lib/hlc.js';

test('format and parse are inverse and fixed-width', () => {
  const s = '1764120000000-0001-SCJG-TAB1';
  assert.deepEqual(parseHlc(s), { wall: 1764120000000, counter: 1, node: 'SCJG-TAB1' });
  assert.equal(formatHlc(parseHlc(s)), s);
  assert.equal(formatHlc({ wall: 5, counter: 255, node: 'a' }), '0000000000005-00ff-a');
  for (const bad of ['1764120000000-1-X', '1764120000000-00FF-X', '176412000000-0001-X', '1764120000000-0001-', '1764120000000-0001--x', null, 12]) {
    assert.throws(() => parseHlc(bad), TypeError, String(bad));
  }
  assert.equal(validNode('a'.repeat(64)), true);
  assert.equal(validNode('a'.repeat(65)), false);
});

test('order is (wall, counter, node), the same as the strings', () => {
  const stamps = ['1764120000001-0000-A', '1764120000000-0002-A', '1764120000000-0001-B', '1764120000000-0001-A'];
  const sorted = [...stamps].sort(compareHlc);
  assert.deepEqual(sorted, [...stamps].sort());
  assert.deepEqual(sorted, ['1764120000000-0001-A', '1764120000000-0001-B', '1764120000000-0002-A', '1764120000001-0000-A']);
  assert.equal(compareHlc('1764120000000-0001-A', '1764120000000-0001-A'), 0);
});

test('tick never runs backwards and bumps the counter within a millisecond', () => {
  let now = 1000;
  const clock = new Hlc('TAB', () => now);
  assert.equal(clock.tick(), '0000000001000-0000-TAB');
  assert.equal(clock.tick(), '0000000001000-0001-TAB');
  now = 900; // the clock was set back
  assert.equal(clock.tick(), '0000000001000-0002-TAB');
  now = 1001;
  assert.equal(clock.tick(), '0000000001001-0000-TAB');
});

test('the counter past ffff borrows a millisecond', () => {
  const clock = new Hlc('TAB', () => 10, '0000000000010-ffff-TAB');
  assert.equal(clock.tick(), '0000000000011-0000-TAB');
});

test('receive folds a remote stamp in, keeping our node; the next tick orders after it', () => {
  const clock = new Hlc('TAB1', () => 100);
  assert.equal(clock.receive('0000000000500-0003-TAB2'), '0000000000500-0003-TAB1');
  assert.equal(clock.receive('0000000000400-0009-TAB2'), '0000000000500-0003-TAB1', 'an older stamp changes nothing');
  const next = clock.tick();
  assert.equal(next, '0000000000500-0004-TAB1');
  assert.ok(compareHlc(next, '0000000000500-0003-TAB2') > 0);
});

test('a bad node cannot tick', () => {
  assert.throws(() => new Hlc('bad node', () => 1).tick(), TypeError);
});
