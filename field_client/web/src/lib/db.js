// The app's IndexedDB database (Dexie), versioned. Upgrades migrate rows; a table is never dropped.
//
// Only ids, states and times are stored in clear, because queries need them; every record's content (finding
// text, notes, names, evidence bytes, file names) is AES-GCM ciphertext made by the vault (`enc = {iv, data}`).
import Dexie from 'dexie';

export const DB_VERSION = 2;

// Each version's full store specification (Dexie needs every version it may upgrade from).
export const SCHEMAS = {
  1: {
    meta: 'key',
    entities: '[kind+id], kind, id, taskId, inspectionId, updatedAt',
    outbox: '++seq, &id, status, entityId',
    chunks: '[mediaId+index], mediaId',
    media: 'id, state',
    log: '++seq, at',
  },
  2: {
    meta: 'key',
    entities: '[kind+id], kind, id, taskId, inspectionId, updatedAt',
    // [status+seq]: pending mutations in order without scanning the done ones.
    outbox: '++seq, &id, status, entityId, [status+seq]',
    chunks: '[mediaId+index], mediaId',
    media: 'id, state',
    log: '++seq, at',
    // Our edits the server stored as `conflict`, kept for the inspector to see.
    conflicts: 'mutationId, entityId',
  },
};

// Row migrations, by the version they lead to.
const UPGRADES = {
  // v1 media rows had no attempt count nor acknowledgement flag, and an upload failure was a bare string.
  2: async (tx) => {
    await tx.table('media').toCollection().modify((row) => {
      if (row.attempts === undefined) row.attempts = 0;
      if (row.acked === undefined) row.acked = false;
      if (typeof row.error === 'string') row.error = { code: 'failed', reason: row.error };
      if (row.error === undefined) row.error = null;
    });
    await tx.table('outbox').toCollection().modify((row) => {
      if (row.attempts === undefined) row.attempts = 0;
    });
  },
};

export function openDatabase(name = 'inspect-once', { version = DB_VERSION, indexedDB, IDBKeyRange } = {}) {
  const options = {};
  if (indexedDB) options.indexedDB = indexedDB;
  if (IDBKeyRange) options.IDBKeyRange = IDBKeyRange;
  const db = new Dexie(name, options);
  for (let v = 1; v <= version; v++) {
    const declared = db.version(v).stores(SCHEMAS[v]);
    if (UPGRADES[v]) declared.upgrade(UPGRADES[v]);
  }
  return db.open();
}

/** Forget what was pulled (another user or server now). The outbox, evidence and vaults stay. */
export async function clearPulled(db) {
  await db.transaction('rw', db.table('entities'), db.table('meta'), async () => {
    await db.table('entities').clear();
    await db.table('meta').bulkDelete(['cursor', 'last_pull_at']);
  });
}
