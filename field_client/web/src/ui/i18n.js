// The app's own words, Simplified Chinese first; English on the toggle. The choice is a preference, not data,
// so it lives in localStorage (nothing of an inspection ever does).
import { messageFor } from '../lib/messages.js';

const TEXTS = {
  app_title: ['执法检查', 'Field inspection'],
  lang_toggle: ['EN', '中文'],
  online: ['在线', 'Online'],
  offline: ['离线', 'Offline'],
  loading: ['正在打开…', 'Opening…'],
  // enrolment
  enrol_title: ['登记本平板', 'Enrol this tablet'],
  enrol_hint: ['请输入管理员提供的 12 位登记码（或扫描登记二维码）。每个登记码只能使用一次，24 小时内有效。',
    'Enter the 12-character enrolment code from your administrator (or scan its QR code). A code works once, within 24 hours.'],
  enrol_code: ['登记码', 'Enrolment code'],
  enrol_submit: ['登记', 'Enrol'],
  enrol_needs_network: ['登记需要联网，请连接网络后再试。', 'Enrolment needs the network; connect and try again.'],
  enrol_code_format: ['登记码为 12 位字母和数字，形如 ABCD-EFGH-JKLM', 'The code has 12 letters and digits, like ABCD-EFGH-JKLM'],
  enrolled_as: ['本平板：{label}（{device}），{department}', 'This tablet: {label} ({device}), {department}'],
  // log-in and unlock
  login_title: ['登录', 'Log in'],
  unlock_title: ['离线解锁', 'Unlock offline'],
  login_hint: ['请使用您本人的执法账号登录。', 'Log in with your own inspector account.'],
  unlock_hint: ['当前没有网络。请输入上次在本平板在线登录时的密码，解锁本机保存的数据。',
    'No network. Enter the password of your last online log-in on this tablet to unlock the data kept here.'],
  unlock_needs_login: ['该账号尚未在本平板上在线登录过，离线无法解锁。请联网后登录。',
    'This account has never logged in online on this tablet; it cannot unlock offline. Connect and log in.'],
  username: ['用户名', 'User name'],
  password: ['密码', 'Password'],
  login_submit: ['登录', 'Log in'],
  unlock_submit: ['解锁', 'Unlock'],
  logging_in: ['正在登录并准备本机加密数据…', 'Logging in and preparing the encrypted local data…'],
  unlocking: ['正在解锁…', 'Unlocking…'],
  tries_left: ['密码错误，还可尝试 {n} 次', 'Wrong password; {n} tries left'],
  vault_locked: ['密码连续错误 5 次，本机数据已锁定。请联网后用正确密码登录解锁（数据不会丢失）。',
    'Five wrong passwords in a row: the local data is locked. Log in online with the right password to unlock it (nothing is lost).'],
  old_password: ['本机数据的原密码', 'The previous password of the data here'],
  old_password_hint: ['您的密码已在服务器上更改，本机还有未同步的记录。请再输入一次原密码，本机数据将改用新密码保护。',
    'Your password was changed on the server and records here are not synced yet. Enter the previous password once; the data is then protected by the new one.'],
  logoff: ['退出', 'Log off'],
  logoff_done: ['已退出并锁定本机数据。', 'Logged off; the local data is locked.'],
  required: ['必填', 'Required'],
  // tasks
  tasks_title: ['今日检查任务', "Today's inspections"],
  tasks_other: ['其他任务', 'Other tasks'],
  tasks_none: ['今天没有分配给您的检查任务。联网同步后会显示新任务。', 'No inspections assigned to you today. Sync online to get new ones.'],
  joint: ['联合检查', 'Joint inspection'],
  departments_n: ['{n} 个部门', '{n} departments'],
  window: ['检查时间', 'Window'],
  task_title: ['检查任务', 'Task'],
  enterprise: ['检查对象', 'Enterprise'],
  address: ['地址', 'Address'],
  credit_code: ['统一社会信用代码', 'Credit code'],
  team: ['检查人员', 'Team'],
  no_certificate: ['无执法证', 'no certificate'],
  check_items: ['检查事项', 'Check items'],
  legal_basis: ['依据', 'Legal basis'],
  method: ['检查方法', 'Method'],
  status_not_started: ['未开始', 'Not started'],
  status_open: ['检查中', 'In progress'],
  status_finished: ['已完成', 'Finished'],
  status_returned: ['已退回，待修改', 'Returned for correction'],
  status_approved: ['已批准', 'Approved'],
  start_inspection: ['开始检查', 'Start the inspection'],
  join_inspection: ['加入本次检查', 'Join the inspection'],
  continue_inspection: ['继续检查', 'Continue'],
  reopen_inspection: ['修改并重新提交', 'Correct and resubmit'],
  back: ['返回', 'Back'],
  task_missing: ['本机没有这项任务（可能已撤回）。', 'This task is not on the tablet (it may have been withdrawn).'],
  // the inspection code (扫码入企)
  show_code: ['出示检查码', 'Show the inspection code'],
  code_title: ['涉企行政检查码', 'Inspection code'],
  code_scan: ['请企业负责人用手机扫描此码，核验本次检查', 'The enterprise scans this with a phone to check the visit'],
  code_window: ['计划检查时间', 'Planned window'],
  code_departments: ['检查部门', 'Departments'],
  code_valid_until: ['有效期至 {at}', 'Valid until {at}'],
  code_offline: ['检查码已保存在本平板上，没有网络也能出示；企业扫码即可查看本次检查的登记、审批和执法人员持证情况。',
    'The code is kept on this tablet and can be shown without a network; scanning it shows the visit\'s registration, approval and the inspectors\' certificates.'],
  code_none: ['本任务暂无检查码，请联系派发部门', 'This task has no inspection code; contact the dispatching office'],
  code_expired: ['检查码已过期（有效期至 {at}）：计划检查时间已经结束，不能再凭此码入企检查。如需检查，请联系派发部门重新安排。',
    'The inspection code has expired (valid until {at}): the planned window is over and the code no longer admits a visit. Ask the dispatching office to plan it again.'],
  code_not_yet: ['计划检查时间尚未开始：现在扫码，企业会看到“检查码尚未生效”。', 'The planned window has not begun: scanned now, the enterprise reads "not yet valid".'],
  code_withdrawn: ['本任务已撤回或取消，检查码已失效，不能凭此码入企检查。', 'The task was withdrawn or cancelled: its code no longer admits a visit.'],
  code_qr_label: ['检查码二维码', 'QR code of the inspection code'],
  close: ['关闭', 'Close'],
  // returned
  returned_title: ['审核退回', 'Returned by the reviewer'],
  returned_by: ['{name} 于 {at} 退回', 'Returned by {name} at {at}'],
  // steps
  step_overview: ['现场', 'On site'],
  step_certificate: ['亮证', 'Certificate'],
  step_findings: ['检查结论', 'Findings'],
  step_measures: ['处置措施', 'Measures'],
  step_signature: ['签名', 'Signature'],
  step_finish: ['完成', 'Finish'],
  next: ['下一步', 'Next'],
  previous: ['上一步', 'Previous'],
  saved_locally: ['已保存在本机', 'Saved on this tablet'],
  place: ['检查地点', 'Place'],
  representative: ['企业现场负责人', "Enterprise's representative"],
  started_at: ['开始时间', 'Started'],
  // certificate
  cert_hint: ['请拍摄您向当事人出示的执法证（含二维码）。照片作为亮证证据保存。',
    'Photograph the certificate you show (with its QR code). The photo is kept as evidence that it was shown.'],
  cert_take: ['拍摄执法证', 'Photograph the certificate'],
  cert_ok: ['已识别：{number}，持证人 {holder}，今日有效。', 'Read: {number}, held by {holder}, valid today.'],
  cert_not_own: ['这不是您本人的执法证：{number}（{holder}）。请出示并拍摄您本人的执法证。',
    'This is not your own certificate: {number} ({holder}). Show and photograph your own.'],
  cert_unknown: ['执法证 {number} 不是本次检查组成员的证件。', 'Certificate {number} does not belong to anyone on this team.'],
  cert_invalid_today: ['执法证 {number} 今日无效：{why}。', 'Certificate {number} is not valid today: {why}.'],
  cert_expired: ['有效期至 {until}', 'valid until {until}'],
  cert_not_yet: ['{from} 起才生效', 'valid only from {from}'],
  cert_status_suspended: ['已暂停', 'suspended'],
  cert_status_revoked: ['已吊销', 'revoked'],
  cert_no_qr: ['照片中没有识别到执法证二维码，请靠近、对准二维码重新拍摄。', 'No certificate QR code found in the photo; move closer and take it again.'],
  cert_photos: ['已拍摄的亮证照片', 'Certificate photos taken'],
  // findings
  result_compliant: ['符合', 'Compliant'],
  result_non_compliant: ['不符合', 'Non-compliant'],
  result_not_applicable: ['不适用', 'N/A'],
  note: ['情况说明', 'Note'],
  add_photo: ['拍照', 'Photo'],
  add_video: ['录像', 'Video'],
  choose_result_first: ['请先选择检查结论，再添加照片或录像。', 'Choose a result before adding photos or videos.'],
  other_department_item: ['{department} 的检查事项，由该部门人员填写', "{department}'s item, recorded by its inspectors"],
  recorded_by_team: ['组员已记录：{result}', 'Recorded by the team: {result}'],
  capturing: ['正在加密保存 {name}…', 'Encrypting and saving {name}…'],
  limit_is: ['（上限 {limit}）', ' (limit {limit})'],
  free_is: ['（剩余 {free}）', ' ({free} free)'],
  captured: ['已保存 {name}（{size}），SHA-256 {sha}', 'Saved {name} ({size}), SHA-256 {sha}'],
  // measures
  soft_measures: ['柔性措施', 'Soft measures'],
  soft_presets: ['责令当场改正|警示提醒|行政指导|宣传教育', 'Ordered to correct on the spot|Warning|Administrative guidance|Education'],
  coercive_measures: ['行政强制措施', 'Coercive measures'],
  add: ['添加', 'Add'],
  remove: ['删除', 'Remove'],
  measure_text: ['措施内容', 'Measure'],
  coercive_kind: ['类型', 'Kind'],
  coercive_description: ['说明（物品、数量、地点等）', 'Description (items, quantity, place…)'],
  kind_seizure: ['查封', 'Seizure'],
  kind_impoundment: ['扣押', 'Impoundment'],
  kind_demolition: ['强制拆除', 'Demolition'],
  kind_closure: ['责令停产停业', 'Closure'],
  kind_other: ['其他', 'Other'],
  none_yet: ['暂无', 'None yet'],
  // signature
  signature_hint: ['请企业现场负责人在下方签名。', "The enterprise's representative signs below."],
  signer_name: ['签名人姓名', "Signer's name"],
  signer_role: ['签名人身份', 'Signer'],
  role_representative: ['企业负责人', 'Representative'],
  role_inspector: ['执法人员', 'Inspector'],
  role_witness: ['见证人', 'Witness'],
  clear: ['清除', 'Clear'],
  save_signature: ['保存签名', 'Save the signature'],
  signature_empty: ['请先在签名框内签名。', 'Sign in the box first.'],
  signatures_taken: ['已保存的签名', 'Signatures saved'],
  // finish
  conclusion: ['检查结论意见', 'Conclusion'],
  finish: ['完成检查', 'Finish the inspection'],
  finish_again: ['修改完毕，重新提交', 'Corrected: finish again'],
  finished_note: ['检查已完成，记录将在联网时同步到服务器。', 'Finished; the record goes to the server when the network is back.'],
  missing_results: ['还有 {n} 项本部门检查事项未填写结论。', '{n} of your department\'s items have no result yet.'],
  summary_findings: ['检查结论 {done}/{total} 项', 'Findings {done}/{total}'],
  summary_media: ['证据文件 {n} 个', '{n} evidence files'],
  summary_signatures: ['签名 {n} 个', '{n} signatures'],
  // sync
  sync_title: ['同步状态', 'Sync status'],
  sync_now: ['立即同步', 'Sync now'],
  syncing: ['正在同步…', 'Syncing…'],
  sync_waiting: ['待同步的记录：{n} 条', 'Changes waiting: {n}'],
  sync_refused: ['被服务器拒收：{n} 条', 'Refused by the server: {n}'],
  sync_conflicts: ['与他人同时修改：{n} 处', 'Edited at the same time by others: {n}'],
  sync_last: ['上次成功同步：{at}', 'Last successful sync: {at}'],
  sync_never: ['尚未成功同步', 'Never synced'],
  sync_offline: ['当前离线，恢复网络后会自动同步。', 'Offline: sync starts by itself when the network is back.'],
  session_expired: ['登录已失效，同步需要重新在线登录：请点“退出”后联网登录（本机数据不会丢失）。',
    'The log-in has expired: log off and log in online to sync (nothing on the tablet is lost).'],
  sync_done: ['同步完成', 'Synced'],
  refused_list: ['被拒收的记录（不会自动重发）', 'Refused changes (not resent by themselves)'],
  conflict_list: ['冲突（服务器保留了时间较新的修改）', 'Conflicts (the server kept the newer edit)'],
  conflict_kept: ['服务器保留的值：{value}', 'Kept by the server: {value}'],
  entity_inspection: ['检查记录', 'Inspection'],
  entity_finding: ['检查结论', 'Finding'],
  entity_media: ['证据文件', 'Evidence file'],
  entity_signature: ['签名', 'Signature'],
  field_place: ['检查地点', 'place'],
  field_representative: ['企业现场负责人', 'representative'],
  field_started_at: ['开始时间', 'start'],
  field_ended_at: ['结束时间', 'end'],
  field_status: ['状态', 'status'],
  field_conclusion: ['结论意见', 'conclusion'],
  field_soft_measures: ['柔性措施', 'soft measures'],
  field_coercive_measures: ['强制措施', 'coercive measures'],
  field_result: ['检查结果', 'result'],
  field_note: ['情况说明', 'note'],
  field_evidence: ['证据', 'evidence'],
  field_task_id: ['任务', 'task'],
  field_inspection_id: ['检查记录', 'inspection'],
  field_check_item_id: ['检查事项', 'check item'],
  field_recorded_at: ['记录时间', 'recorded at'],
  field_signer_name: ['签名人', 'signer'],
  files: ['证据文件上传', 'Evidence uploads'],
  files_none: ['没有待上传的文件。', 'No files to upload.'],
  upload_waiting: ['等待上传', 'Waiting'],
  upload_uploading: ['上传中', 'Uploading'],
  upload_done: ['已上传', 'Uploaded'],
  upload_failed: ['上传失败', 'Failed'],
  upload_unacked: ['等待记录先同步', 'Waiting for its record to sync'],
  retry_failed: ['重试失败的上传', 'Retry failed uploads'],
  storage: ['本机存储空间', 'Storage on this tablet'],
  storage_line: ['已用 {used}，剩余 {free}', '{used} used, {free} free'],
  storage_unknown: ['浏览器未提供存储空间信息', 'The browser does not report storage'],
  storage_low: ['存储空间即将用完（剩余 {free}）。请尽快联网同步并上传证据，之后可清理已上传的文件。',
    'Storage is nearly full ({free} left). Sync and upload soon.'],
  storage_persisted: ['已申请持久存储，浏览器不会自动清除本机数据。', 'Persistent storage granted: the browser will not clear the data.'],
  storage_not_persisted: ['浏览器未授予持久存储，空间紧张时可能清除数据，请尽快同步。', 'Persistent storage not granted; sync soon.'],
  history: ['同步记录', 'Sync history'],
  log_sync: ['同步：发送 {sent} 条（拒收 {rejected}，冲突 {conflict}），收到 {pulled} 条更新',
    'Sync: sent {sent} ({rejected} refused, {conflict} conflicts), received {pulled} changes'],
  // updates
  update_ready: ['应用有新版本，本机数据会保留。', 'A new version of the app is ready; your data stays.'],
  update_apply: ['立即更新', 'Update now'],
  version: ['版本', 'Version'],
};

