import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsQR from 'jsqr';

import { codeViewState, heldCode, inspectionCodeFor, qrMatrix, qrPath } from '../src/lib/codes.js';

const TOKEN = `${'eyJ2IjoxfQ'.repeat(30)}.${'c2ln'.repeat(21)}`;
const URL = `https://inspect.example.gov.cn/public/c/${TOKEN}`;
const TASK = {
  id: '300f3ba8-cc49-5812-ad8e-d4ed25349486', window_start: '2026-12-03T08:00:00+08:00',
  window_end: '2026-12-03T17:00:00+08:00',
  inspection_code: { token: TOKEN, url: URL, expires_at: '2026-12-03T09:00:00+00:00' },
};

test('the code screen: none, not yet valid, valid up to expires_at, expired after it, withdrawn', () => {
  const at = (iso) => codeViewState(TASK, new Date(iso));
  assert.equal(at('2026-12-03T07:59:59+08:00').state, 'not-yet-valid');
  assert.equal(at('2026-12-03T07:59:59+08:00').showQr, true);
  const valid = at('2026-12-03T12:00:00+08:00');
  assert.deepEqual([valid.state, valid.showQr, valid.url, valid.token, valid.expiresAt],
    ['valid', true, URL, TOKEN, '2026-12-03T09:00:00+00:00']);
  assert.equal(at('2026-12-03T17:00:00+08:00').state, 'valid'); // expires_at itself still counts (as the server)
  const expired = at('2026-12-03T17:00:00.001+08:00');
  assert.deepEqual([expired.state, expired.showQr], ['expired', false]);
  assert.equal(codeViewState(TASK, '2026-12-04T00:00:00+08:00').state, 'expired'); // an ISO string as the clock

  // An older server sends no code; a malformed one is no code either.
  const { inspection_code: _, ...older } = TASK;
  assert.equal(codeViewState(older, new Date('2026-12-03T12:00:00+08:00')).state, 'none');
  for (const bad of [null, 'token', { token: '', url: URL }, { token: TOKEN, url: 'javascript:alert(1)' },
    { token: 'x'.repeat(2049), url: URL }, { token: TOKEN }]) {
    assert.equal(codeViewState({ ...TASK, inspection_code: bad }, new Date()).state, 'none', JSON.stringify(bad));
    assert.equal(inspectionCodeFor({ ...TASK, inspection_code: bad }), null);
  }
  assert.equal(codeViewState(null, new Date()).state, 'none');
  assert.equal(codeViewState({ ...TASK, deleted: true }, new Date('2026-12-03T12:00:00+08:00')).state, 'withdrawn');

  // Without expires_at the window's end is the limit.
  const noExpiry = { ...TASK, inspection_code: { token: TOKEN, url: URL } };
  assert.deepEqual(heldCode(noExpiry), { token: TOKEN, url: URL, expiresAt: null });
  assert.equal(codeViewState(noExpiry, new Date('2026-12-03T17:30:00+08:00')).state, 'expired');
});

test('the inspection records the token the tablet holds (null when none)', () => {
  assert.equal(inspectionCodeFor(TASK), TOKEN);
  assert.equal(inspectionCodeFor({ id: TASK.id }), null);
  assert.equal(inspectionCodeFor(undefined), null);
});

test('the QR code drawn from the path reads back as the URL', () => {
  const matrix = qrMatrix(URL);
  const margin = 4;
  const scale = 4;
  const size = (matrix.length + 2 * margin) * scale;
  assert.ok(matrix.length >= 21 && matrix.length % 4 === 1, matrix.length);
  // Paint the path's rectangles as a renderer would, then let another decoder read it.
  const pixels = new Uint8ClampedArray(size * size * 4).fill(255);
  for (const [, x, y, w] of qrPath(matrix, margin).matchAll(/M(\d+) (\d+)h(\d+)v1h-\d+z/g)) {
    for (let dy = 0; dy < scale; dy += 1) {
      for (let dx = 0; dx < Number(w) * scale; dx += 1) {
        const offset = (((Number(y) * scale) + dy) * size + Number(x) * scale + dx) * 4;
        pixels.fill(0, offset, offset + 3);
      }
    }
  }
  assert.equal(jsQR(pixels, size, size)?.data, URL);
  assert.equal(qrPath([[false, true, true], [true, false, false]], 1), 'M2 1h2v1h-2zM1 2h1v1h-1z');
});
