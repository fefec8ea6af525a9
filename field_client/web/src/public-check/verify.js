// The inspection code's offline check (issue 18): what a phone with no network can tell from the token alone.
//
// Pure module (no DOM, no network): the page (main.js) gives it the token, the public keys it cached and the
// phone's clock. The token format is server/codes/token.py's:
//
//   base64url(payload) "." base64url(Ed25519 signature over the payload's bytes)     (no padding)
//   payload: compact JSON {v: 1, k: key id, t: task, n: enterprise, c: masked credit code, d: [departments],
//                          s: window start, x: window end, i: issued}     (Unix seconds, UTC)
//
// The checks and their order are the server's (token.verify): malformed, then unknown key, then signature, then
// the claims' shape. tests/protocol/code_vectors.json (made by the Python side) pins both to the same answers.
import { verifyAsync } from '@noble/ed25519';

export const FORMAT_VERSION = 1;
export const MAX_TOKEN_LENGTH = 2048;
export const CODE_PATH_PREFIX = '/public/c/';
export const OFFICE_TIME_ZONE = 'Asia/Shanghai';

/** A token this module cannot accept; `code` is the server's: malformed | unknown-key | bad-signature. */
export class CodeError extends Error {
  constructor(code, message, keyId = null) {
    super(message);
    this.name = 'CodeError';
    this.code = code;
    this.keyId = keyId;
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MOMENT_LIMIT = 2 ** 33;

function malformed(message = '检查码格式不正确') {
  return new CodeError('malformed', message);
}

/** base64url without padding → bytes; a character outside the alphabet is malformed (as on the server). */
export function unb64url(text) {
  if (typeof text !== 'string' || !text || !B64URL.test(text) || text.length % 4 === 1) throw malformed();
  const standard = text.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (text.length % 4)) % 4);
  let binary;
  try {
    binary = atob(standard);
  } catch {
    throw malformed();
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The token's parts: the payload's bytes, the signature's, and the payload as JSON. Throws CodeError. */
export function parseToken(token) {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 2) throw malformed();
  const [bodyText, signatureText] = token.split('.');
  const body = unb64url(bodyText);
  const signature = unb64url(signatureText);
  let payload;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw malformed();
  }
  if (!payload || typeof payload !== 'object' || Array.isArray(payload) || payload.v !== FORMAT_VERSION) {
    throw malformed('检查码格式不正确或版本不受支持');
  }
  return { body, signature, payload };
}

/**
 * The keys of `/public/code-keys.json` ({algorithm: "Ed25519", keys: [{id, public_key}]}) as a Map of key id →
 * 32 raw bytes. Entries that are not Ed25519 keys are left out; an unreadable document gives an empty Map.
 */
export function keysFromDocument(document) {
  const keys = new Map();
  if (!document || document.algorithm !== 'Ed25519' || !Array.isArray(document.keys)) return keys;
  for (const entry of document.keys) {
    if (!entry || typeof entry.id !== 'string' || typeof entry.public_key !== 'string') continue;
    try {
      const raw = unb64url(entry.public_key);
      if (raw.length === 32) keys.set(entry.id, raw);
    } catch {
      // not a key: skipped
    }
  }
  return keys;
}

function claimsOf(payload) {
  const { d: departments, n: name, c: masked, t: task } = payload;
  const moments = [payload.s, payload.x, payload.i];
  const readable = Array.isArray(departments) && departments.every((d) => typeof d === 'string')
    && typeof name === 'string' && typeof masked === 'string' && typeof task === 'string' && UUID.test(task)
    && moments.every((m) => Number.isInteger(m) && m >= 0 && m < MOMENT_LIMIT);
  // Signed by the platform yet unreadable: only a bug of an earlier version could make one.
  if (!readable) throw malformed('检查码内容不完整');
  return {
    keyId: payload.k,
    taskId: task.toLowerCase(),
    enterpriseName: name,
    creditCodeMasked: masked,
    departments: [...departments],
    windowStart: payload.s,
    windowEnd: payload.x,
    issuedAt: payload.i,
  };
}

