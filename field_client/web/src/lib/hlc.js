// The tablet's hybrid logical clock (docs/sync.md), the same rules as field_client/hlc.py.
//
// A stamp reads "<wall ms, 13 digits>-<counter, 4 hex digits>-<device id>". Strings of that shape sort like
// the stamps they name, which is how the server picks the winner of a concurrent edit. The clock never runs
// backwards: each local change takes wall = max(now, last.wall) and bumps the counter when the wall did not
// advance; stamps seen on pull are folded into `last` so a tablet whose clock is behind still orders its
// edits after what it has seen.

export const HLC_PATTERN = /^(\d{13})-([0-9a-f]{4})-([A-Za-z0-9][A-Za-z0-9-]{0,63})$/;
const NODE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
export const MAX_COUNTER = 0xffff;
const MAX_WALL_MS = 10 ** 13 - 1;

export function validNode(node) {
  return typeof node === 'string' && NODE_PATTERN.test(node);
}

export function parseHlc(value) {
  const match = typeof value === 'string' ? HLC_PATTERN.exec(value) : null;
  if (!match) throw new TypeError(`not an HLC stamp: ${JSON.stringify(value)}`);
  return { wall: Number(match[1]), counter: parseInt(match[2], 16), node: match[3] };
}

export function formatHlc({ wall, counter, node }) {
  if (!Number.isInteger(wall) || wall < 0 || wall > MAX_WALL_MS) throw new RangeError('HLC wall time out of range');
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) throw new RangeError('HLC counter out of range');
  if (!validNode(node)) throw new TypeError(`device id ${JSON.stringify(node)} cannot be an HLC node`);
  return `${String(wall).padStart(13, '0')}-${counter.toString(16).padStart(4, '0')}-${node}`;
}

function asStamp(value) {
  return typeof value === 'string' ? parseHlc(value) : value;
}

// Python compares node strings by code point; nodes are ASCII, so plain < is the same order.
function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareHlc(a, b) {
  const x = asStamp(a);
  const y = asStamp(b);
  return cmp(x.wall, y.wall) || cmp(x.counter, y.counter) || cmp(x.node, y.node);
}

// The counter has four hex digits; past that, borrow a millisecond.
function carry(wall, counter) {
  if (counter > MAX_COUNTER) {
    wall += 1;
    counter = 0;
  }
  if (wall > MAX_WALL_MS) throw new RangeError('HLC wall time out of range');
  return [wall, counter];
}

/** The stamp for a new local change after `last` (a stamp object or null), as field_client.hlc.tick. */
export function tickStamp(last, now, node) {
  if (!validNode(node)) throw new TypeError(`device id ${JSON.stringify(node)} cannot be an HLC node`);
  let wall;
  let counter;
  if (last == null || now > last.wall) {
    [wall, counter] = [now, 0];
  } else {
    [wall, counter] = carry(last.wall, last.counter + 1);
  }
  return { wall, counter, node };
}

/** `last` after seeing `seen`, kept as our own node, as field_client.hlc.fold. */
export function foldStamp(last, seen, node) {
  if (last == null || seen.wall > last.wall || (seen.wall === last.wall && seen.counter > last.counter)) {
    return { wall: seen.wall, counter: seen.counter, node };
  }
  return { wall: last.wall, counter: last.counter, node };
}

export class Hlc {
  constructor(nodeId, now = () => Date.now(), last = null) {
    this.nodeId = nodeId;
    this.now = now;
    this._last = last == null ? null : asStamp(last);
  }

  get last() {
    return this._last == null ? null : formatHlc(this._last);
  }

  tick() {
    const stamp = tickStamp(this._last, Math.floor(this.now()), this.nodeId);
    this._last = stamp;
    return formatHlc(stamp);
  }

  receive(remote) {
    // The node may not be a valid one of ours yet (no device id before enrolment): keep the remote's then.
    const node = validNode(this.nodeId) ? this.nodeId : asStamp(remote).node;
    this._last = foldStamp(this._last, asStamp(remote), node);
    return formatHlc(this._last);
  }
}
