// The hive's page. Plain script, no build step, nothing from another origin.
// Safe by construction: every text from a hub, a name or a job goes in as textContent, never markup.
// State: one job table fed by ONE stream of every job's events (GET /v1/events), kept with its
// cursor in sessionStorage so a reload resumes after the last event it showed (?last_event_id=N).
// `/page.js` is this file followed by stream.js (the stream and the state kept across a reload).
'use strict';

const $ = (id) => document.getElementById(id);
const TOTAL = '∑ total';
const KEY = 'rbee-page-state';
const TOKEN = 'rbee-token';
const NAMES = ['snapshot', 'job', 'narration', 'progress', 'heartbeat', 'done', 'error', 'cancelled'];
const FINAL = new Set(['completed', 'failed', 'cancelled']);

let jobs = new Map();
let cursor = null;
let dirty = new Set();
let dryRuns = new Set();
let token = sessionStorage.getItem(TOKEN);
let stream = null;
let failures = 0;

// ---------- little helpers ----------
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function bytes(n) {
  if (n == null) return '?';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}
function secs(s) {
  if (!isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}
function say(node, text, bad) {
  node.textContent = text;
  if (bad) node.setAttribute('data-bad', ''); else node.removeAttribute('data-bad');
}
function headers(extra) {
  const h = Object.assign({}, extra);
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}
// A request to the hive; a 401 asks for the token. Resolves {status, body}.
async function call(method, path, body) {
  const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}), cache: 'no-store' };
  if (body) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (res.status === 401) askToken();
  return { status: res.status, body: data };
}
function askToken() {
  token = null;
  sessionStorage.removeItem(TOKEN);
  $('token-box').hidden = false;
  $('token').focus();
  if (stream) { stream.close(); stream = null; }
  setConn('connecting');
}

// ---------- the job table ----------
function job(id) {
  let j = jobs.get(id);
  if (!j) {
    j = { id, op: id, status: 'queued', files: {}, started: Date.now(), hb: null, note: '', error: '', ended: null };
    jobs.set(id, j);
  }
  dirty.add(id);
  return j;
}
// Applies one event (a job's own JSON, as on its stream) to its job; `now` in ms.
function apply(j, ev, now) {
  switch (ev.kind) {
    case 'job': j.op = ev.operation; break;
    case 'narration': j.note = ev.message; if (j.status === 'queued') j.status = 'running'; break;
    case 'heartbeat': j.hb = now; if (j.status === 'queued') j.status = 'running'; break;
    case 'progress':
      j.files[ev.file] = { bytes: ev.bytes, total: ev.total == null ? null : ev.total, rate: ev.rate, at: now, from: ev.resumed_from || 0 };
      if (j.status === 'queued') j.status = 'running';
      break;
    case 'done':
      end(j, 'completed', now);
      j.lines = ev.lines || [];
      if (dryRuns.has(j.id)) showPlan(j.lines);
      loadModels();
      break;
    case 'error': j.error = ev.message; end(j, 'failed', now); break;
    case 'cancelled': end(j, 'cancelled', now); loadModels(); break;
  }
}
function end(j, status, now) {
  if (FINAL.has(j.status)) return;
  j.status = status;
  j.ended = now;
}
// A job as a person reads it: `download org/repo:file@main`.
function label(j) { return j.op.replace(/^model_download /, 'download '); }
// What the bar shows: the selection's total when there is one, else the sum of its files.
function progress(j) {
  const t = j.files[TOTAL];
  const files = Object.entries(j.files).filter(([f]) => f !== TOTAL).map(([, v]) => v);
  let done = 0, total = 0, known = files.length > 0, rate = 0, from = 0;
  const now = Date.now();
  for (const f of files) {
    done += f.bytes; from += f.from;
    if (f.total == null) known = false; else total += f.total;
    if (now - f.at < 1500) rate += f.rate;
  }
  if (t) { done = Math.max(t.bytes, done); total = t.total; known = t.total != null; }
  return { done, total: known ? total : null, rate, got: done - from };
}
function snapshot(data) {
  const now = Date.now();
  const seen = new Set();
  for (const s of data.jobs) {
    seen.add(s.job_id);
    const old = jobs.get(s.job_id);
    const j = { id: s.job_id, op: s.operation, status: 'queued', files: {}, started: now - s.age_secs * 1000,
      hb: null, note: '', error: '', ended: null };
    jobs.set(s.job_id, j);
    dirty.add(s.job_id);
    for (const ev of s.events) {
      if (ev.kind === 'heartbeat') { j.hb = now - Math.max(0, s.age_secs - ev.elapsed_secs) * 1000; continue; }
      if (ev.kind === 'done') { end(j, 'completed', null); continue; }
      apply(j, ev, now);
    }
    // When it ended is known only to a page that saw it end.
    if (FINAL.has(j.status)) j.ended = (old && old.ended) || null;
    if (!FINAL.has(j.status)) j.status = s.status;
  }
  // Jobs the hive forgot: keep the finished ones (history), drop the rest.
  for (const [id, j] of jobs) if (!seen.has(id) && !FINAL.has(j.status)) { jobs.delete(id); dirty.add(id); }
}
function onEvent(name, id, data) {
  const n = id === '' || id == null ? null : Number(id);
  if (name !== 'snapshot' && n != null && cursor != null && n <= cursor) return; // shown already
  let ev;
  try { ev = JSON.parse(data); } catch (_) { return; }
  if (name === 'snapshot') snapshot(ev); else apply(job(ev.job_id), ev, Date.now());
  if (n != null) cursor = n;
  schedule();
}

