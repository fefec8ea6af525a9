// <field-app>: the screens of the tablet app. Routing is by the URL's fragment (#/tasks, #/task/ID,
// #/inspect/ID/STEP, #/code/ID, #/sync; #enrol=CODE from the enrolment QR code), so every screen opens offline from
// the one precached page. Every change is written to the local store as it is made: closing the tab loses nothing.
import { LitElement, html, nothing } from 'lit';

import { codeViewState, qrMatrix, qrPath } from '../lib/codes.js';

import './signature-pad.js';
import * as icons from './icons.js';
import { errorText, formatBytes, formatTime, lang, officeDay, setLang, t } from './i18n.js';
import { judgeCertificate, readQr } from './qr.js';
import { normaliseCode, session } from './session.js';
import { applyUpdate, onUpdateReady } from './updates.js';

/* global __APP_LABEL__ */
const APP_LABEL = __APP_LABEL__; // a build's label (node build.mjs --label), e.g. a test's "version N+1"
const STEPS = ['overview', 'certificate', 'findings', 'measures', 'signature', 'finish'];
const RESULTS = ['compliant', 'non_compliant', 'not_applicable'];
const COERCIVE = ['seizure', 'impoundment', 'demolition', 'closure', 'other'];
const ROLES = ['representative', 'inspector', 'witness'];
const LOW_STORAGE = 0.1; // warn when less than a tenth of the quota is left…
const LOW_STORAGE_BYTES = 500 * 1024 * 1024; // …or less than this

