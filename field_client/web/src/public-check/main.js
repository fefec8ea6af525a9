// The inspection code page's script (issue 18), served by the server at /public/code-check.js:
//
// - on the online page (/public/c/<token>, rendered by the server): registers the code checker's service worker
//   (scope /public/c/), which keeps the offline checker page, this script, the styles and the public keys;
// - on the offline checker page (what that worker answers when the phone has no network): checks the token of
//   the address with the cached keys and the phone's clock, and states what it could and could not check.
//
// The URLs come from the script tag's data attributes (the server's url_for), so nothing here names a route.
import { checkOffline, tokenFromPath } from './verify.js';

const script = document.currentScript;
const config = {
  worker: script?.dataset.worker,
  scope: script?.dataset.scope,
  keys: script?.dataset.keys,
};

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

// ---- the online page: install the offline checker ---------------------------------------------------------

async function installOfflineChecker() {
  if (!('serviceWorker' in navigator) || !config.worker || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register(config.worker, { scope: config.scope });
    await navigator.serviceWorker.ready;
  } catch (error) {
    console.warn('offline checker not installed', error);
    return;
  }
  const footer = document.querySelector('footer');
  const note = element('p', { class: 'hint', 'data-testid': 'offline-ready' },
    '本机已保存离线核验工具：手机没有网络时再次打开此检查码，仍可核验签名和计划检查时间。');
  if (footer) footer.before(note);
  else document.body.append(note);
}

// ---- the offline checker page -------------------------------------------------------------------------------

const VERDICT_CLASS = {
  valid: 'valid offline', 'not-yet-valid': 'not-yet-valid', expired: 'expired', forged: 'forged',
  'unknown-key': 'forged', malformed: 'malformed',
};

async function cachedKeys() {
  try {
    const response = await fetch(config.keys, { credentials: 'omit' });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function show(report) {
  const verdict = document.querySelector('[data-testid=verdict]');
  verdict.textContent = report.verdict;
  verdict.className = `verdict ${VERDICT_CLASS[report.state] ?? 'not-yet-valid'}`;
  verdict.dataset.state = report.state;

  const out = document.getElementById('offline-report');
  out.replaceChildren();
  if (report.checked.length) {
    const list = element('dl');
    for (const { label, value } of report.checked) list.append(element('dt', {}, label), element('dd', {}, value));
    out.append(element('section', { 'data-testid': 'offline-checked' },
      element('h2', {}, '仅凭检查码本身已核验的内容'), list));
  }
  if (report.unchecked.length) {
    const list = element('ul');
    for (const text of report.unchecked) list.append(element('li', {}, text));
    out.append(element('section', { 'data-testid': 'offline-unchecked' },
      element('h2', {}, '没有网络，无法核验的内容'), list));
  }
  const notes = element('section', { 'data-testid': 'offline-notes' });
  for (const text of report.notes) notes.append(element('p', { class: 'hint' }, text));
  out.append(notes);
  document.body.dataset.checked = report.state;
}

async function runOfflineCheck() {
  const report = await checkOffline(tokenFromPath(window.location.pathname), await cachedKeys(), Date.now());
  show(report);
}

if (document.body?.dataset.page === 'code-offline') runOfflineCheck();
else installOfflineChecker();