let current = localStorage.getItem('inspect-once-lang') === 'en' ? 'en' : 'zh';
document.documentElement.lang = current === 'en' ? 'en' : 'zh-CN';

export function lang() {
  return current;
}

export function setLang(value) {
  current = value === 'en' ? 'en' : 'zh';
  localStorage.setItem('inspect-once-lang', current);
  document.documentElement.lang = current === 'en' ? 'en' : 'zh-CN';
}

/** The text for `key`, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const pair = TEXTS[key];
  const text = pair ? pair[current === 'en' ? 1 : 0] : key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (values[name] ?? ''));
}

/** What to show for an error: the library's Chinese message, or its English text when English is chosen. */
export function errorText(error) {
  if (!error) return '';
  if (current === 'en' && error.code) return messageFor(error.code, 'en');
  return error.message || messageFor(error.code || 'internal-error', current);
}

export function formatBytes(n) {
  if (n == null || Number.isNaN(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}

const OFFICE_ZONE = 'Asia/Shanghai';

/** A time as the office reads it (UTC+8), in the chosen language. */
export function formatTime(iso, { date = true } = {}) {
  if (!iso) return '—';
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso);
  return new Intl.DateTimeFormat(current === 'en' ? 'en-GB' : 'zh-CN', {
    timeZone: OFFICE_ZONE, hour: '2-digit', minute: '2-digit', hour12: false,
    ...(date ? { year: 'numeric', month: '2-digit', day: '2-digit' } : {}),
  }).format(when);
}

/** The office's calendar day (YYYY-MM-DD) of an instant: certificates and "today" are office days. */
export function officeDay(when = new Date()) {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: OFFICE_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' })
    .format(when);
  return parts;
}
