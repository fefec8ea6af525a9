// The server's field rules for what a tablet writes (server/sync/entities.py, docs/sync.md), so a form can say
// what is wrong before anything is stored — and a mutation the server would refuse is not queued at all.
import { isUuid } from './ids.js';
import { isoToEpochMs } from './times.js';

export const RESULTS = ['compliant', 'non_compliant', 'not_applicable'];
export const PROVES = ['certificate', 'scene', 'signature', 'other'];
export const COERCIVE_KINDS = ['seizure', 'impoundment', 'demolition', 'closure', 'other'];
export const SIGNER_ROLES = ['inspector', 'representative', 'witness'];
export const INSPECTION_FIELDS = ['started_at', 'ended_at', 'place', 'representative', 'soft_measures',
  'coercive_measures', 'conclusion', 'status'];
export { SYNCED_KINDS, REFERENCE_KINDS } from './store.js';
export const MAX_PER_INSPECTION = { finding: 500, media: 2000, signature: 50 };

class FieldError extends Error {}

const UNSTORABLE_MESSAGE = '不能包含空字符（NUL）或无效的 Unicode 字符';

const nullable = (check) => (value) => (value === null ? null : check(value));

function uuidText(value) {
  if (typeof value !== 'string') throw new FieldError('应为 UUID 字符串');
  if (!isUuid(value)) throw new FieldError('不是有效的 UUID');
  return value.toLowerCase();
}

function timestamp(value) {
  if (typeof value !== 'string' || value.length > 40) throw new FieldError('应为带时区的 ISO 8601 时间');
  if (isoToEpochMs(value) === null) throw new FieldError('不是有效的 ISO 8601 时间');
  if (!/(Z|[+-]\d{2}(:?\d{2})?)$/i.test(value.trim()) || value.length <= 10) throw new FieldError('时间必须带时区（如 +08:00）');
  return value;
}

const text = (max) => (value) => {
  if (typeof value !== 'string') throw new FieldError('应为文本');
  // A lone surrogate cannot be stored; a proper pair is one character (Python counts code points).
  if (value.includes('\u0000') || /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) {
    throw new FieldError(UNSTORABLE_MESSAGE);
  }
  if ([...value].length > max) throw new FieldError(`长度不能超过 ${max} 个字符`);
  return value;
};

const choice = (...options) => (value) => {
  if (!options.includes(value)) throw new FieldError(`取值应为：${options.join('、')}`);
  return value;
};

const listOf = (check, max) => (value) => {
  if (!Array.isArray(value)) throw new FieldError('应为列表');
  if (value.length > max) throw new FieldError(`最多 ${max} 项`);
  return value.map(check);
};

const base64urlText = (max) => (value) => {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value)) throw new FieldError('应为 base64url 编码文本（不含填充）');
  if (value.length > max) throw new FieldError(`长度不能超过 ${max} 个字符`);
  return value;
};

function sha256Hex(value) {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value.toLowerCase())) throw new FieldError('应为64位十六进制 SHA-256');
  return value.toLowerCase();
}

function sizeBytes(value) {
  if (!Number.isSafeInteger(value) || value < 0 || value > 2 ** 44) throw new FieldError('应为非负整数（字节）');
  return value;
}

function coerciveMeasure(value) {
  if (!value || typeof value !== 'object' || Array.isArray(value) || !('kind' in value)
      || Object.keys(value).some((k) => k !== 'kind' && k !== 'description')) {
    throw new FieldError('强制措施应为 {kind, description}');
  }
  return { kind: choice(...COERCIVE_KINDS)(value.kind), description: text(1000)(value.description || '') };
}

function serverOnly() {
  throw new FieldError('审核意见由审核端写入，执法终端不能修改');
}

const rule = (validate, { required = false, immutable = false } = {}) => ({ validate, required, immutable });

export const FIELD_RULES = {
  inspection: {
    task_id: rule(uuidText, { required: true, immutable: true }),
    started_at: rule(nullable(timestamp)),
    ended_at: rule(nullable(timestamp)),
    place: rule(nullable(text(300))),
    representative: rule(nullable(text(100))),
    soft_measures: rule(listOf(text(1000), 50)),
    coercive_measures: rule(listOf(coerciveMeasure, 20)),
    conclusion: rule(nullable(text(4000))),
    status: rule(choice('open', 'finished')),
    inspection_code: rule(nullable(text(2048))), // the task's code (token) held when the inspection began
    review: rule(serverOnly),
  },
  finding: {
    inspection_id: rule(uuidText, { required: true, immutable: true }),
    check_item_id: rule(uuidText, { required: true, immutable: true }),
    result: rule(choice(...RESULTS), { required: true }),
    note: rule(nullable(text(4000))),
    evidence: rule(listOf(uuidText, 100)),
    recorded_at: rule(nullable(timestamp)),
  },
  media: {
    inspection_id: rule(uuidText, { required: true, immutable: true }),
    sha256: rule(sha256Hex, { required: true, immutable: true }),
    size: rule(sizeBytes, { required: true, immutable: true }),
    content_type: rule(nullable(text(100))),
    file_name: rule(nullable(text(255))),
    capture_start: rule(nullable(timestamp)),
    capture_end: rule(nullable(timestamp)),
    device_id: rule(nullable(text(64))),
    proves: rule(choice(...PROVES)),
    // The capture manifest signed by the tablet and its Ed25519 signature, base64url (manifest.js; issue 17).
    manifest: rule(nullable(base64urlText(6000)), { immutable: true }),
    manifest_signature: rule(nullable(base64urlText(100)), { immutable: true }),
  },
  signature: {
    inspection_id: rule(uuidText, { required: true, immutable: true }),
    signer_role: rule(choice(...SIGNER_ROLES), { required: true }),
    signer_name: rule(nullable(text(100))),
    media_id: rule(nullable(uuidText)),
    signed_at: rule(nullable(timestamp)),
  },
};

/**
 * What the server would say about `fields` of a `kind` (`{}`: nothing): `{field: Chinese message}`.
 * `creating`: the required fields must be there; `current`: the record's fields, for the ones that cannot change.
 */
export function validateFields(kind, fields, { creating = false, current = null } = {}) {
  const rules = FIELD_RULES[kind];
  if (!rules) return { _kind: `未知的记录类型：${kind}` };
  const errors = {};
  for (const [name, value] of Object.entries(fields || {})) {
    const r = rules[name];
    if (!r) {
      errors[name] = `未知字段：${name}`;
      continue;
    }
    try {
      const cleaned = r.validate(value);
      if (r.immutable && current && Object.hasOwn(current, name) && current[name] !== cleaned) {
        errors[name] = '创建后不能修改';
      }
    } catch (error) {
      if (!(error instanceof FieldError)) throw error;
      errors[name] = error.message;
    }
  }
  if (creating) {
    for (const [name, r] of Object.entries(rules)) {
      if (r.required && !Object.hasOwn(fields || {}, name)) errors[name] = '缺少必填字段';
    }
  }
  return errors;
}