/**
 * The claims of a token signed by one of `keys` (a Map or object of key id → 32 raw bytes). Throws CodeError:
 * malformed, unknown-key (its `keyId` says which), bad-signature; unsupported without WebCrypto's SHA-512
 * (crypto.subtle, which browsers give secure origins only: HTTPS, or localhost).
 */
export async function verifyToken(token, keys) {
  const { body, signature, payload } = parseToken(token);
  const keyId = typeof payload.k === 'string' ? payload.k : null;
  let key;
  if (keyId !== null) key = keys instanceof Map ? keys.get(keyId) : Object.hasOwn(keys ?? {}, keyId) && keys[keyId];
  if (!key) throw new CodeError('unknown-key', '检查码的签名密钥不在本机保存的密钥中，无法核验', keyId);
  if (!globalThis.crypto?.subtle) throw new CodeError('unsupported', '此浏览器不支持离线核验签名');
  let valid = false;
  try {
    // RFC 8032's strict rules, as OpenSSL (the server's `cryptography`) applies them.
    valid = signature.length === 64 && await verifyAsync(signature, body, key, { zip215: false });
  } catch {
    valid = false; // a public key or R that is no curve point
  }
  if (!valid) throw new CodeError('bad-signature', '检查码签名无效，可能系伪造或被篡改');
  return claimsOf(payload);
}

/** The planned window against a clock (ms since the epoch): not-yet-valid | valid | expired, as the server's. */
export function windowState(claims, nowMs) {
  if (nowMs < claims.windowStart * 1000) return 'not-yet-valid';
  if (nowMs > claims.windowEnd * 1000) return 'expired';
  return 'valid';
}

/** The token of a code page's path (`/public/c/<token>`, or its `/qr.svg`); null when the path is not one. */
export function tokenFromPath(pathname) {
  if (typeof pathname !== 'string' || !pathname.startsWith(CODE_PATH_PREFIX)) return null;
  let rest = pathname.slice(CODE_PATH_PREFIX.length).replace(/\/qr\.svg$/, '');
  try {
    rest = decodeURIComponent(rest);
  } catch {
    return rest || null;
  }
  return rest || null;
}

const TIME_FORMAT = new Intl.DateTimeFormat('en-CA', {
  timeZone: OFFICE_TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  hourCycle: 'h23',
});

