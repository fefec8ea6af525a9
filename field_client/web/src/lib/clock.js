// The tablet's clock, told to the server with every request (the Device-Clock header): the server keeps a ledger
// of each device's clock against its own at every sync and upload and reads the capture times this tablet stamps
// against it (docs/verification.md, "Clock ledger"). Read afresh for each request and never corrected: the server
// wants the clock exactly as it dated the captures.

export const DEVICE_CLOCK_HEADER = 'Device-Clock';

/** The clock now (or at `now`: a Date or epoch milliseconds) as ISO 8601 in UTC, e.g. 2026-03-10T04:00:00.123Z. */
export function deviceClock(now = Date.now()) {
  return new Date(now instanceof Date ? now.getTime() : now).toISOString();
}
