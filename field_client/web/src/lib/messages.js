// What the inspector reads (mirrors field_client/messages.py): the server's Chinese words, or ours for its codes.
//
// A problem+json answer carries a Chinese `title`/`detail` for people and, for validation failures, `errors`
// (field path -> English messages) for programs. The inspector is shown the former only. A rejected mutation
// carries a machine `code` and a Chinese `reason`; when the reason is missing or not Chinese (an older server, a
// proxy, a code from a newer server), the app explains the code itself. English is available for every text.

const CJK = /[\u3400-\u9fff\uf900-\ufaff]/;

export function isChinese(text) {
  return typeof text === 'string' && CJK.test(text);
}

// Per-mutation rejection codes (docs/sync.md), and those the app gives a mutation it sets aside.
export const REJECTION_TEXTS = {
  'id-reused': { zh: '该变更编号已用于内容不同的另一项变更，服务器已拒绝', en: 'This change id was already used for a different change; the server refused it' },
  'clock-skew': { zh: '平板时钟超前服务器时间过多，请校准平板时钟后重新记录', en: "The tablet's clock is too far ahead of the server's; set the clock and record again" },
  'invalid-fields': { zh: '记录中有字段的取值不符合要求', en: 'A field of the record has a value that is not allowed' },
  'unknown-entity': { zh: '所属的记录在服务器上不存在，请先同步', en: 'The record this belongs to does not exist on the server; sync first' },
  forbidden: { zh: '您无权修改该记录（不是检查组成员，或记录属于其他部门）', en: 'You may not change this record (not on the team, or another department\'s record)' },
  'task-closed': { zh: '检查任务已关闭，不能再修改其记录', en: 'The task is closed; its record can no longer change' },
  'task-not-dispatched': { zh: '检查任务尚未派发，不能提交检查记录', en: 'The task has not been dispatched; no record can be submitted yet' },
  'unknown-check-item': { zh: '检查事项不存在、已停用或不在本次检查任务中', en: 'The check item does not exist, is retired, or is not part of this task' },
  'immutable-field': { zh: '记录中有创建后不能修改的字段被修改', en: 'A field that cannot change after creation was changed' },
  'hlc-node-mismatch': { zh: '记录时间戳中的设备编号与本平板不一致', en: "The device in the change's timestamp is not this tablet" },
  'inspection-id': { zh: '检查记录编号与检查任务不对应，请更新应用后重新开始检查', en: "The inspection record's id does not match its task; update the app and start again" },
  'unknown-entity-kind': { zh: '服务器不认识这种记录（可能来自更新版本的应用），无法保存', en: 'The server does not know this kind of record (a newer app?); it cannot be stored' },
  'record-full': { zh: '该检查记录的检查结论、证据文件或签名数量已达上限（结论 500 项、证据 2000 个、签名 50 个）', en: 'The inspection record is full (at most 500 findings, 2,000 media and 50 signatures)' },
  'invalid-mutation': { zh: '服务器无法读取这条记录（本机记录可能已损坏）', en: 'The server cannot read this change (the local copy may be damaged)' },
  'payload-too-large': { zh: '这条记录过大，服务器拒收', en: 'This change is too large for the server' },
};