function parseRoute() {
  const hash = window.location.hash.replace(/^#/, '');
  const enrol = /^enrol=([^&]+)/.exec(hash);
  if (enrol) return { name: 'enrol', code: decodeURIComponent(enrol[1]) };
  const parts = hash.replace(/^\//, '').split('/').filter(Boolean);
  if (parts[0] === 'task' && parts[1]) return { name: 'task', taskId: parts[1] };
  if (parts[0] === 'inspect' && parts[1]) {
    return { name: 'inspect', taskId: parts[1], step: STEPS.includes(parts[2]) ? parts[2] : 'overview' };
  }
  if (parts[0] === 'code' && parts[1]) return { name: 'code', taskId: parts[1] };
  if (parts[0] === 'sync') return { name: 'sync' };
  return { name: 'tasks' };
}

function go(path) {
  window.location.hash = path;
}

function statusOf(inspection) {
  if (!inspection) return 'not_started';
  if (inspection.status === 'returned' || (inspection.review?.status === 'returned' && inspection.status !== 'finished')) {
    return 'returned';
  }
  if (inspection.review?.status === 'approved') return 'approved';
  return inspection.status === 'finished' ? 'finished' : 'open';
}

function departmentsOf(task) {
  const ids = new Set((task.team || []).map((m) => m.department_id));
  if (task.department_id) ids.add(task.department_id);
  return [...ids];
}

// Typing is saved half a second after the last key (and at once on leaving the field); fields waiting are
// merged, so an answer tapped right after typing a note saves both.
function debounce(fn, ms) {
  let timer;
  let waiting = null;
  const fire = () => {
    clearTimeout(timer);
    const fields = waiting;
    waiting = null;
    return fields ? fn(fields) : undefined;
  };
  const debounced = (fields) => {
    waiting = { ...(waiting || {}), ...fields };
    clearTimeout(timer);
    timer = setTimeout(fire, ms);
  };
  debounced.flush = (fields = {}) => {
    waiting = { ...(waiting || {}), ...fields };
    return fire();
  };
  debounced.pending = () => waiting !== null;
  return debounced;
}

class FieldApp extends LitElement {
  static properties = {
    route: { state: true },
    data: { state: true },
    error: { state: true },
    busy: { state: true },
    notice: { state: true },
    updateWorker: { state: true },
    captures: { state: true },
    certChecks: { state: true },
    needOldPassword: { state: true },
  };

  // Light DOM (one stylesheet, plain selectors); the "opening…" text of index.html goes on the first render.
  createRenderRoot() {
    this.replaceChildren();
    return this;
  }

  constructor() {
    super();
    this.route = parseRoute();
    this.data = null;
    this.error = null;
    this.busy = false;
    this.notice = null;
    this.updateWorker = null;
    this.captures = {}; // transient messages per capture target (the record itself is in the store)
    this.certChecks = {};
    this._loadSeq = 0;
    this._savers = {};
  }

  connectedCallback() {
    super.connectedCallback();
    window.addEventListener('hashchange', () => {
      this.flushSaves();
      this.previousRoute = this.route;
      this.route = parseRoute();
      this.error = null;
      this.notice = null;
      this.reload();
      window.scrollTo(0, 0);
    });
    session.addEventListener('change', () => this.reload());
    // A tab closed mid-word: what was typed goes to the store now.
    window.addEventListener('pagehide', () => this.flushSaves());
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') this.flushSaves(); });
    onUpdateReady((worker) => { this.updateWorker = worker; });
    session.start().then(() => {
      this.started = true;
      // A QR link opens enrolment, also on a tablet enrolled before (re-enrolment replaces its credential).
      if (this.route.name === 'enrol' && this.route.code && navigator.onLine) {
        this.enrol(this.route.code);
      }
      this.reload();
    }).catch((error) => {
      this.error = error;
      this.started = true;
      this.requestUpdate();
    });
  }

  // Loads what the current screen shows; a newer load wins over an older one still running.
  async reload() {
    const seq = ++this._loadSeq;
    let data = null;
    try {
      if (session.unlocked) {
        await session.engine.refreshStatus();
        data = await this.loadFor(this.route);
      }
    } catch (error) {
      if (seq === this._loadSeq) this.error = error;
    }
    if (seq === this._loadSeq) {
      this.data = data;
      this.requestUpdate();
    }
  }

  async loadFor(route) {
    if (route.name === 'tasks' || route.name === 'enrol') return { tasks: await session.tasks() };
    if (route.name === 'task' || route.name === 'inspect') return { view: await session.taskView(route.taskId) };
    if (route.name === 'sync') return { sync: await session.syncState() };
    if (route.name === 'code') return { task: await session.store.get('task', route.taskId) };
    return null;
  }

  updated() {
    // The code screen stays lit while the enterprise scans it, and turns to "expired" at the window's end.
    const showing = session.unlocked && this.route.name === 'code';
    if (showing && !this._codeTimer) {
      this._codeTimer = setInterval(() => this.requestUpdate(), 15_000);
      navigator.wakeLock?.request('screen').then((lock) => { this._wakeLock = lock; }).catch(() => {});
    } else if (!showing && this._codeTimer) {
      clearInterval(this._codeTimer);
      this._codeTimer = null;
      this._wakeLock?.release().catch(() => {});
      this._wakeLock = null;
    }
  }

  // ---- frame ----------------------------------------------------------------------------------------------------

  render() {
    if (!this.started) return html`<p class="booting">${t('loading')}</p>`;
    let body;
    if (!session.device) body = this.renderEnrol();
    else if (!session.unlocked) body = this.renderLogin();
    else if (this.route.name === 'task') body = this.renderTask();
    else if (this.route.name === 'inspect') body = this.renderInspect();
    else if (this.route.name === 'sync') body = this.renderSync();
    else if (this.route.name === 'code') return html`<main data-screen="code">${this.renderCode()}</main>`;
    else body = this.renderTasks();
    return html`${this.renderHeader()}${this.renderUpdate()}<main data-screen=${this.screenName()}>${body}</main>`;
  }

  screenName() {
    if (!session.device) return 'enrol';
    if (!session.unlocked) return navigator.onLine ? 'login' : 'unlock';
    return this.route.name === 'inspect' ? `inspect-${this.route.step}` : this.route.name;
  }

  renderHeader() {
    const status = session.engine?.status();
    const pending = status ? status.pending + status.setAside : 0;
    return html`<header class="bar">
      ${session.unlocked && this.route.name !== 'tasks'
        ? html`<a class="button" href="#/tasks" aria-label=${t('back')} data-testid="home">${icons.back()}</a>` : nothing}
      <h1>${t('app_title')}${session.user ? html`<span class="who"> · <span data-testid="current-user">${session.user.full_name || session.user.username}</span></span>` : nothing}</h1>
      <span class="net ${session.online ? '' : 'offline'}" data-testid="network">${session.online ? t('online') : t('offline')}</span>
      ${session.unlocked ? html`<a class="button" href="#/sync" data-testid="sync-badge" aria-label=${t('sync_title')}>${icons.syncArrows()}${pending ? html`<span class="count">${pending}</span>` : nothing}</a>` : nothing}
      <button type="button" data-testid="lang" @click=${() => { setLang(lang() === 'en' ? 'zh' : 'en'); this.requestUpdate(); }}>${t('lang_toggle')}</button>
      ${session.unlocked ? html`<button type="button" data-testid="logoff" @click=${this.logoff}>${t('logoff')}</button>` : nothing}
    </header>`;
  }

  renderUpdate() {
    if (!this.updateWorker) return nothing;
    return html`<div class="banner" data-testid="update-banner"><span>${t('update_ready')}</span>
      <button type="button" @click=${() => applyUpdate()}>${t('update_apply')}</button></div>`;
  }

  renderError() {
    return this.error ? html`<p class="notice bad" role="alert" data-testid="error">${errorText(this.error)}</p>` : nothing;
  }

  renderNotice() {
    return this.notice ? html`<p class="notice ${this.notice.kind || 'ok'}" role="status" data-testid="notice">${this.notice.text}</p>` : nothing;
  }

  async run(action) {
    this.error = null;
    this.notice = null;
    this.busy = true;
    try {
      return await action();
    } catch (error) {
      this.error = error;
      return undefined;
    } finally {
      this.busy = false;
    }
  }

  // ---- enrolment ------------------------------------------------------------------------------------------------

  renderEnrol() {
    const code = this.route.name === 'enrol' ? this.route.code : '';
    return html`<div class="narrow"><h2>${t('enrol_title')}</h2>
      <p class="hint">${t('enrol_hint')}</p>
      ${navigator.onLine ? nothing : html`<p class="notice warn">${t('enrol_needs_network')}</p>`}
      ${this.renderError()}
      <form class="card" data-testid="enrol-form" @submit=${(e) => { e.preventDefault(); this.enrol(new FormData(e.target).get('code')); }}>
        <label class="field"><span class="label">${t('enrol_code')}</span>
          <input name="code" class="code" autocomplete="off" autocapitalize="characters" spellcheck="false"
            placeholder="XXXX-XXXX-XXXX" .value=${code || ''} required></label>
        <button class="primary block" type="submit" ?disabled=${this.busy}>${t('enrol_submit')}</button>
      </form></div>`;
  }

  async enrol(raw) {
    const code = normaliseCode(raw);
    if (!code) {
      this.error = { code: 'enrolment-code-invalid', message: t('enrol_code_format') };
      return;
    }
    const device = await this.run(() => session.enrol(code));
    if (device) {
      history.replaceState(null, '', `${window.location.pathname}#/tasks`);
      this.route = parseRoute();
      this.notice = { kind: 'ok', text: t('enrolled_as', { label: device.label || device.device_id, device: device.device_id, department: device.department?.name || '' }) };
    }
  }

  // ---- log-in / offline unlock ----------------------------------------------------------------------------------

  renderLogin() {
    const offline = !navigator.onLine;
    const device = session.device;
    return html`<div class="narrow">
      <h2>${offline ? t('unlock_title') : t('login_title')}</h2>
      <p class="hint">${offline ? t('unlock_hint') : t('login_hint')}</p>
      <p class="small muted" data-testid="device">${t('enrolled_as', { label: device.label || device.device_id, device: device.device_id, department: device.department?.name || '' })}</p>
      ${this.renderNotice()}${this.renderError()}
      <form class="card" data-testid="login-form" @submit=${this.submitLogin}>
        <label class="field"><span class="label">${t('username')}</span>
          <input name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required
            .value=${session.lastUsername()}></label>
        <label class="field"><span class="label">${t('password')}</span>
          <input name="password" type="password" autocomplete="current-password" required></label>
        ${this.needOldPassword && !offline ? html`<p class="notice warn" data-testid="old-password-hint">${t('old_password_hint')}</p>
          <label class="field"><span class="label">${t('old_password')}</span>
            <input name="old_password" type="password" autocomplete="off" required></label>` : nothing}
        <button class="primary block" type="submit" ?disabled=${this.busy}>${offline ? t('unlock_submit') : t('login_submit')}</button>
        ${this.busy ? html`<p class="muted small">${offline ? t('unlocking') : t('logging_in')}</p>` : nothing}
      </form></div>`;
  }

  async submitLogin(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const username = String(form.get('username') || '').trim();
    const password = String(form.get('password') || '');
    await this.run(async () => {
      if (navigator.onLine) {
        try {
          await session.login(username, password, String(form.get('old_password') || '') || null);
          this.needOldPassword = false;
          return;
        } catch (error) {
          // Records wait under the old password: it is needed once to carry them over to the new one.
          if (error.code === 'has-pending') this.needOldPassword = true;
          // The network went away between the check and the request: unlock offline instead.
          if (!(error.offline && await session.hasLocalAccount(username))) throw error;
        }
      }
      if (!await session.hasLocalAccount(username)) {
        throw { code: 'no-vault', message: t('unlock_needs_login') };
      }
      try {
        await session.unlock(username, password);
      } catch (error) {
        if (error.code === 'wrong-password') throw { code: error.code, message: t('tries_left', { n: error.remaining ?? '' }) };
        if (error.code === 'locked') throw { code: error.code, message: t('vault_locked') };
        throw error;
      }
    });
    if (session.unlocked) {
      if (!window.location.hash || this.route.name === 'enrol') go('#/tasks');
      this.reload();
    }
  }

  logoff() {
    session.logoff();
    this.notice = { kind: 'info', text: t('logoff_done') };
    go('#/tasks');
  }

  // ---- tasks ----------------------------------------------------------------------------------------------------

  renderTasks() {
    const rows = this.data?.tasks;
    if (!rows) return html`<p class="muted">${t('loading')}</p>`;
    const today = officeDay();
    const isToday = ({ task }) => officeDay(new Date(task.window_start)) <= today && today <= officeDay(new Date(task.window_end));
    const todays = rows.filter(isToday);
    const others = rows.filter((row) => !isToday(row));
    return html`<h2>${t('tasks_title')}</h2>${this.renderNotice()}${this.renderError()}
      ${todays.length ? html`<ul class="list" data-testid="tasks-today">${todays.map((row) => this.renderTaskRow(row))}</ul>`
        : html`<p class="card muted" data-testid="no-tasks">${t('tasks_none')}</p>`}
      ${others.length ? html`<h3>${t('tasks_other')}</h3><ul class="list">${others.map((row) => this.renderTaskRow(row))}</ul>` : nothing}`;
  }

  renderTaskRow({ task, inspection }) {
    const departments = departmentsOf(task);
    const state = statusOf(inspection);
    return html`<li><a class="task" href="#/task/${task.id}" data-testid="task-row" data-task-id=${task.id}>
      <div class="task-title">${task.enterprise?.name || task.title}</div>
      <div class="small muted">${task.title} · ${formatTime(task.window_start, { date: false })}–${formatTime(task.window_end, { date: false })}</div>
      <div class="badges">
        <span class="badge ${state}" data-testid="task-status">${t(`status_${state}`)}</span>
        ${departments.length > 1 ? html`<span class="badge joint">${t('joint')}</span>` : nothing}
        ${departments.map((id) => html`<span class="badge" data-testid="task-department">${this.departmentLabel(task, id)}</span>`)}
      </div></a></li>`;
  }

  departmentLabel(task, id) {
    const name = session.departmentName(id);
    if (name) return name;
    const people = (task.team || []).filter((m) => m.department_id === id).map((m) => m.full_name || m.username);
    return people.join('、') || '—';
  }

  // ---- task detail ----------------------------------------------------------------------------------------------

  renderTask() {
    const view = this.data?.view;
    if (this.data && !view) return html`<p class="card">${t('task_missing')}</p>`;
    if (!view) return html`<p class="muted">${t('loading')}</p>`;
    const { task, inspection, items } = view;
    const state = statusOf(inspection);
    const departments = departmentsOf(task);
    // A record a teammate's tablet started (and this one has not written to yet) is joined, not started.
    const joining = state === 'open' && inspection.createdById && inspection.createdById !== session.user?.id
      && !inspection.unconfirmed;
    const action = joining ? 'join_inspection' : { not_started: 'start_inspection', open: 'continue_inspection',
      finished: 'continue_inspection', approved: 'continue_inspection', returned: 'reopen_inspection' }[state];
    return html`<div data-testid="task-detail">
      <div class="title-row"><h2>${task.enterprise?.name}</h2>${this.codeButton(task)}</div>
      ${this.renderReturned(inspection)}${this.renderError()}
      <div class="grid2">
        <section class="card">
          <table class="kv">
            <tr><th>${t('task_title')}</th><td>${task.title}</td></tr>
            <tr><th>${t('address')}</th><td>${task.enterprise?.address || '—'}</td></tr>
            <tr><th>${t('credit_code')}</th><td>${task.enterprise?.credit_code || '—'}</td></tr>
            <tr><th>${t('window')}</th><td>${formatTime(task.window_start)} – ${formatTime(task.window_end, { date: false })}</td></tr>
            <tr><th></th><td><span class="badge ${state}" data-testid="task-status">${t(`status_${state}`)}</span>
              ${departments.length > 1 ? html` <span class="badge joint">${t('joint')} · ${t('departments_n', { n: departments.length })}</span>` : nothing}</td></tr>
          </table>
        </section>
        <section class="card" data-testid="team">
          <h3>${t('team')}</h3>
          ${departments.map((id) => html`<div data-testid="team-department" data-department-id=${id}>
            <strong>${session.departmentName(id) || ''}</strong>
            <ul class="list small">${(task.team || []).filter((m) => m.department_id === id).map((m) => html`
              <li>${m.full_name || m.username}（${m.certificate_number || t('no_certificate')}）</li>`)}</ul></div>`)}
        </section>
      </div>
      <section class="card"><h3>${t('check_items')}</h3>
        <ul class="list" data-testid="check-items">${items.map((item) => html`<li data-testid="check-item">
          <div><strong>${item.code ? `${item.code} ` : ''}${item.title}</strong>
            ${departments.length > 1 ? html`<span class="badge">${session.departmentName(item.department_id) || ''}</span>` : nothing}</div>
          ${item.legal_basis ? html`<div class="basis" data-testid="legal-basis">${t('legal_basis')}：${item.legal_basis}</div>` : nothing}
          ${item.method ? html`<div class="small muted">${t('method')}：${item.method}</div>` : nothing}</li>`)}</ul>
      </section>
      <div class="actions sticky">
        <button class="primary" type="button" data-testid="start" @click=${() => this.start(task.id)}>${t(action)}</button>
      </div></div>`;
  }

  renderReturned(inspection) {
    const review = inspection?.review;
    if (!review || review.status !== 'returned') return nothing;
    const resubmitted = inspection.status === 'finished';
    return html`<section class="card warn" data-testid="returned">
      <h3>${t('returned_title')}${resubmitted ? html` · <span class="badge finished">${t('status_finished')}</span>` : nothing}</h3>
      <p data-testid="review-comment" style="white-space: pre-wrap; font-size: 1.05rem">${review.comment}</p>
      <p class="small muted">${t('returned_by', { name: review.decided_by?.full_name || '', at: formatTime(review.decided_at) })}</p>
    </section>`;
  }

  async start(taskId) {
    const ok = await this.run(() => session.startInspection(taskId));
    if (ok !== undefined) go(`#/inspect/${taskId}/overview`);
  }

  // ---- the inspection code, shown to the enterprise ---------------------------------------------------------------

  codeButton(task) {
    return html`<a class="button code-button" href="#/code/${task.id}" data-testid="show-code">${icons.qr()} ${t('show_code')}</a>`;
  }

  closeCode() {
    // Back to the screen it was opened from (task or inspection), else to the task.
    if (this.previousRoute && this.previousRoute.name !== 'code' && this.previousRoute.taskId === this.route.taskId) {
      window.history.back();
    } else {
      go(`#/task/${this.route.taskId}`);
    }
  }

  // Full screen, black on white, as large as the screen allows: read by a phone's camera from a metre away.
  renderCode() {
    const task = this.data?.task;
    const close = html`<button type="button" class="code-close" data-testid="close-code" @click=${() => this.closeCode()}>${t('close')}</button>`;
    if (!this.data) return html`<div class="code-view">${close}<p class="muted">${t('loading')}</p></div>`;
    if (!task) return html`<div class="code-view" data-testid="code-view" data-state="none">${close}<p class="card">${t('task_missing')}</p></div>`;
    const view = codeViewState(task, new Date(session.now()));
    const departments = departmentsOf(task).map((id) => this.departmentLabel(task, id));
    const message = {
      none: () => t('code_none'), withdrawn: () => t('code_withdrawn'),
      expired: () => t('code_expired', { at: formatTime(view.expiresAt) }),
    }[view.state];
    return html`<div class="code-view" data-testid="code-view" data-state=${view.state}>
      ${close}
      <div class="code-head">
        <div class="code-title">${t('code_title')}</div>
        <div class="code-enterprise" data-testid="code-enterprise">${task.enterprise?.name || task.title}</div>
      </div>
      <div class="code-qr">${view.showQr ? this.qrSvg(view.url)
        : html`<p class="notice bad" role="alert" data-testid="code-message">${message()}</p>`}</div>
      <div class="code-details">
        ${view.showQr ? html`<p class="code-scan">${t('code_scan')}</p>` : nothing}
        <table class="kv">
          <tr><th>${t('code_window')}</th><td data-testid="code-window">${formatTime(task.window_start)} – ${formatTime(task.window_end, { date: false })}</td></tr>
          ${departments.length ? html`<tr><th>${t('code_departments')}</th><td>${departments.join('、')}</td></tr>` : nothing}
        </table>
        ${view.expiresAt && view.state !== 'expired' ? html`<p class="code-expiry" data-testid="code-expires">${t('code_valid_until', { at: formatTime(view.expiresAt) })}</p>` : nothing}
        ${view.state === 'not-yet-valid' ? html`<p class="notice warn" data-testid="code-message">${t('code_not_yet')}</p>` : nothing}
        ${view.showQr ? html`<p class="small muted" data-testid="code-offline">${t('code_offline')}</p>` : nothing}
      </div></div>`;
  }

  qrSvg(url) {
    this._qrCache ??= new Map();
    let drawn = this._qrCache.get(url);
    if (!drawn) {
      const matrix = qrMatrix(url);
      drawn = { side: matrix.length + 8, d: qrPath(matrix, 4) };
      this._qrCache.set(url, drawn);
    }
    return html`<svg data-testid="code-qr" data-url=${url} viewBox="0 0 ${drawn.side} ${drawn.side}" role="img"
      aria-label=${t('code_qr_label')} shape-rendering="crispEdges"><rect width=${drawn.side} height=${drawn.side} fill="#fff"/>
      <path d=${drawn.d} fill="#000"/></svg>`;
  }

  // ---- the inspection ---------------------------------------------------------------------------------------------

  renderInspect() {
    const view = this.data?.view;
    if (this.data && !view) return html`<p class="card">${t('task_missing')}</p>`;
    if (!view) return html`<p class="muted">${t('loading')}</p>`;
    const { step } = this.route;
    const index = STEPS.indexOf(step);
    const body = {
      overview: () => this.renderOverview(view), certificate: () => this.renderCertificate(view),
      findings: () => this.renderFindings(view), measures: () => this.renderMeasures(view),
      signature: () => this.renderSignature(view), finish: () => this.renderFinish(view),
    }[step]();
    const base = `#/inspect/${view.task.id}`;
    return html`<div data-testid="inspection" data-inspection-id=${view.inspectionId}>
      <div class="title-row"><h2>${view.task.enterprise?.name}</h2>${this.codeButton(view.task)}</div>
      <nav class="steps">${STEPS.map((name, i) => html`<a href="${base}/${name}" class=${name === step ? 'current' : (i < index ? 'done' : '')}
        data-testid="step-${name}">${i + 1}. ${t(`step_${name}`)}</a>`)}</nav>
      ${this.renderReturned(view.inspection)}${this.renderNotice()}${this.renderError()}
      ${body}
      <div class="actions sticky">
        ${index > 0 ? html`<a class="button" href="${base}/${STEPS[index - 1]}" data-testid="previous">${t('previous')}</a>` : nothing}
        ${index < STEPS.length - 1 ? html`<a class="button primary" href="${base}/${STEPS[index + 1]}" data-testid="next">${t('next')}</a>` : nothing}
      </div></div>`;
  }

  flushSaves() {
    for (const saver of Object.values(this._savers)) if (saver.pending()) saver.flush();
  }

  saver(key, fn) {
    if (!this._savers[key]) this._savers[key] = debounce(fn, 500);
    return this._savers[key];
  }

  renderOverview({ task, inspection }) {
    const save = this.saver(`inspection:${task.id}`, (fields) => this.run(() => session.updateInspection(task.id, fields)));
    return html`<section class="card">
      <table class="kv"><tr><th>${t('started_at')}</th><td>${formatTime(inspection?.started_at)}</td></tr></table>
      <label class="field"><span class="label">${t('place')}</span>
        <input name="place" .value=${inspection?.place || ''} placeholder=${task.enterprise?.address || ''}
          @input=${(e) => save({ place: e.target.value })} @change=${(e) => save.flush({ place: e.target.value })}></label>
      <label class="field"><span class="label">${t('representative')}</span>
        <input name="representative" .value=${inspection?.representative || ''}
          @input=${(e) => save({ representative: e.target.value })} @change=${(e) => save.flush({ representative: e.target.value })}></label>
      <p class="small muted">✓ ${t('saved_locally')}</p>
    </section>`;
  }

  // A file input styled as a big button; the camera opens where the device has one.
  fileButton({ label, accept, testid, disabled, onFile, primary = false }) {
    return html`<label class="button ${primary ? 'primary' : ''}" data-testid=${testid} aria-disabled=${disabled ? 'true' : 'false'}
      style=${disabled ? 'opacity:.5;pointer-events:none' : ''}>${label}
      <input type="file" accept=${accept} capture="environment" hidden ?disabled=${disabled}
        @change=${async (e) => { const file = e.target.files[0]; e.target.value = ''; if (file) await onFile(file); }}></label>`;
  }

  captureNote(key) {
    const note = this.captures[key];
    if (!note) return nothing;
    return html`<p class="notice ${note.kind}" data-testid="capture-note" data-code=${note.code || ''} role=${note.kind === 'bad' ? 'alert' : 'status'}>${note.text}</p>`;
  }

  async captureInto(key, file, options) {
    this.captures = { ...this.captures, [key]: { kind: 'info', text: t('capturing', { name: file.name }) } };
    this.requestUpdate();
    try {
      const media = await session.capture(file, options);
      this.captures = { ...this.captures, [key]: { kind: 'ok', text: t('captured', { name: file.name, size: formatBytes(media.size), sha: media.sha256.slice(0, 12) }) } };
      return media;
    } catch (error) {
      // The file is refused at capture with the reason; what was captured before stays.
      let text = errorText(error);
      if (error.code === 'too-large' && error.maxBytes) text += t('limit_is', { limit: formatBytes(error.maxBytes) });
      if (error.code === 'quota' && error.free != null) text += t('free_is', { free: formatBytes(error.free) });
      this.captures = { ...this.captures, [key]: { kind: 'bad', text, code: error.code } };
      return null;
    } finally {
      this.requestUpdate();
      this.reload();
    }
  }

  thumbs(mediaList) {
    if (!mediaList.length) return nothing;
    return html`<div class="thumbs">${mediaList.map((m) => html`<div class="thumb" data-testid="media-thumb" data-media-id=${m.id}
      data-sha256=${m.sha256}>${m.content_type?.startsWith('image/') ? html`<media-image .media=${m}></media-image>`
        : html`<div class="video-tile">${icons.play()}</div>`}
      <div class="meta"><div class="name">${m.file_name || ''}</div><div>${formatBytes(m.size)}</div></div></div>`)}</div>`;
  }

  renderCertificate(view) {
    const photos = view.media.filter((m) => m.proves === 'certificate');
    return html`<section class="card">
      <p>${t('cert_hint')}</p>
      ${this.fileButton({ label: html`${icons.camera()} ${t('cert_take')}`, accept: 'image/*', testid: 'certificate-photo', primary: true,
        onFile: (file) => this.certificatePhoto(view, file) })}
      ${this.captureNote('certificate')}
      ${this.renderCertCheck(this.certChecks[view.inspectionId])}
      ${photos.length ? html`<h3>${t('cert_photos')}</h3>${this.thumbs(photos)}` : nothing}
    </section>`;
  }

  renderCertCheck(check) {
    if (!check) return nothing;
    const why = check.why?.status ? t(`cert_status_${check.why.status}`)
      : check.why?.until ? t('cert_expired', { until: check.why.until })
        : check.why?.from ? t('cert_not_yet', { from: check.why.from }) : '';
    const text = {
      ok: () => t('cert_ok', check), 'not-own': () => t('cert_not_own', check), unknown: () => t('cert_unknown', check),
      invalid: () => t('cert_invalid_today', { ...check, why }), 'no-qr': () => t('cert_no_qr'),
    }[check.state]();
    return html`<p class="notice ${check.state === 'ok' ? 'ok' : 'bad'}" role=${check.state === 'ok' ? 'status' : 'alert'}
      data-testid="certificate-check" data-state=${check.state}>${check.state === 'ok' ? '✓ ' : '⚠ '}${text}</p>`;
  }

  async certificatePhoto(view, file) {
    // Read the code first (the photo is kept as evidence whatever it shows).
    const text = await readQr(file);
    const check = judgeCertificate(text, {
      certificates: view.certificates, team: view.task.team || [], userId: session.user?.id, today: officeDay(),
    });
    this.certChecks = { ...this.certChecks, [view.inspectionId]: check };
    await this.captureInto('certificate', file, { kind: 'photo', inspectionId: view.inspectionId, proves: 'certificate' });
  }

  renderFindings(view) {
    const mine = session.user?.department_id;
    return html`${view.items.map((item) => {
      const own = !item.department_id || item.department_id === mine;
      return own ? this.renderOwnFinding(view, item, this.ownFinding(view, item))
        : this.renderTeamFinding(item, view.findings.find((f) => f.check_item_id === item.id));
    })}`;
  }

  // This department's finding for a check item (a finding belongs to its creator's department).
  ownFinding(view, item) {
    const mine = session.user?.department_id;
    return view.findings.find((f) => f.check_item_id === item.id && (!f.departmentId || f.departmentId === mine)) || null;
  }

  // Saves of one finding run one after another, so the first answer creates it and every later edit (the note
  // typed before the screen reloaded) changes that same finding.
  saveFinding(inspectionId, item, fields) {
    const key = `${inspectionId}:${item.id}`;
    this._findingIds ??= new Map();
    this._chains ??= new Map();
    const next = (this._chains.get(key) || Promise.resolve()).then(async () => {
      const known = this._findingIds.get(key)
        || (this.data?.view?.inspectionId === inspectionId ? this.ownFinding(this.data.view, item)?.id : null);
      const id = await session.saveFinding(inspectionId, item.id, fields, known);
      this._findingIds.set(key, id);
    });
    this._chains.set(key, next.catch(() => {}));
    return this.run(() => next);
  }

  renderTeamFinding(item, finding) {
    return html`<section class="card" data-testid="finding" data-check-item=${item.code || item.id} data-own="false">
      <strong>${item.code} ${item.title}</strong>
      ${item.legal_basis ? html`<div class="basis">${t('legal_basis')}：${item.legal_basis}</div>` : nothing}
      <p class="small muted">${t('other_department_item', { department: session.departmentName(item.department_id) || '' })}</p>
      ${finding ? html`<p>${t('recorded_by_team', { result: t(`result_${finding.result}`) })}${finding.note ? `：${finding.note}` : ''}</p>` : nothing}
    </section>`;
  }

  renderOwnFinding(view, item, finding) {
    const key = `finding:${item.id}`;
    const evidence = view.media.filter((m) => (finding?.evidence || []).includes(m.id));
    const save = this.saver(`${view.inspectionId}:${key}`, (fields) => this.saveFinding(view.inspectionId, item, fields));
    return html`<section class="card" data-testid="finding" data-check-item=${item.code || item.id} data-own="true">
      <strong>${item.code} ${item.title}</strong>
      ${item.legal_basis ? html`<div class="basis">${t('legal_basis')}：${item.legal_basis}</div>` : nothing}
      <div class="choices" role="group">${RESULTS.map((result) => html`<button type="button" class=${result}
        data-result=${result} aria-pressed=${finding?.result === result ? 'true' : 'false'}
        @click=${() => save.flush({ result })}>${t(`result_${result}`)}</button>`)}</div>
      <label class="field"><span class="label">${t('note')}</span>
        <textarea name="note" .value=${finding?.note || ''} ?disabled=${!finding}
          placeholder=${finding ? '' : t('choose_result_first')}
          @input=${(e) => save({ note: e.target.value })} @change=${(e) => save.flush({ note: e.target.value })}></textarea></label>
      <div class="actions">
        ${this.fileButton({ label: html`${icons.camera()} ${t('add_photo')}`, accept: 'image/*', testid: 'add-photo', disabled: !finding,
          onFile: (file) => this.captureInto(key, file, { kind: 'photo', inspectionId: view.inspectionId, findingId: finding.id, proves: 'scene' }) })}
        ${this.fileButton({ label: html`${icons.video()} ${t('add_video')}`, accept: 'video/*', testid: 'add-video', disabled: !finding,
          onFile: (file) => this.captureInto(key, file, { kind: 'video', inspectionId: view.inspectionId, findingId: finding.id, proves: 'scene' }) })}
      </div>
      ${finding ? nothing : html`<p class="small muted">${t('choose_result_first')}</p>`}
      ${this.captureNote(key)}
      ${this.thumbs(evidence)}
    </section>`;
  }

  renderMeasures({ task, inspection }) {
    const soft = inspection?.soft_measures || [];
    const coercive = inspection?.coercive_measures || [];
    const update = (fields) => this.run(() => session.updateInspection(task.id, fields));
    const presets = t('soft_presets').split('|');
    return html`<div class="grid2">
      <section class="card" data-testid="soft-measures"><h3>${t('soft_measures')}</h3>
        <ul class="list">${soft.length ? soft.map((text, i) => html`<li class="row" data-testid="soft-measure"><span>${text}</span>
          <button type="button" class="danger" @click=${() => update({ soft_measures: soft.filter((_, j) => j !== i) })}>${t('remove')}</button></li>`)
          : html`<li class="muted">${t('none_yet')}</li>`}</ul>
        <div class="badges">${presets.map((text) => html`<button type="button" class="small" @click=${() => update({ soft_measures: [...soft, text] })}>+ ${text}</button>`)}</div>
        <form @submit=${(e) => { e.preventDefault(); const text = new FormData(e.target).get('measure').trim(); if (text) { update({ soft_measures: [...soft, text] }); e.target.reset(); } }}>
          <label class="field"><span class="label">${t('measure_text')}</span><input name="measure"></label>
          <button type="submit">${t('add')}</button></form>
      </section>
      <section class="card" data-testid="coercive-measures"><h3>${t('coercive_measures')}</h3>
        <ul class="list">${coercive.length ? coercive.map((m, i) => html`<li class="row" data-testid="coercive-measure">
          <span><strong>${t(`kind_${m.kind}`)}</strong>：${m.description}</span>
          <button type="button" class="danger" @click=${() => update({ coercive_measures: coercive.filter((_, j) => j !== i) })}>${t('remove')}</button></li>`)
          : html`<li class="muted">${t('none_yet')}</li>`}</ul>
        <form @submit=${(e) => { e.preventDefault(); const form = new FormData(e.target); const description = form.get('description').trim(); if (description) { update({ coercive_measures: [...coercive, { kind: form.get('kind'), description }] }); e.target.reset(); } }}>
          <label class="field"><span class="label">${t('coercive_kind')}</span>
            <select name="kind">${COERCIVE.map((kind) => html`<option value=${kind}>${t(`kind_${kind}`)}</option>`)}</select></label>
          <label class="field"><span class="label">${t('coercive_description')}</span><input name="description"></label>
          <button type="submit">${t('add')}</button></form>
      </section></div>`;
  }

  renderSignature(view) {
    const signed = view.signatures;
    return html`<section class="card">
      <p>${t('signature_hint')}</p>
      <form data-testid="signature-form" @submit=${(e) => this.saveSignature(e, view)}>
        <div class="grid2">
          <label class="field"><span class="label">${t('signer_role')}</span>
            <select name="role">${ROLES.map((role) => html`<option value=${role}>${t(`role_${role}`)}</option>`)}</select></label>
          <label class="field"><span class="label">${t('signer_name')}</span>
            <input name="name" .value=${view.inspection?.representative || ''} required></label>
        </div>
        <signature-pad></signature-pad>
        <div class="actions">
          <button type="button" @click=${() => this.querySelector('signature-pad').clear()}>${t('clear')}</button>
          <button type="submit" class="primary" data-testid="save-signature">${t('save_signature')}</button>
        </div>
      </form>
      ${this.captureNote('signature')}
      ${signed.length ? html`<h3>${t('signatures_taken')}</h3><ul class="list" data-testid="signatures">${signed.map((s) => html`<li data-testid="signature">
        ${t(`role_${s.signer_role}`)}：${s.signer_name} · ${formatTime(s.signed_at)}</li>`)}</ul>` : nothing}
    </section>`;
  }

  async saveSignature(event, view) {
    event.preventDefault();
    const pad = this.querySelector('signature-pad');
    const form = new FormData(event.target);
    if (pad.empty) {
      this.captures = { ...this.captures, signature: { kind: 'bad', text: t('signature_empty') } };
      return;
    }
    const blob = await pad.toBlob();
    await this.run(async () => {
      await session.saveSignature(view.inspectionId, blob, { signerRole: form.get('role'), signerName: String(form.get('name')).trim() });
      pad.clear();
      this.captures = { ...this.captures, signature: { kind: 'ok', text: `✓ ${t('saved_locally')}` } };
    });
  }

  renderFinish(view) {
    const { task, inspection, items, findings, media, signatures } = view;
    const mine = session.user?.department_id;
    const own = items.filter((item) => !item.department_id || item.department_id === mine);
    const done = own.filter((item) => findings.some((f) => f.check_item_id === item.id && f.result));
    const state = statusOf(inspection);
    const save = this.saver(`conclusion:${task.id}`, (fields) => this.run(() => session.updateInspection(task.id, fields)));
    return html`<section class="card">
      <ul class="list">
        <li data-testid="summary-findings">${t('summary_findings', { done: done.length, total: own.length })}</li>
        <li>${t('summary_media', { n: media.length })}</li>
        <li>${t('summary_signatures', { n: signatures.length })}</li>
      </ul>
      ${done.length < own.length ? html`<p class="notice warn">${t('missing_results', { n: own.length - done.length })}</p>` : nothing}
      <label class="field"><span class="label">${t('conclusion')}</span>
        <textarea name="conclusion" .value=${inspection?.conclusion || ''}
          @input=${(e) => save({ conclusion: e.target.value })} @change=${(e) => save.flush({ conclusion: e.target.value })}></textarea></label>
      ${state === 'finished' ? html`<p class="notice ok" data-testid="finished">${t('finished_note')}</p>` : nothing}
      <div class="actions">
        <button class="primary block" type="button" data-testid="finish" @click=${() => this.finish(task.id)}>
          ${state === 'returned' ? t('finish_again') : t('finish')}</button>
      </div></section>`;
  }

  async finish(taskId) {
    const conclusion = this.querySelector('textarea[name=conclusion]')?.value;
    await this.run(() => session.updateInspection(taskId, {
      status: 'finished', ended_at: new Date().toISOString(), ...(conclusion !== undefined ? { conclusion } : {}),
    }));
    // The finish card says it is finished (data-testid=finished); a sync starts at once when online.
    if (!this.error && navigator.onLine) session.sync().catch(() => {});
  }

  // ---- sync status ----------------------------------------------------------------------------------------------

  renderSync() {
    const state = this.data?.sync;
    if (!state) return html`<p class="muted">${t('loading')}</p>`;
    const { status, setAside, conflicts, media, log, storage } = state;
    const lastError = status?.lastError;
    // A sync the inspector started and the last sync's error are the same refusal: said once.
    const own = this.error && this.error.code !== lastError?.code ? this.renderError() : nothing;
    return html`<h2>${t('sync_title')}</h2>${own}
      <section class="card" data-testid="sync-summary" data-running=${session.syncing ? 'true' : 'false'}>
        <p data-testid="sync-pending" data-count=${status?.pending ?? 0}>${t('sync_waiting', { n: status?.pending ?? 0 })}</p>
        <p data-testid="sync-refused">${t('sync_refused', { n: status?.setAside ?? 0 })}</p>
        <p data-testid="sync-conflicts">${t('sync_conflicts', { n: status?.conflicts ?? 0 })}</p>
        <p data-testid="sync-last" data-at=${status?.lastSyncAt || ''}>${status?.lastSyncAt ? t('sync_last', { at: formatTime(status.lastSyncAt) }) : t('sync_never')}</p>
        ${!session.online ? html`<p class="notice warn">${t('sync_offline')}</p>` : nothing}
        ${session.sessionExpired ? html`<p class="notice warn" data-testid="session-expired">${t('session_expired')}</p>` : nothing}
        ${lastError && !lastError.offline ? html`<p class="notice bad" data-testid="sync-error">${lang() === 'en' && lastError.code ? errorText(lastError) : lastError.message}</p>` : nothing}
        <div class="actions">
          <button class="primary" type="button" data-testid="sync-now" ?disabled=${session.syncing || !session.online}
            @click=${() => this.run(() => session.sync())}>${session.syncing ? t('syncing') : t('sync_now')}</button>
          ${media.some((m) => m.state === 'failed') ? html`<button type="button" @click=${() => this.run(() => session.retryUploads())}>${t('retry_failed')}</button>` : nothing}
        </div>
      </section>
      ${this.renderStorage(storage)}
      <section class="card" data-testid="uploads"><h3>${t('files')}</h3>
        ${media.length ? html`<ul class="list">${media.map((row) => this.renderUpload(row))}</ul>` : html`<p class="muted">${t('files_none')}</p>`}
      </section>
      ${setAside.length ? html`<section class="card bad" data-testid="refused"><h3>${t('refused_list')}</h3>
        <ul class="list">${setAside.map((item) => html`<li data-testid="refused-item" data-code=${item.code}>
          <strong>${t(`entity_${item.entity}`)}</strong> · ${item.reason}
          ${this.fieldsText(item.fields) ? html`<div class="small muted" data-testid="refused-content">${this.fieldsText(item.fields)}</div>` : nothing}</li>`)}</ul></section>` : nothing}
      ${conflicts.length ? html`<section class="card warn" data-testid="conflicts"><h3>${t('conflict_list')}</h3>
        <ul class="list">${conflicts.map((c) => html`<li data-testid="conflict-item">
          <strong>${t(`entity_${c.entity}`)}</strong> · ${Object.keys(c.fields || {}).map((name) => t(`field_${name}`)).join('、')}
          ${Object.keys(c.overridden || {}).length ? html`<div class="small">${t('conflict_kept', {
            value: Object.entries(c.overridden).map(([k, v]) => `${t(`field_${k}`)}：${typeof v === 'string' ? v : JSON.stringify(v)}`).join('；') })}</div>` : nothing}</li>`)}</ul></section>` : nothing}
      ${log?.length ? html`<section class="card"><h3>${t('history')}</h3><ul class="list small">${log.map((entry) => html`<li>
        ${formatTime(entry.at)} · ${this.logText(entry)}</li>`)}</ul></section>` : nothing}
      <p class="small muted" data-testid="app-version">${t('version')} ${document.querySelector('meta[name=app-version]')?.content}${APP_LABEL ? ` (${APP_LABEL})` : ''}</p>`;
  }

  // What a refused change held, in words: kept on the tablet for the inspector (and the office) to see.
  fieldsText(fields) {
    const shown = Object.entries(fields || {}).filter(([name, value]) => !name.endsWith('_id') && value !== null
      && value !== '' && !(Array.isArray(value) && !value.length));
    return shown.map(([name, value]) => `${t(`field_${name}`)}：${typeof value === 'string' ? value
      : Array.isArray(value) ? value.map((v) => (typeof v === 'string' ? v : v.description || JSON.stringify(v))).join('、')
        : JSON.stringify(value)}`).join('；');
  }

  logText(entry) {
    if (entry.kind !== 'sync') return entry.detail?.message || entry.kind;
    const pushed = entry.detail?.pushed || {};
    const pulled = entry.detail?.pulled || {};
    return t('log_sync', { sent: pushed.sent ?? 0, rejected: pushed.rejected ?? 0, conflict: pushed.conflict ?? 0,
      pulled: pulled.changes ?? 0 });
  }

  renderUpload(row) {
    const progress = session.uploadProgress.get(row.id);
    const sent = row.state === 'done' ? row.size : (progress?.sent ?? row.offset ?? 0);
    const state = row.state === 'waiting' && !row.acked ? 'unacked' : row.state;
    return html`<li data-testid="upload" data-media-id=${row.id} data-state=${row.state}>
      <div class="row"><span>${row.fileName || row.file_name || row.id.slice(0, 8)} · ${formatBytes(row.size)}</span>
        <span class="badge ${row.state === 'done' ? 'finished' : row.state === 'failed' ? 'returned' : 'open'}">${t(`upload_${state}`)}</span></div>
      <progress max=${row.size || 1} .value=${sent}></progress>
      ${row.state !== 'done' && sent > 0 ? html`<div class="small muted" data-testid="upload-sent">${formatBytes(sent)} / ${formatBytes(row.size)}</div>` : nothing}
      ${row.error?.reason ? html`<div class="small ${row.state === 'failed' ? 'error' : 'muted'}">${row.error.reason}</div>` : nothing}
    </li>`;
  }

  renderStorage(storage) {
    if (!storage || storage.quota == null) {
      return html`<section class="card" data-testid="storage"><h3>${t('storage')}</h3><p class="muted">${t('storage_unknown')}</p></section>`;
    }
    const low = storage.free < LOW_STORAGE_BYTES || storage.free < storage.quota * LOW_STORAGE;
    return html`<section class="card ${low ? 'warn' : ''}" data-testid="storage"><h3>${t('storage')}</h3>
      <p>${t('storage_line', { used: formatBytes(storage.usage), free: formatBytes(storage.free) })}</p>
      <progress max=${storage.quota} .value=${storage.usage}></progress>
      ${low ? html`<p class="notice warn" data-testid="storage-low">${t('storage_low', { free: formatBytes(storage.free) })}</p>` : nothing}
      <p class="small muted">${storage.persisted ? t('storage_persisted') : t('storage_not_persisted')}</p></section>`;
  }
}

// A photo decrypted from the store, shown while the app is unlocked.
class MediaImage extends LitElement {
  static properties = { media: { attribute: false }, url: { state: true } };

  createRenderRoot() { return this; }

  updated(changed) {
    if (changed.has('media') && this.media) {
      session.mediaUrl(this.media).then((url) => { this.url = url; }).catch(() => { this.url = null; });
    }
  }

  render() {
    return this.url ? html`<img src=${this.url} alt=${this.media?.file_name || ''}>` : html`<div style="height:72px;background:#ddd"></div>`;
  }
}

customElements.define('media-image', MediaImage);
customElements.define('field-app', FieldApp);
