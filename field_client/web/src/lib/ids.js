// Ids: random UUIDs for new records, and the one inspection id of a task (uuid5, as the server derives it).

// server.sync.entities.inspection_id_for / field_client.capture.INSPECTION_NAMESPACE
export const INSPECTION_NAMESPACE = '6f1d3c2e-9b7a-5e40-8c21-4a0f3d9e7b15';
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value) {
  return typeof value === 'string' && UUID_PATTERN.test(value);
}

export function uuid4() {
  return crypto.randomUUID();
}

function uuidBytes(text) {
  if (!isUuid(text)) throw new TypeError(`not a UUID: ${JSON.stringify(text)}`);
  const hex = text.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function formatUuid(bytes) {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** RFC 4122 name-based UUID (SHA-1), like Python's uuid.uuid5. */
export async function uuid5(namespace, name) {
  const ns = uuidBytes(namespace);
  const text = new TextEncoder().encode(name);
  const input = new Uint8Array(ns.length + text.length);
  input.set(ns);
  input.set(text, ns.length);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-1', input)).slice(0, 16);
  digest[6] = (digest[6] & 0x0f) | 0x50;
  digest[8] = (digest[8] & 0x3f) | 0x80;
  return formatUuid(digest);
}

/** The id every tablet gives the task's inspection record (the task id is normalised first, as in Python). */
export async function inspectionIdFor(taskId) {
  return uuid5(INSPECTION_NAMESPACE, formatUuid(uuidBytes(String(taskId).trim())));
}