// Whole-request problems (`type` slugs) the app may meet, for when the server's words are not Chinese.
export const PROBLEM_TEXTS = {
  'unknown-device': { zh: '本设备不是已登记的在用执法平板', en: 'This device is not a registered, active tablet' },
  'validation-failed': { zh: '提交的数据未通过校验', en: 'The data sent did not pass validation' },
  'bad-request': { zh: '请求格式错误', en: 'Malformed request' },
  'malformed-json': { zh: '请求内容不是有效的 JSON', en: 'The request body is not valid JSON' },
  unauthenticated: { zh: '未登录或凭证无效', en: 'Not logged in, or the credentials are invalid' },
  'invalid-credentials': { zh: '用户名或密码错误', en: 'Wrong user name or password' },
  'token-expired': { zh: '访问令牌已过期', en: 'The access token has expired' },
  'token-invalid': { zh: '登录已失效，请重新登录', en: 'The session is no longer valid; log in again' },
  'refresh-invalid': { zh: '登录已失效，请重新登录', en: 'The session is no longer valid; log in again' },
  'too-many-failures': { zh: '登录失败次数过多，请稍后再试', en: 'Too many failed log-ins; try again later' },
  'role-not-allowed': { zh: '该账号的角色不能执行此操作', en: "This account's role may not do this" },
  forbidden: { zh: '无权执行此操作', en: 'Not allowed' },
  'not-found': { zh: '资源不存在', en: 'Not found' },
  conflict: { zh: '与现有数据冲突', en: 'Conflicts with existing data' },
  'payload-too-large': { zh: '请求体过大', en: 'The request is too large' },
  'too-many-requests': { zh: '请求过于频繁，请稍后再试', en: 'Too many requests; try again later' },
  'invalid-cursor': { zh: '同步游标无效', en: 'Invalid sync cursor' },
  unavailable: { zh: '服务暂时不可用', en: 'The service is temporarily unavailable' },
  'media-store-unavailable': { zh: '服务器的证据存储暂时不可用', en: "The server's evidence store is temporarily unavailable" },
  'internal-error': { zh: '服务器内部错误', en: 'Internal server error' },
  // Enrolment and device-bound log-in (docs/field-app.md).
  'enrolment-code-invalid': { zh: '登记码不正确，请核对后重新输入', en: 'The enrolment code is not valid; check it and try again' },
  'enrolment-code-used': { zh: '该登记码已被使用，请向管理员申请新的登记码', en: 'This enrolment code has been used; ask for a new one' },
  'enrolment-code-expired': { zh: '该登记码已过期（有效期 24 小时），请向管理员申请新的登记码', en: 'This enrolment code has expired (24 hours); ask for a new one' },
  'device-unknown': { zh: '本平板未登记、已停用或设备密钥不正确，请联系管理员重新登记', en: 'This tablet is not enrolled, retired, or its secret is wrong; ask an administrator to enrol it again' },
  'device-not-allowed': { zh: '这台平板属于其他部门，不能用您的账号登录', en: "This tablet belongs to another department; your account cannot log in on it" },
  'device-mismatch': { zh: '同步所用的设备与登录的平板不一致，请重新登录', en: 'The device syncing is not the tablet logged in; log in again' },
  'device-required': { zh: '同步需要在已登记的平板上登录', en: 'Sync requires a log-in on an enrolled tablet' },
  'not-a-tablet': { zh: '只有执法人员账号可以在执法平板上同步检查记录', en: 'Only inspector accounts may sync records on a tablet' },
  // Uploads (tus).
  'upload-too-large': { zh: '文件超过服务器允许的大小上限', en: "The file exceeds the server's size limit" },
  'upload-length-exceeded': { zh: '上传的数据超过了声明的文件大小', en: 'The upload went past the declared file size' },
  'hash-mismatch': { zh: '服务器收到的文件与采集时的 SHA-256 不符，文件未被接收', en: 'The file the server received does not match the SHA-256 taken at capture' },
  'checksum-mismatch': { zh: '上传的数据块在传输中损坏，将重新发送', en: 'A chunk was damaged in transit; it will be sent again' },
  'invalid-upload-checksum': { zh: '上传数据块的校验值格式错误', en: 'Malformed chunk checksum' },
  'checksum-algorithm-unsupported': { zh: '服务器不支持该校验算法', en: 'The server does not support this checksum algorithm' },
  'malformed-upload-metadata': { zh: '上传的文件信息格式错误', en: 'Malformed upload metadata' },
  'offset-mismatch': { zh: '上传进度与服务器不一致，将从服务器记录的位置继续', en: "The upload's offset differs from the server's; resuming from the server's" },
  'upload-gone': { zh: '上传会话已失效，将重新开始上传', en: 'The upload session is gone; starting again' },
  'upload-locked': { zh: '该文件正在另一处上传，请稍后再试', en: 'The file is being uploaded elsewhere; try again later' },
  'upload-complete': { zh: '该文件已上传完成', en: 'The file has already been uploaded' },
  'body-truncated': { zh: '上传中断（连接断开），将继续上传', en: 'The upload was cut off; it will resume' },
  'tus-version-unsupported': { zh: '服务器不支持本应用的上传协议版本', en: "The server does not support this app's upload protocol version" },
  'deferred-length-unsupported': { zh: '服务器要求上传前声明文件大小', en: 'The server needs the file size up front' },
  'unsupported-media-type': { zh: '服务器不接受该内容类型', en: 'The server does not accept this content type' },
  'media-content-missing': { zh: '服务器上没有该证据文件的内容', en: "The server holds no content for this media" },
  'task-not-open': { zh: '检查任务不在进行中', en: 'The task is not open' },
  'report-unavailable': { zh: '报告暂时无法生成', en: 'The report cannot be made right now' },
  // The app's own conditions.
  offline: { zh: '无法连接服务器（网络不可用）。已采集的记录都保存在本机，联网后会自动同步', en: 'Cannot reach the server (no network). Everything captured is kept on this tablet and syncs when online' },
  'bad-answer': { zh: '服务器的应答格式不正确，请稍后再同步', en: "The server's answer is malformed; sync again later" },
  'results-mismatch': { zh: '服务器的推送应答与所发送的记录不一致；记录仍保存在本机，下次同步时重试', en: "The server's push answer does not match what was sent; the records stay here and go again next sync" },
  'cursor-stuck': { zh: '服务器的拉取游标没有前进，已停止拉取', en: "The server's pull cursor did not advance; pull stopped" },
  'not-logged-in': { zh: '本机尚未登录过，请先联网登录', en: 'Nobody has logged in on this tablet yet; log in online first' },
  'session-lost': { zh: '登录已失效，请重新登录。未同步的记录仍保存在本机', en: 'The session has ended; log in again. Unsynced records stay on this tablet' },
};

