// Times as the app writes them for the server (ISO 8601 with the tablet's offset, to the millisecond, as
// field_client.times.iso_local) and instants read back from the server's strings.

function pad(n, width = 2) {
  return String(Math.trunc(Math.abs(n))).padStart(width, '0');
}

/** ISO 8601 with the tablet's UTC offset, e.g. 2026-12-03T14:05:09.120+08:00. */
export function isoLocal(date = new Date()) {
  const d = date instanceof Date ? date : new Date(date);
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:`
    + `${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}${sign}${pad(offset / 60)}:${pad(offset % 60)}`;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d+)?)?)?)?$/;

/**
 * Milliseconds since the epoch of an ISO 8601 string, exactly as Python's
 * `int(datetime.fromisoformat(s).timestamp() * 1000)` (a naive time is UTC, as the engine takes the server's);
 * null when it is not one.
 */
export function isoToEpochMs(value) {
  if (typeof value !== 'string') return null;
  const m = ISO.exec(value.trim());
  if (!m) return null;
  const [year, month, day, hour = '0', minute = '0', second = '0'] = m.slice(1, 7).map((x) => x);
  const fraction = (m[7] || '').slice(0, 6).padEnd(6, '0');
  const nums = [year, month, day, hour, minute, second].map(Number);
  if (nums[1] < 1 || nums[1] > 12 || nums[2] < 1 || nums[2] > 31 || nums[3] > 23 || nums[4] > 59 || nums[5] > 59) return null;
  const base = Date.UTC(nums[0], nums[1] - 1, nums[2], nums[3], nums[4], nums[5]);
  if (new Date(base).getUTCDate() !== nums[2]) return null; // 31 February
  let offsetSeconds = 0;
  const zone = m[8];
  if (zone && zone !== 'Z' && zone !== 'z') {
    const digits = zone.slice(1).replace(/:/g, '');
    offsetSeconds = (Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4) || 0) * 60 + Number(digits.slice(4, 6) || 0))
      * (zone[0] === '-' ? -1 : 1);
  }
  // Python: timestamp() = total microseconds / 10**6 (correctly rounded), then * 1000 in floating point, truncated.
  const micros = (base / 1000 - offsetSeconds) * 1e6 + Number(fraction);
  return Math.trunc((micros / 1e6) * 1000);
}