// ---------- rendering: at most every 100 ms, only what changed ----------
let timer = null;
let drawn = 0;
// At once when the last drawing is 100 ms old, else when it will be: a burst of events (50 jobs
// at 4 Hz each) is drawn together, and a progress never waits behind another job's narration.
function schedule() {
  if (!timer) timer = setTimeout(render, Math.max(0, 100 - (performance.now() - drawn)));
}
function render() {
  clearTimeout(timer);
  timer = null;
  drawn = performance.now();
  for (const id of dirty) draw(id);
  dirty.clear();
  for (const j of jobs.values()) if (!FINAL.has(j.status)) stats(j); // ages and ETAs move with time
  $('live-empty').hidden = $('live').children.length > 0;
  $('done-empty').hidden = $('finished').children.length > 0;
  save();
}
function row(j) {
  let li = document.getElementById('job-' + j.id);
  if (li) return li;
  li = el('li');
  li.id = 'job-' + j.id;
  li.dataset.job = j.id;
  const acts = el('div', 'acts');
  const b = el('button', 'cancel', 'Cancel');
  b.type = 'button';
  b.addEventListener('click', () => cancel(j.id, b));
  acts.append(b);
  li.append(el('span', 'name'), el('span', 'status'), el('progress'), el('div', 'stats'), acts, el('p', 'note'), el('p', 'why'));
  return li;
}
function draw(id) {
  const j = jobs.get(id);
  const old = document.getElementById('job-' + id);
  if (!j) { if (old) old.remove(); return; }
  const li = row(j);
  const final = FINAL.has(j.status);
  const list = final ? $('finished') : $('live');
  if (li.parentNode !== list) list.prepend(li);
  li.querySelector('.name').textContent = label(j);
  const st = li.querySelector('.status');
  st.textContent = j.status;
  st.dataset.s = j.status;
  li.querySelector('.note').textContent = final ? '' : j.note;
  li.querySelector('.why').textContent = j.status === 'failed' ? j.error : '';
  li.querySelector('.acts').hidden = final;
  stats(j);
}
function stats(j) {
  const li = document.getElementById('job-' + j.id);
  if (!li) return;
  const p = progress(j);
  const bar = li.querySelector('progress');
  const final = FINAL.has(j.status);
  bar.hidden = final && j.status !== 'cancelled';
  if (p.total) { bar.max = p.total; bar.value = Math.min(p.done, p.total); } else if (!final) bar.removeAttribute('value');
  const parts = [];
  if (!final) {
    parts.push(bytes(p.done) + (p.total ? ' of ' + bytes(p.total) : ''));
    parts.push(bytes(Math.round(p.rate)) + '/s');
    parts.push('ETA ' + (p.total && p.rate > 0 ? secs((p.total - p.done) / p.rate) : '?'));
    parts.push('heartbeat ' + (j.hb ? secs((Date.now() - j.hb) / 1000) + ' ago' : 'not yet'));
  } else {
    parts.push(j.ended ? 'took ' + secs((j.ended - j.started) / 1000) : 'ended before this page opened');
    parts.push(bytes(p.got) + ' received');
    if (j.status === 'cancelled' && p.done > 0 && (!p.total || p.done < p.total)) parts.push(bytes(p.done) + ' kept, resumable');
  }
  const box = li.querySelector('.stats');
  box.replaceChildren(...parts.map((t) => el('span', '', t)));
}

