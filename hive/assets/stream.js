// The hive's page, part two (served after page.js as one script, `/page.js`): the one stream of
// every job's events, and the job table kept across a reload.

// ---------- the stream ----------
function setConn(state) {
  const c = $('conn');
  c.dataset.state = state;
  c.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', gone: 'hive gone: retrying' }[state];
}
function url() { return '/v1/events' + (cursor != null ? '?last_event_id=' + cursor : ''); }
function failed() {
  failures++;
  setConn(failures > 2 ? 'gone' : 'reconnecting');
}
function connect() {
  if (stream) stream.close();
  stream = null;
  if (!$('token-box').hidden) return; // waiting for the token
  $('conn').dataset.from = cursor == null ? '' : String(cursor);
  stream = token ? readStream() : eventSource();
}
// Without a token: one EventSource. It reconnects by itself with Last-Event-ID.
function eventSource() {
  const es = new EventSource(url());
  es.onopen = () => { failures = 0; setConn('live'); loadFacts(); };
  es.onerror = (e) => {
    if (e instanceof MessageEvent) return; // an `event: error` frame (a failed job), not the connection
    failed();
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
  for (const name of NAMES) es.addEventListener(name, (e) => onEvent(name, e.lastEventId, e.data));
  return es;
}
// An SSE parser (the same rules EventSource follows): feed it text, it calls onEvent per frame.
function sseParser(emit) {
  let buf = '', name = '', data = [], id = null;
  return (text) => {
    buf += text;
    let i;
    while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(buf[i] === '\r' && buf[i + 1] === '\n' ? i + 2 : i + 1);
      if (line === '') {
        if (data.length) emit(name || 'message', id, data.join('\n'));
        name = ''; data = [];
        continue;
      }
      if (line[0] === ':') continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
  };
}
// With a token: fetch and a stream reader, the token in a header (never in the URL).
function readStream() {
  const ctl = new AbortController();
  let closed = false;
  (async () => {
    try {
      const h = headers({ Accept: 'text/event-stream' });
      if (cursor != null) h['Last-Event-ID'] = String(cursor);
      const res = await fetch('/v1/events', { headers: h, signal: ctl.signal, cache: 'no-store' });
      if (res.status === 401) { askToken(); closed = true; return; }
      if (!res.ok || !res.body) throw new Error('status ' + res.status);
      failures = 0; setConn('live'); loadFacts();
      const feed = sseParser((name, id, data) => { if (NAMES.includes(name)) onEvent(name, id, data); });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed(value);
      }
    } catch (_) { /* reconnect below */ }
    if (!closed) { failed(); setTimeout(() => { if (!closed) connect(); }, 1000); }
  })();
  return { close() { closed = true; ctl.abort(); } };
}

// ---------- keeping state across a reload ----------
function save() {
  try {
    sessionStorage.setItem(KEY, JSON.stringify({ cursor, jobs: [...jobs.values()] }));
  } catch (_) { /* storage full: a reload starts from a snapshot */ }
}
function restore() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (!s || typeof s.cursor !== 'number') return;
    cursor = s.cursor;
    for (const j of s.jobs) { jobs.set(j.id, j); dirty.add(j.id); }
  } catch (_) { cursor = null; jobs = new Map(); }
}

