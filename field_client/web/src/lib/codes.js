// The task's inspection code (涉企行政检查码, "扫码入企") as the tablet holds it: pulled with the task
// (`fields.inspection_code = {token, url, expires_at}`, server/sync/service.py `_task_change`) and shown to the
// enterprise offline as a QR code of its URL. Pure functions: the clock is passed in, nothing is fetched.
import qrcode from 'qrcode-generator';

import { isoToEpochMs } from './times.js';

/** Longest token the server signs or accepts (server/codes/token.py MAX_TOKEN_LENGTH; the field's limit). */
export const MAX_TOKEN_LENGTH = 2048;

/**
 * The code a pulled task carries, as `{token, url, expiresAt}`, or null: none (a task from an older server, or
 * one not dispatched) or one the tablet cannot use (not a token, not an http(s) URL).
 */
export function heldCode(task) {
  const code = task?.inspection_code;
  if (!code || typeof code !== 'object') return null;
  const { token, url } = code;
  if (typeof token !== 'string' || !token || token.length > MAX_TOKEN_LENGTH) return null;
  if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/i.test(url)) return null;
  const expiresAt = typeof code.expires_at === 'string' && isoToEpochMs(code.expires_at) !== null ? code.expires_at : null;
  return { token, url, expiresAt };
}

/** The token to record on the inspection the tablet creates for this task (`inspection_code`), or null. */
export function inspectionCodeFor(task) {
  return heldCode(task)?.token ?? null;
}

/**
 * What the code screen shows at `now` (a Date or an ISO string: the app's clock). `state` is
 * - `none`: the task carries no code (「本任务暂无检查码」);
 * - `withdrawn`: the task was withdrawn or cancelled after it was pulled (its code no longer counts);
 * - `not-yet-valid`: the planned window has not begun (the QR is shown; the enterprise's page says so too);
 * - `valid`: within the window, up to `expires_at` inclusive (as the server's check: expired only after it);
 * - `expired`: after `expires_at`.
 * Returns `{state, token, url, expiresAt, windowStart, windowEnd, showQr}`.
 */
export function codeViewState(task, now) {
  const at = now instanceof Date ? now.getTime() : isoToEpochMs(String(now));
  const base = {
    token: null, url: null, expiresAt: null, windowStart: task?.window_start ?? null, windowEnd: task?.window_end ?? null,
  };
  if (!task) return { ...base, state: 'none', showQr: false };
  if (task.deleted) return { ...base, state: 'withdrawn', showQr: false };
  const code = heldCode(task);
  if (!code) return { ...base, state: 'none', showQr: false };
  const expires = isoToEpochMs(code.expiresAt ?? task.window_end ?? '');
  const start = isoToEpochMs(task.window_start ?? '');
  let state = 'valid';
  if (expires !== null && at > expires) state = 'expired';
  else if (start !== null && at < start) state = 'not-yet-valid';
  return { ...base, ...code, expiresAt: code.expiresAt ?? task.window_end ?? null, state, showQr: state !== 'expired' };
}

/**
 * The QR code of `text` as rows of booleans (true = dark), with no quiet zone. Byte mode, error correction M by
 * default (a screen has no stains; M still survives glare on the tablet's glass), the smallest version that fits.
 */
export function qrMatrix(text, level = 'M') {
  const qr = qrcode(0, level);
  qr.addData(String(text), 'Byte');
  qr.make();
  const size = qr.getModuleCount();
  const rows = [];
  for (let r = 0; r < size; r += 1) {
    const row = new Array(size);
    for (let c = 0; c < size; c += 1) row[c] = qr.isDark(r, c);
    rows.push(row);
  }
  return rows;
}

/**
 * An SVG path (`d`) drawing the dark modules of `matrix`, offset by `margin` modules (the quiet zone), one
 * rectangle per horizontal run: for `<svg viewBox="0 0 {n + 2·margin} {n + 2·margin}">`.
 */
export function qrPath(matrix, margin = 4) {
  const parts = [];
  matrix.forEach((row, r) => {
    let c = 0;
    while (c < row.length) {
      if (!row[c]) {
        c += 1;
        continue;
      }
      const from = c;
      while (c < row.length && row[c]) c += 1;
      parts.push(`M${from + margin} ${r + margin}h${c - from}v1h-${c - from}z`);
    }
  });
  return parts.join('');
}