/** A moment as the offices read it, to the minute ("2026-12-03 08:00", Beijing time), as the online page. */
export function officeTime(ms) {
  const parts = Object.fromEntries(TIME_FORMAT.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** What the page cannot check without the network: said on every answer that has a genuine token. */
export const NOT_CHECKED_OFFLINE = Object.freeze([
  '检查任务此后是否已被取消、变更（换发新码）或退回重新审批',
  '各部门负责人的审批情况（由谁、何时批准）',
  '检查人员名单，以及他们的执法证今天是否有效',
  '检查事项及其法律依据',
  '本年度对贵企业的检查次数是否超过上限',
]);

export const ADVICE_ONLINE = '请在手机恢复网络后重新打开此页面（再次扫码），核验上述无法离线核验的内容。';

const WINDOW_WORDS = {
  'not-yet-valid': '按本机时间，计划检查时间尚未开始：现在不能凭此码入企检查',
  valid: '按本机时间，现在在计划检查时间内',
  expired: '按本机时间，计划检查时间已经结束：不能再凭此码入企检查',
};

const VERDICTS = {
  'not-yet-valid': '签名有效，但计划检查时间尚未开始（按本机时间）',
  valid: '签名有效：此码由行政执法监督平台签发，现在在计划检查时间内（按本机时间）',
  expired: '签名有效，但计划检查时间已经结束（按本机时间）：不能再凭此码入企检查',
};

/**
 * What the offline page says, in Chinese, for the outcome of `verifyToken` (its claims, or the CodeError it
 * threw) at the phone's clock `nowMs`:
 *
 *   {state, verdict, checked: [{label, value}], unchecked: [text], notes: [text]}
 *
 * `state`: valid | not-yet-valid | expired (genuine; the window by the phone's clock) · forged (bad signature) ·
 * unknown-key · malformed · no-keys (nothing to check with) · unsupported (no WebCrypto) · error (a bug).
 */
export function offlineReport(outcome, nowMs) {
  if (outcome instanceof CodeError || outcome instanceof Error) return refusal(outcome);
  const claims = outcome;
  const state = windowState(claims, nowMs);
  return {
    state,
    verdict: VERDICTS[state],
    checked: [
      { label: '签名', value: `有效：此码由行政执法监督平台的签名密钥（编号 ${claims.keyId}）签发，内容未被篡改` },
      { label: '检查对象', value: claims.enterpriseName },
      { label: '统一社会信用代码', value: claims.creditCodeMasked },
      { label: '检查部门', value: claims.departments.join('、') },
      {
        label: '计划检查时间',
        value: `${officeTime(claims.windowStart * 1000)} 至 ${officeTime(claims.windowEnd * 1000)}（北京时间）`,
      },
      { label: '与本机时间比较', value: `${WINDOW_WORDS[state]}（本机时间 ${officeTime(nowMs)}）` },
      { label: '派发时间', value: officeTime(claims.issuedAt * 1000) },
    ],
    unchecked: [...NOT_CHECKED_OFFLINE],
    notes: [
      '本机时间如不准确，对计划检查时间的判断也不准确。',
      '检查人员应当主动出示执法证件；请核对证件上的姓名与部门。',
      ADVICE_ONLINE,
    ],
  };
}

const COMPLAIN = '请拒绝凭此码进行的检查，并可向司法局（行政执法监督机构）反映。';

/** A token the page cannot vouch for: a verdict and what to do, nothing of what the token claims. */
function refusal(error) {
  const code = error instanceof CodeError ? error.code : 'error';
  const said = (state, verdict, ...notes) => ({ state, verdict, checked: [], unchecked: [], notes });
  switch (code) {
    case 'bad-signature':
      return said('forged', '签名无效，可能系伪造：此码不是行政执法监督平台签发的，或其内容已被篡改', COMPLAIN);
    case 'unknown-key':
      return said('unknown-key', `无法用本机保存的密钥核验此码：它的签名密钥${error.keyId ? `（编号 ${error.keyId}）` : ''}`
        + '不在本机已保存的平台密钥中', '此码可能系伪造，也可能是平台更换了密钥。', ADVICE_ONLINE);
    case 'malformed':
      return said('malformed', `${error.message}：无法核验（可能扫描不完整，或系伪造）`, `请重新扫码；仍然如此的，${COMPLAIN}`);
    case 'no-keys':
      return said('no-keys', '本机没有保存平台的核验密钥，无法离线核验此码', ADVICE_ONLINE);
    case 'unsupported':
      return said('unsupported', '此浏览器不支持离线核验签名', ADVICE_ONLINE);
    default:
      return said('error', '离线核验出错，未能核验此码', ADVICE_ONLINE);
  }
}

/** The whole offline check: token, keys document, clock → the report. Never throws. */
export async function checkOffline(token, keysDocument, nowMs) {
  const keys = keysFromDocument(keysDocument);
  try {
    if (token === null || token === undefined) throw malformed();
    parseToken(token); // a malformed token says so even when no key is held
    if (keys.size === 0) return offlineReport(new CodeError('no-keys', '没有核验密钥'), nowMs);
    return offlineReport(await verifyToken(token, keys), nowMs);
  } catch (error) {
    return offlineReport(error instanceof CodeError ? error : new Error(String(error)), nowMs);
  }
}