// Push results (docs/sync.md) and the app's per-file upload states.
export const RESULT_TEXTS = {
  applied: { zh: '已保存到服务器', en: 'Stored on the server' },
  duplicate: { zh: '服务器此前已收到，无需重复保存', en: 'Already on the server' },
  conflict: { zh: '已保存，但另一台设备同时修改了同一字段，以时间戳较晚者为准，主管可查看冲突', en: 'Stored, but another device changed the same field at the same time; the later stamp wins and supervisors see the conflict' },
  rejected: { zh: '服务器拒收了这条记录', en: 'The server refused this change' },
  pending: { zh: '等待同步', en: 'Waiting to sync' },
  waiting: { zh: '等待上传', en: 'Waiting to upload' },
  uploading: { zh: '正在上传', en: 'Uploading' },
  done: { zh: '已上传', en: 'Uploaded' },
  failed: { zh: '上传失败', en: 'Upload failed' },
  'vault-missing': { zh: '本机找不到该文件的数据，无法上传', en: 'The file\'s data is missing on this tablet; it cannot be uploaded' },
  // Capture and vault errors (evidence.js, vault.js).
  'not-media': { zh: '该文件不是照片或视频，不能作为证据', en: 'This file is not a photo or a video' },
  'too-large': { zh: '文件超过服务器允许的大小上限，不能作为证据', en: "The file exceeds the server's upload limit" },
  quota: { zh: '平板存储空间不足，无法保存该文件；已保存的记录和证据不受影响', en: 'Not enough storage on the tablet for this file; what is stored is kept' },
  empty: { zh: '文件是空的', en: 'The file is empty' },
  'wrong-password': { zh: '密码错误', en: 'Wrong password' },
  locked: { zh: '密码错误次数过多，本机数据已锁定，请联网登录后解锁', en: 'Too many wrong passwords; local data is locked until an online log-in' },
  'no-vault': { zh: '本机没有该用户的数据，请先联网登录一次', en: 'No local data for this user; log in online once first' },
  'has-pending': { zh: '本机还有该用户未同步的记录或证据，需要用原密码解锁后先同步', en: 'This user still has unsynced records or files here; unlock with the old password and sync first' },
  'vault-locked': { zh: '本机数据已锁定，请重新输入密码解锁', en: 'Local data is locked; enter the password again' },
};

