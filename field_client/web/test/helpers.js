// Shared by the unit tests: a fresh fake-IndexedDB database and a fast vault.
import 'fake-indexeddb/auto';
import { openDatabase } from '../src/lib/db.js';
import { createVault } from '../src/lib/vault.js';

export const FAST = 1000; // PBKDF2 iterations in tests only; the app uses 600,000

let counter = 0;
export async function freshDb() {
  counter += 1;
  return openDatabase(`test-${process.pid}-${counter}-${Math.random()}`);
}

export async function freshVault(db, username = 'inspector1', password = 'correct horse') {
  return createVault(db, { username, password, userInfo: { username, user_id: 'u-1', full_name: '李明' }, iterations: FAST });
}

/** All bytes stored in the database, as one string of hex and text, to look for plaintext. */
export async function dumpDatabase(db) {
  const parts = [];
  const seen = (value) => {
    if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
      parts.push(Buffer.from(value instanceof ArrayBuffer ? new Uint8Array(value) : value).toString('latin1'));
    } else if (Array.isArray(value)) value.forEach(seen);
    else if (value && typeof value === 'object') Object.values(value).forEach(seen);
    else parts.push(String(value));
  };
  for (const table of db.tables) seen(await table.toArray());
  return parts.join('\n');
}