// ---------- actions ----------
async function cancel(id, button) {
  button.disabled = true;
  button.textContent = 'Cancelling…';
  try {
    const r = await call('DELETE', '/v1/jobs/' + encodeURIComponent(id));
    const j = job(id);
    if (r.status === 200) end(j, 'cancelled', Date.now());
    else if (r.body && r.body.status) end(j, r.body.status, Date.now());
    else { button.disabled = false; button.textContent = 'Cancel'; j.note = (r.body && r.body.message) || 'cancel failed: ' + r.status; }
  } catch (e) {
    button.disabled = false;
    button.textContent = 'Cancel';
  }
  render();
}
function patterns(v) { return v.split(',').map((s) => s.trim()).filter(Boolean); }
// `org/repo[:file]`, or a pasted hub URL (…/org/repo/blob|resolve|tree/rev[/file]).
function parseModel(v) {
  v = v.trim();
  const m = /^https?:\/\/[^/]+\/(.*)$/.exec(v);
  if (!m) return { model: v };
  const parts = m[1].split(/[?#]/)[0].replace(/^models\//, '').replace(/\/+$/, '').split('/');
  if (parts.length < 2) return { model: v };
  const repo = parts[0] + '/' + parts[1];
  if (parts.length < 4) return { model: repo };
  const file = parts.slice(4).join('/');
  return { model: file ? repo + ':' + file : repo, revision: decodeURIComponent(parts[3]) };
}
async function submit(dry) {
  const msg = $('form-msg');
  const { model, revision } = parseModel($('model').value);
  if (!model) { say(msg, 'Type a model first, e.g. org/repo:file.gguf', true); $('model').focus(); return; }
  const op = { operation: 'model_download', hive_id: 'localhost', model };
  const rev = $('revision').value.trim() || revision;
  if (rev) op.revision = rev;
  const inc = patterns($('include').value), exc = patterns($('exclude').value);
  if (inc.length) op.include = inc;
  if (exc.length) op.exclude = exc;
  if (dry) op.dry_run = true;
  $('plan').hidden = true;
  try {
    const r = await call('POST', '/v1/jobs', op);
    if (r.status === 200 && r.body && r.body.job_id) {
      if (dry) dryRuns.add(r.body.job_id);
      // A dry run can end before its POST answered: its `done` is in already.
      if (dry && jobs.has(r.body.job_id) && jobs.get(r.body.job_id).lines) showPlan(jobs.get(r.body.job_id).lines);
      say(msg, (dry ? 'Dry run started: ' : 'Download started: ') + model);
      job(r.body.job_id);
      schedule();
    } else {
      say(msg, 'Refused (' + r.status + '): ' + ((r.body && r.body.message) || 'no reason given'), true);
    }
  } catch (e) {
    say(msg, 'The hive did not answer: ' + e.message, true);
  }
}
function showPlan(lines) {
  if (!lines.length) return;
  $('plan').textContent = lines.join('\n');
  $('plan').hidden = false;
}

// ---------- cached models ----------
async function loadModels() {
  if ($('models').querySelector('button.danger')) return; // a question is open; Keep or Delete reloads
  let r;
  try { r = await call('GET', '/v1/models'); } catch (_) { return; }
  if (r.status !== 200 || !r.body) return;
  const items = [];
  for (const repo of r.body.repos) {
    const names = {};
    for (const [name, commit] of Object.entries(repo.refs || {})) (names[commit] = names[commit] || []).push(name);
    for (const f of repo.files) items.push(modelRow(repo, f, names));
  }
  if ($('models').querySelector('button.danger')) return;
  $('models').replaceChildren(...items);
  $('models-empty').hidden = items.length > 0;
}
function modelRow(repo, f, names) {
  const li = el('li');
  li.dataset.repo = repo.repo;
  li.dataset.file = f.file;
  const revs = f.revisions.map((c) => (names[c] || [c.slice(0, 12)]).join(', ')).join('; ');
  li.append(el('span', 'name', repo.repo + ' : ' + f.file), el('span', 'status', bytes(f.size)));
  const info = f.partial ? 'partial' + (f.partial_percent != null ? ' ' + f.partial_percent.toFixed(0) + '%' : '') : 'revision ' + (revs || '?');
  const acts = el('div', 'acts');
  const del = el('button', 'del', 'Delete');
  del.type = 'button';
  del.addEventListener('click', () => askDelete(li, acts, repo.repo, f));
  acts.append(del);
  li.append(el('div', 'stats', info), acts, el('p', 'why'));
  return li;
}
function askDelete(li, acts, repo, f) {
  const yes = el('button', 'danger', 'Really delete');
  const no = el('button', 'quiet', 'Keep');
  yes.type = no.type = 'button';
  no.addEventListener('click', () => { acts.replaceChildren(); loadModels(); });
  yes.addEventListener('click', () => remove(li, repo, f, yes));
  acts.replaceChildren(yes, no);
  li.querySelector('.why').textContent = 'Delete ' + f.file + ' (' + bytes(f.size) + ') from the cache?';
  no.focus();
}
async function remove(li, repo, f, button) {
  button.disabled = true;
  const q = new URLSearchParams({ file: f.file });
  if (f.partial) q.set('partial', 'true');
  const path = '/v1/models/' + repo.split('/').map(encodeURIComponent).join('/') + '?' + q;
  let r;
  try { r = await call('DELETE', path); } catch (e) { r = { status: 0, body: { message: e.message } }; }
  if (r.status === 200) {
    say($('models-msg'), 'Deleted ' + repo + ' : ' + f.file);
    li.querySelector('.acts').replaceChildren();
    loadModels();
    return;
  }
  const why = (r.body && r.body.message) || 'status ' + r.status;
  let text = (r.status === 409 ? 'In use: ' : 'Not deleted: ') + why;
  const held = /job-[0-9a-f-]{36}/.exec(why);
  if (held && jobs.get(held[0])) text += ' — that job is ' + label(jobs.get(held[0]));
  li.querySelector('.why').textContent = text;
  say($('models-msg'), text, true);
  const again = el('button', 'del', 'Delete');
  again.type = 'button';
  again.addEventListener('click', () => askDelete(li, li.querySelector('.acts'), repo, f));
  li.querySelector('.acts').replaceChildren(again);
}

// ---------- hive facts ----------
async function loadFacts() {
  let r;
  try { r = await call('GET', '/v1/hive'); } catch (_) { return; }
  if (r.status !== 200 || !r.body) return;
  const f = r.body;
  const rows = [['Version', f.version], ['Cache', f.cache_dir], ['Hub', f.endpoint],
    ['Offline', f.offline ? 'yes: downloads come from the cache only' : 'no'],
    ['Free disk space', f.free_bytes == null ? 'unknown' : bytes(f.free_bytes)],
    ['Address', location.host]];
  $('facts').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', '', k), el('dd', '', String(v))]));
}

function start() {
  $('dl-form').addEventListener('submit', (e) => { e.preventDefault(); submit(false); });
  $('dry').addEventListener('click', () => submit(true));
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value;
    sessionStorage.setItem(TOKEN, token);
    $('token').value = '';
    $('token-box').hidden = true;
    loadModels(); loadFacts(); connect();
  });
  restore();
  render();
  setInterval(() => { for (const j of jobs.values()) if (!FINAL.has(j.status)) stats(j); }, 1000);
  setInterval(loadFacts, 30000);
  loadModels();
  loadFacts();
  connect();
}
// A deferred script runs before DOMContentLoaded: by then stream.js (served after this file, as
// one script) has defined everything too.
document.addEventListener('DOMContentLoaded', start);