export const STATUS_TEXTS = {
  400: { zh: '请求格式错误', en: 'Bad request' },
  401: { zh: '未登录或凭证无效', en: 'Not logged in or invalid credentials' },
  403: { zh: '无权执行此操作', en: 'Not allowed' },
  404: { zh: '资源不存在', en: 'Not found' },
  405: { zh: '服务器不支持该请求', en: 'Method not allowed' },
  408: { zh: '请求超时', en: 'Request timeout' },
  409: { zh: '与现有数据冲突', en: 'Conflict' },
  410: { zh: '资源已不存在', en: 'Gone' },
  413: { zh: '请求体过大', en: 'Payload too large' },
  415: { zh: '服务器不接受该内容类型', en: 'Unsupported media type' },
  422: { zh: '提交的数据未通过校验', en: 'Validation failed' },
  429: { zh: '请求过于频繁，请稍后再试', en: 'Too many requests' },
  500: { zh: '服务器内部错误', en: 'Internal server error' },
  502: { zh: '服务器网关错误', en: 'Bad gateway' },
  503: { zh: '服务暂时不可用', en: 'Service unavailable' },
  504: { zh: '服务器网关超时', en: 'Gateway timeout' },
};

// What the inspector can do about a whole-request refusal.
const PROBLEM_HINTS = {
  'unknown-device': { zh: '请管理员为本平板重新登记。未同步的记录仍保存在本机', en: 'Ask an administrator to enrol this tablet again. Unsynced records stay here' },
};

// Names of a mutation's envelope fields, for a mutation the server could not read.
export const FIELD_NAMES = {
  id: '变更编号', entity: '记录类型', entity_id: '记录编号', op: '操作类型', base_version: '版本号', hlc: '时间戳',
  fields: '字段内容',
};

function pick(entry, lang) {
  return entry[lang] ?? entry.zh;
}

/** The text for a problem code, rejection code, push result, upload state, app error code or HTTP status. */
export function messageFor(codeOrResult, lang = 'zh') {
  const key = typeof codeOrResult === 'string' ? codeOrResult.replace(/^.*\//, '') : codeOrResult;
  for (const table of [REJECTION_TEXTS, PROBLEM_TEXTS, RESULT_TEXTS]) {
    if (typeof key === 'string' && Object.hasOwn(table, key)) return pick(table[key], lang);
  }
  const status = Number(key);
  if (Number.isInteger(status) && Object.hasOwn(STATUS_TEXTS, status)) return pick(STATUS_TEXTS[status], lang);
  return lang === 'en' ? `The server refused the request (${key})` : `服务器拒绝了请求（代码 ${key}）`;
}

/** The Chinese sentence for a problem+json answer; never the field-level `errors`. */
export function problemMessage(status, body, lang = 'zh') {
  const problem = body && typeof body === 'object' ? body : {};
  const type = String(problem.type || '');
  const slug = type ? type.replace(/^.*\//, '') : '';
  let text;
  if (lang === 'zh' && isChinese(problem.detail)) {
    text = problem.detail.trim(); // the specific sentence; the title is the generic one for its status
  } else if (lang === 'zh' && isChinese(problem.title)) {
    text = problem.title.trim();
  } else if (slug && Object.hasOwn(PROBLEM_TEXTS, slug)) {
    text = pick(PROBLEM_TEXTS[slug], lang);
  } else if (slug && Object.hasOwn(REJECTION_TEXTS, slug)) {
    text = pick(REJECTION_TEXTS[slug], lang);
  } else if (Object.hasOwn(STATUS_TEXTS, status)) {
    text = pick(STATUS_TEXTS[status], lang);
  } else {
    text = lang === 'en' ? `The server refused the request (HTTP ${status})` : `服务器拒绝了请求（HTTP ${status}）`;
  }
  const hint = PROBLEM_HINTS[slug];
  return hint ? `${text}${lang === 'en' ? '. ' : '。'}${pick(hint, lang)}` : text;
}

/** The Chinese reason of a rejected mutation: the server's if it is Chinese, else ours for its code. */
export function rejectionReason(code, reason, lang = 'zh') {
  if (lang === 'zh' && isChinese(reason)) return String(reason);
  if (Object.hasOwn(REJECTION_TEXTS, code)) return pick(REJECTION_TEXTS[code], lang);
  return lang === 'en' ? `The server refused this change (code ${code})` : `服务器拒绝了这条记录（代码 ${code}）`;
}

/** Why the server could not read a mutation whose envelope fields it named. */
export function unreadableReason(fields) {
  const names = [...new Set([...fields].filter(Boolean).map((f) => FIELD_NAMES[f] ?? f))].sort();
  const text = REJECTION_TEXTS['invalid-mutation'].zh;
  return names.length ? `${text}：${names.join('、')}有误` : text;
}
