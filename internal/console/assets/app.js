// Kappa web console. Plain JavaScript, no build step, no dependencies.
//
// Every piece of data is rendered through text nodes (h() below never
// parses markup), so names, descriptions, payloads and log lines cannot
// inject HTML; the server's Content-Security-Policy forbids inline script
// besides.
'use strict';

(() => {
  // ---- DOM helpers -------------------------------------------------------

  // h builds an element: attrs sets attributes (on* handlers are
  // functions), children are nodes or strings (as text), arrays flatten,
  // null/false are skipped.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const SVGNS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $main = () => document.getElementById('main');
  function render(...nodes) {
    const m = $main();
    m.replaceChildren();
    append(m, nodes);
  }

  // ---- formatting --------------------------------------------------------

  const fmtInt = (n) => (n || 0).toLocaleString('en-US');
  function fmtMs(ms) {
    if (!ms) return '0 ms';
    if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 2) + ' s';
    return (ms >= 100 ? ms.toFixed(0) : ms.toFixed(ms >= 10 ? 1 : 2)) + ' ms';
  }
  function fmtBytes(b) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(b >= 10 ? 0 : 1) : b) + ' ' + u[i];
  }
  function fmtTime(t) {
    const d = new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }
  function fmtDate(s) {
    if (!s) return '';
    const d = new Date(String(s).replace(/\+0000$/, 'Z'));
    return isNaN(d) ? String(s) : d.toISOString().replace('T', ' ').slice(0, 19);
  }
  const badge = (text, extra) => h('span', { class: 'badge ' + (extra || text || '') }, text || '—');

  // ---- HTTP --------------------------------------------------------------

  class APIError extends Error {}

  async function api(path, opts) {
    const resp = await fetch(path, Object.assign({ headers: { Accept: 'application/json' } }, opts || {}));
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
    if (!resp.ok) {
      const type = resp.headers.get('X-Amzn-ErrorType') || (body && (body.__type || (body.errors && body.errors[0] && body.errors[0].code))) || resp.status;
      const msg = body && (body.Message || body.message || (body.errors && body.errors[0] && body.errors[0].message)) || text || resp.statusText;
      const err = new APIError(type + ': ' + msg);
      err.status = resp.status;
      throw err;
    }
    return body;
  }
  const lambdaPath = (name, rest) => '/2015-03-31/functions/' + encodeURIComponent(name) + (rest || '');

  async function listFunctions() {
    let out = [], marker = '';
    for (let i = 0; i < 100; i++) {
      const page = await api('/2015-03-31/functions?MaxItems=50' + (marker ? '&Marker=' + encodeURIComponent(marker) : ''));
      out = out.concat(page.Functions || []);
      if (!page.NextMarker) break;
      marker = page.NextMarker;
    }
    return out;
  }

  // ---- periodic work that belongs to the current view --------------------

  const view = { timers: [], aborts: [] };
  function every(ms, fn) { fn(); view.timers.push(setInterval(fn, ms)); }
  function leaveView() {
    view.timers.forEach(clearInterval);
    view.aborts.forEach((a) => a.abort());
    view.timers = []; view.aborts = [];
  }

  // ---- host stats in the header ------------------------------------------

  async function refreshHost() {
    const el = document.getElementById('host');
    try {
      const m = await api('/kappa/metrics/functions');
      const hst = m.host || {};
      el.replaceChildren(
        h('span', null, 'environments ', h('b', null, fmtInt(hst.live)), ' live · ', h('b', null, fmtInt(hst.busy)), ' busy · ',
          h('b', null, fmtInt(hst.idle)), ' idle · ', h('b', null, fmtInt(hst.provisioned)), ' provisioned · ',
          h('b', null, fmtInt(hst.spare)), ' spare'),
        h('span', null, 'memory ', h('b', null, fmtInt(hst.memoryCommittedMB)), ' MB committed'));
    } catch (_) { el.replaceChildren(h('span', null, 'server unreachable')); }
  }

  // ---- charts ------------------------------------------------------------

  function sparkline(values, errors) {
    const w = 120, hgt = 26, n = values.length;
    const max = Math.max(1, ...values);
    const pts = (vs) => vs.map((v, i) => `${(i / Math.max(1, n - 1)) * w},${hgt - 2 - (v / max) * (hgt - 4)}`).join(' ');
    const svg = s('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img' },
      s('title', null, `${values.reduce((a, b) => a + b, 0)} invocations in the last hour`),
      s('polyline', { points: pts(values) }));
    if (errors && errors.some((v) => v > 0)) svg.append(s('polyline', { class: 'err', points: pts(errors) }));
    return svg;
  }

  // chart draws series of one-minute points: each series is
  // {name, color, values, kind: 'bar'|'line'}.
  function chart(id, title, times, series, fmt, totalText) {
    const W = 400, H = 120, L = 50, B = 16, T = 6;
    const n = times.length;
    const max = Math.max(1e-9, ...series.flatMap((x) => x.values));
    const nice = niceMax(max);
    const x = (i) => L + (i + 0.5) * ((W - L - 4) / n);
    const y = (v) => T + (H - T - B) * (1 - v / nice);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
    svg.append(s('line', { class: 'axis', x1: L, y1: y(0), x2: W, y2: y(0) }),
      s('line', { class: 'axis', x1: L, y1: y(nice), x2: W, y2: y(nice), 'stroke-dasharray': '2 3' }),
      s('text', { x: L - 4, y: y(nice) + 4, 'text-anchor': 'end' }, fmt(nice)),
      s('text', { x: L - 4, y: y(0) + 3, 'text-anchor': 'end' }, fmt(0)),
      s('text', { x: L, y: H - 3 }, hhmm(times[0])),
      s('text', { x: W - 2, y: H - 3, 'text-anchor': 'end' }, hhmm(times[n - 1])));
    const bw = Math.max(1, (W - L - 4) / n - 1.5);
    const bars = series.filter((x) => x.kind === 'bar');
    bars.forEach((sr, k) => {
      sr.values.forEach((v, i) => {
        if (!v) return;
        const w = bw / bars.length;
        svg.append(s('rect', { x: x(i) - bw / 2 + k * w, y: y(v), width: w, height: Math.max(1, y(0) - y(v)), fill: sr.color },
          s('title', null, `${hhmm(times[i])} ${sr.name}: ${fmt(v)}`)));
      });
    });
    series.filter((x) => x.kind === 'line').forEach((sr) => {
      // With gaps, minutes without data (0) break the line; a lone point
      // becomes a dot.
      let run = [];
      const flush = () => {
        if (run.length === 1) svg.append(s('circle', { cx: run[0][0], cy: run[0][1], r: 2.2, fill: sr.color }, s('title', null, sr.name)));
        else if (run.length > 1) svg.append(s('polyline', { points: run.map((p) => p.join(',')).join(' '), fill: 'none', stroke: sr.color, 'stroke-width': 1.6 }, s('title', null, sr.name)));
        run = [];
      };
      sr.values.forEach((v, i) => {
        if (sr.gaps && !v) { flush(); return; }
        run.push([x(i), y(v)]);
      });
      flush();
    });
    const total = series[0].values.reduce((a, b) => a + b, 0);
    return h('div', { class: 'chart', 'data-testid': 'chart-' + id, 'data-total': String(total) },
      h('div', { class: 'title' }, title, h('span', { class: 'total' }, totalText || '')),
      svg,
      h('div', { class: 'legend' }, series.map((sr) => h('span', null, h('i', { 'data-color': sr.color }), sr.name))));
  }
  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  const hhmm = (t) => { const d = new Date(t); return isNaN(d) ? '' : d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', hour12: false }); };
  // Legend swatches take their colour from data-color (no inline styles
  // under the CSP): colour them through the CSSOM.
  function paintLegends(root) {
    root.querySelectorAll('.legend i[data-color]').forEach((i) => { i.style.background = i.getAttribute('data-color'); });
  }

  // ---- views -------------------------------------------------------------

  async function functionsView() {
    const body = h('tbody');
    const err = h('div');
    const table = h('table', { 'data-testid': 'functions' },
      h('thead', null, h('tr', null, h('th', null, 'Function'), h('th', null, 'State'), h('th', null, 'Memory'),
        h('th', null, 'Modified'), h('th', { class: 'num' }, 'Invocations 1h'), h('th', { class: 'num' }, 'Errors 1h'),
        h('th', { class: 'num' }, 'Running'), h('th', null, 'Last hour'))), body);
    render(h('h1', null, 'Functions'), h('p', { class: 'sub' }, 'Container-image functions on this server; activity of the last hour.'),
      err, h('div', { class: 'card' }, table));
    every(5000, async () => {
      try {
        const [fns, m] = await Promise.all([listFunctions(), api('/kappa/metrics/functions')]);
        const stats = new Map((m.functions || []).map((x) => [x.function, x]));
        err.replaceChildren();
        if (!fns.length) {
          body.replaceChildren(h('tr', null, h('td', { colspan: 8, class: 'empty' },
            'No functions yet. Push an image and create one: kappa fn create NAME --image localhost:9070/REPO:TAG')));
          return;
        }
        body.replaceChildren(...fns.map((f) => {
          const st = stats.get(f.FunctionName) || { invocations: 0, errors: 0, running: 0, spark: new Array(60).fill(0), errorSpark: [] };
          return h('tr', { 'data-testid': 'fn-row-' + f.FunctionName },
            h('td', null, h('a', { href: '#/fn/' + encodeURIComponent(f.FunctionName) }, f.FunctionName)),
            h('td', null, badge(f.State), f.LastUpdateStatus && f.LastUpdateStatus !== 'Successful' ? [' ', badge(f.LastUpdateStatus)] : null),
            h('td', null, f.MemorySize + ' MB'),
            h('td', { class: 'muted' }, fmtDate(f.LastModified)),
            h('td', { class: 'num' }, fmtInt(st.invocations)),
            h('td', { class: 'num' }, fmtInt(st.errors)),
            h('td', { class: 'num' }, fmtInt(st.running)),
            h('td', null, sparkline(st.spark || [], st.errorSpark)));
        }));
      } catch (e) {
        err.replaceChildren(h('div', { class: 'error' }, 'Cannot list functions: ' + e.message));
      }
    });
  }

  async function functionView(name) {
    const err = h('div');
    const head = h('h1', null, name);
    const config = h('div', { class: 'card', 'data-testid': 'config' }, h('h2', null, 'Configuration'), h('p', { class: 'empty' }, 'Loading…'));
    const versions = h('div', { class: 'card', 'data-testid': 'versions' }, h('h2', null, 'Versions and aliases'));
    const charts = h('div', { class: 'charts' });
    const stats = h('div', { class: 'stats' });
    render(h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Functions'), ' / ', name), head, err, stats,
      h('div', { class: 'grid2' }, invokeCard(name, () => refreshCharts()), logCard(name)),
      h('div', { class: 'card' }, h('h2', null, 'Last hour'), charts),
      h('div', { class: 'grid2' }, config, versions));

    async function refreshCharts() {
      try {
        const m = await api('/kappa/metrics/functions/' + encodeURIComponent(name));
        const pts = m.series || [];
        const times = pts.map((p) => p.time);
        const col = (k) => pts.map((p) => p[k] || 0);
        const sum = (k) => col(k).reduce((a, b) => a + b, 0);
        const count = (v) => String(Math.round(v));
        charts.replaceChildren(
          chart('invocations', 'Invocations', times, [{ name: 'invocations', color: '#2563eb', values: col('invocations'), kind: 'bar' }], count, fmtInt(sum('invocations')) + ' in 1h'),
          chart('errors', 'Errors', times, [{ name: 'errors', color: '#c62828', values: col('errors'), kind: 'bar' },
            { name: 'throttles', color: '#b45309', values: col('throttles'), kind: 'bar' }], count, fmtInt(sum('errors')) + ' errors, ' + fmtInt(sum('throttles')) + ' throttles'),
          chart('duration', 'Duration', times, [{ name: 'p50', color: '#0d9488', values: col('p50Ms'), kind: 'line', gaps: true },
            { name: 'p90', color: '#7c3aed', values: col('p90Ms'), kind: 'line', gaps: true },
            { name: 'p99', color: '#c62828', values: col('p99Ms'), kind: 'line', gaps: true }], fmtMs),
          chart('concurrency', 'Concurrency (max a minute)', times, [{ name: 'concurrent executions', color: '#4f46e5', values: col('concurrency'), kind: 'line' }], count, 'running now: ' + fmtInt(m.running)),
          chart('coldstarts', 'Cold starts', times, [{ name: 'cold starts', color: '#b45309', values: col('coldStarts'), kind: 'bar' }], count, fmtInt(sum('coldStarts')) + ' in 1h'));
        paintLegends(charts);
        const inv = sum('invocations'), errs = sum('errors');
        const withDur = pts.filter((p) => p.invocations > 0);
        const avg = withDur.length ? withDur.reduce((a, p) => a + p.meanMs * p.invocations, 0) / inv : 0;
        stats.replaceChildren(
          stat(fmtInt(inv), 'invocations, last hour'),
          stat(inv ? (100 * errs / inv).toFixed(1) + ' %' : '—', 'error rate'),
          stat(inv ? fmtMs(avg) : '—', 'mean duration'),
          stat(fmtInt(sum('coldStarts')), 'cold starts'),
          stat(fmtInt(m.running), 'running now'));
      } catch (e) {
        charts.replaceChildren(h('div', { class: 'error' }, 'Cannot load metrics: ' + e.message));
      }
    }
    every(5000, refreshCharts);

    try {
      const fn = await api(lambdaPath(name));
      const c = fn.Configuration || {};
      head.append(badge(c.State));
      if (c.LastUpdateStatus && c.LastUpdateStatus !== 'Successful') head.append(badge(c.LastUpdateStatus));
      const env = (c.Environment && c.Environment.Variables) || {};
      const lc = c.LoggingConfig || {};
      const ic = (c.ImageConfigResponse && c.ImageConfigResponse.ImageConfig) || {};
      const kv = [
        ['ARN', h('code', null, c.FunctionArn)],
        ['State', [badge(c.State), c.StateReason ? ' ' + c.StateReason : '']],
        ['Last update', [badge(c.LastUpdateStatus), c.LastUpdateStatusReason ? ' ' + c.LastUpdateStatusReason : '']],
        ['Description', c.Description || h('span', { class: 'muted' }, 'none')],
        ['Image', h('code', null, (fn.Code && fn.Code.ImageUri) || '')],
        ['Resolved', h('code', null, (fn.Code && fn.Code.ResolvedImageUri) || '')],
        ['Memory', c.MemorySize + ' MB'],
        ['Timeout', c.Timeout + ' s'],
        ['Ephemeral storage', ((c.EphemeralStorage && c.EphemeralStorage.Size) || 512) + ' MB'],
        ['Architectures', (c.Architectures || []).join(', ')],
        ['Logging', [lc.LogFormat || 'Text', lc.ApplicationLogLevel ? ` · application ${lc.ApplicationLogLevel}` : '',
          lc.SystemLogLevel ? ` · system ${lc.SystemLogLevel}` : '', lc.LogGroup ? ` · ${lc.LogGroup}` : '']],
        ['Reserved concurrency', fn.Concurrency && fn.Concurrency.ReservedConcurrentExecutions !== undefined ? String(fn.Concurrency.ReservedConcurrentExecutions) : 'none'],
        ['Entrypoint / command', [(ic.EntryPoint || []).join(' '), ' ', (ic.Command || []).join(' ')]],
        ['Environment', Object.keys(env).length ? h('div', { class: 'tags' }, Object.keys(env).sort().map((k) => h('span', { class: 'tag' }, k + '=' + env[k]))) : h('span', { class: 'muted' }, 'none')],
        ['Modified', fmtDate(c.LastModified)],
        ['Revision', h('code', null, c.RevisionId)],
      ];
      config.replaceChildren(h('h2', null, 'Configuration'), h('dl', { class: 'kv' }, kv.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
    } catch (e) {
      err.replaceChildren(h('div', { class: 'error' }, e.status === 404 ? `Function ${name} does not exist.` : 'Cannot load the function: ' + e.message));
      config.replaceChildren(h('h2', null, 'Configuration'));
      return;
    }
    try {
      const [vs, as] = await Promise.all([api(lambdaPath(name, '/versions')), api(lambdaPath(name, '/aliases'))]);
      const aliases = as.Aliases || [];
      versions.replaceChildren(h('h2', null, 'Versions and aliases'),
        h('table', null, h('thead', null, h('tr', null, h('th', null, 'Version'), h('th', null, 'Aliases'), h('th', null, 'Modified'), h('th', null, 'Description'))),
          h('tbody', null, (vs.Versions || []).map((v) => h('tr', null,
            h('td', null, h('code', null, v.Version)),
            h('td', null, aliases.filter((a) => a.FunctionVersion === v.Version || (a.RoutingConfig && a.RoutingConfig.AdditionalVersionWeights && v.Version in a.RoutingConfig.AdditionalVersionWeights))
              .map((a) => [badge(a.Name, 'alias'), a.FunctionVersion !== v.Version ? ` ${(100 * a.RoutingConfig.AdditionalVersionWeights[v.Version]).toFixed(0)}%` : '', ' '])),
            h('td', { class: 'muted' }, fmtDate(v.LastModified)),
            h('td', null, v.Description || ''))))));
      const qsel = document.querySelector('[data-testid="qualifier"]');
      if (qsel) {
        for (const v of vs.Versions || []) if (v.Version !== '$LATEST') qsel.append(h('option', { value: v.Version }, 'version ' + v.Version));
        for (const a of aliases) qsel.append(h('option', { value: a.Name }, 'alias ' + a.Name));
      }
    } catch (e) {
      versions.append(h('div', { class: 'error' }, 'Cannot list versions: ' + e.message));
    }
  }

  const stat = (v, l) => h('div', { class: 'stat' }, h('div', { class: 'v' }, v), h('div', { class: 'l' }, l));

  function invokeCard(name, after) {
    const payload = h('textarea', { 'data-testid': 'payload', spellcheck: 'false', 'aria-label': 'Payload (JSON)' });
    payload.value = localStorage.getItem('kappa.payload.' + name) || '{\n  \n}';
    const qualifier = h('select', { 'data-testid': 'qualifier', 'aria-label': 'Qualifier' }, h('option', { value: '' }, '$LATEST'));
    const result = h('div', { 'data-testid': 'invoke-result' });
    const button = h('button', { 'data-testid': 'invoke', type: 'button' }, 'Invoke');
    payload.addEventListener('input', () => {
      try { JSON.parse(payload.value || '{}'); payload.classList.remove('invalid'); } catch (_) { payload.classList.add('invalid'); }
    });
    button.addEventListener('click', async () => {
      let body = payload.value.trim() || '{}';
      try { JSON.parse(body); } catch (e) {
        result.replaceChildren(h('div', { class: 'error' }, 'The payload is not valid JSON: ' + e.message));
        return;
      }
      localStorage.setItem('kappa.payload.' + name, payload.value);
      button.disabled = true;
      const t0 = performance.now();
      try {
        const q = qualifier.value ? '?Qualifier=' + encodeURIComponent(qualifier.value) : '';
        const resp = await fetch(lambdaPath(name, '/invocations' + q), {
          method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Amz-Log-Type': 'Tail' },
        });
        const ms = performance.now() - t0;
        const text = await resp.text();
        const fnErr = resp.headers.get('X-Amz-Function-Error');
        const logB64 = resp.headers.get('X-Amz-Log-Result');
        let pretty = text;
        try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
        const status = !resp.ok ? badge('HTTP ' + resp.status, 'bad') : fnErr ? badge('Function error: ' + fnErr, 'bad') : badge('Succeeded', 'ok');
        result.replaceChildren();
        append(result, [
          h('div', { class: 'result-head' }, status,
            h('span', { class: 'muted' }, 'version ', h('code', null, resp.headers.get('X-Amz-Executed-Version') || '—')),
            h('span', { class: 'muted' }, fmtMs(ms) + ' round trip'),
            h('span', { class: 'muted mono' }, resp.headers.get('x-amzn-RequestId') || '')),
          h('pre', { class: 'code', 'data-testid': 'invoke-payload' }, pretty),
          logB64 ? [h('div', { class: 'muted' }, 'Log tail'), h('pre', { class: 'code', 'data-testid': 'invoke-log' }, decodeB64(logB64))] : null]);
      } catch (e) {
        result.replaceChildren(h('div', { class: 'error' }, 'Invoke failed: ' + e.message));
      } finally {
        button.disabled = false;
        after();
      }
    });
    return h('div', { class: 'card' }, h('h2', null, 'Invoke'), payload,
      h('div', { class: 'row' }, qualifier, button, h('span', { class: 'muted' }, 'Synchronous (RequestResponse) with the log tail')), result);
  }

  function decodeB64(b64) {
    try {
      const bin = atob(b64);
      return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    } catch (_) { return ''; }
  }

  function logCard(name) {
    const box = h('div', { class: 'logs', 'data-testid': 'log-view', role: 'log' });
    const filter = h('input', { type: 'search', placeholder: 'Filter (text)', 'data-testid': 'log-filter', 'aria-label': 'Filter' });
    const pause = h('button', { class: 'secondary', type: 'button' }, 'Pause');
    const state = h('span', { class: 'muted' }, 'connecting…');
    let paused = false, ctl = null, shown = 0;
    pause.addEventListener('click', () => { paused = !paused; pause.textContent = paused ? 'Resume' : 'Pause'; });
    let debounce;
    filter.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(connect, 300); });

    function addLines(events) {
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
      for (const e of events) {
        const cls = 'logline ' + (e.type || '') + (/logsDropped/.test(e.message) ? ' dropped' : '');
        box.append(h('div', { class: cls, title: (e.stream || '') + (e.requestId ? ' · ' + e.requestId : '') },
          h('span', { class: 't' }, fmtTime(e.time)), h('span', { class: 'm' }, e.message)));
        shown++;
      }
      while (box.childElementCount > 2000) box.firstElementChild.remove();
      if (atBottom && !paused) box.scrollTop = box.scrollHeight;
    }

    async function connect() {
      if (ctl) ctl.abort();
      ctl = new AbortController();
      view.aborts.push(ctl);
      box.replaceChildren();
      shown = 0;
      const q = new URLSearchParams({ follow: '1', since: '1h', limit: '300' });
      if (filter.value) q.set('filter', filter.value);
      const my = ctl;
      try {
        const resp = await fetch('/kappa/logs/' + encodeURIComponent(name) + '?' + q, { signal: my.signal });
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        state.textContent = 'live';
        state.className = 'badge ok';
        const reader = resp.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          const lines = buf.split('\n');
          buf = lines.pop();
          const evs = [];
          for (const l of lines) { if (l) { try { evs.push(JSON.parse(l)); } catch (_) { /* skip */ } } }
          if (evs.length && !paused) addLines(evs);
        }
        if (my === ctl) { state.textContent = 'disconnected'; state.className = 'badge bad'; }
      } catch (e) {
        if (e.name === 'AbortError') return;
        state.textContent = 'disconnected: ' + e.message;
        state.className = 'badge bad';
      }
      if (my === ctl && !my.signal.aborted) setTimeout(() => { if (my === ctl && !my.signal.aborted) connect(); }, 3000);
    }
    setTimeout(connect, 0);
    return h('div', { class: 'card' },
      h('div', { class: 'row between' }, h('h2', null, 'Live logs'), state),
      h('div', { class: 'row' }, filter, pause,
        h('button', { class: 'secondary', type: 'button', onclick: () => { box.replaceChildren(); } }, 'Clear')),
      box);
  }

  async function registryView() {
    const body = h('tbody');
    const err = h('div');
    render(h('h1', null, 'Registry'), h('p', { class: 'sub' }, 'Repositories of the embedded OCI registry (push to this server\u2019s address, e.g. localhost:9070/REPO:TAG).'),
      err, h('div', { class: 'card' }, h('table', { 'data-testid': 'registry' },
        h('thead', null, h('tr', null, h('th', null, 'Repository'), h('th', null, 'Tags'), h('th', null, 'Used by'))), body)));
    try {
      const [cat, fns] = await Promise.all([api('/v2/_catalog?n=1000'), functionImages()]);
      const repos = cat.repositories || [];
      if (!repos.length) {
        body.replaceChildren(h('tr', null, h('td', { colspan: 3, class: 'empty' }, 'No repositories yet: kappa push DIR localhost:9070/REPO:TAG')));
        return;
      }
      body.replaceChildren(...await Promise.all(repos.map(async (r) => {
        let tags = [];
        try { tags = (await api('/v2/' + r.split('/').map(encodeURIComponent).join('/') + '/tags/list')).tags || []; } catch (_) { /* deleted meanwhile */ }
        const users = fns.filter((f) => f.repo === r);
        return h('tr', { 'data-testid': 'repo-' + r },
          h('td', null, h('code', null, r)),
          h('td', null, h('div', { class: 'tags' }, tags.map((t) => h('span', { class: 'tag' }, t)))),
          h('td', null, users.map((f) => [h('a', { href: '#/fn/' + encodeURIComponent(f.FunctionName) }, f.FunctionName), ' '])));
      })));
    } catch (e) {
      err.replaceChildren(h('div', { class: 'error' }, e.status === 401
        ? 'The registry requires credentials; the console shows it only when the registry is open to this browser.'
        : 'Cannot read the registry catalog: ' + e.message));
    }
  }

  // functionImages returns {FunctionName, repo} of up to 50 functions,
  // repo being the repository path of the function's image.
  async function functionImages() {
    try {
      const fns = (await listFunctions()).slice(0, 50);
      return await Promise.all(fns.map(async (f) => {
        try {
          const g = await api(lambdaPath(f.FunctionName));
          const uri = (g.Code && g.Code.ImageUri) || '';
          const path = uri.replace(/^[^/]+\//, '').replace(/@.*$/, '').replace(/:[^:/]*$/, '');
          return { FunctionName: f.FunctionName, repo: path };
        } catch (_) { return { FunctionName: f.FunctionName, repo: '' }; }
      }));
    } catch (_) { return []; }
  }

  async function billingView() {
    const body = h('tbody');
    const err = h('div');
    const since = h('span');
    render(h('h1', null, 'Billing'), h('p', { class: 'sub' }, 'GB-seconds from billed durations (1 ms granularity, init included on cold starts) × memory, since ', since, '.'),
      err, h('div', { class: 'card' }, h('table', { 'data-testid': 'billing' },
        h('thead', null, h('tr', null, h('th', null, 'Function'), h('th', { class: 'num' }, 'Invocations'), h('th', { class: 'num' }, 'Billed duration'),
          h('th', { class: 'num' }, 'GB-seconds'), h('th', { class: 'num' }, 'GB-seconds, last hour'))), body)));
    every(5000, async () => {
      try {
        const b = await api('/kappa/billing');
        since.textContent = fmtDate(b.since);
        const row = (x, total) => h('tr', total ? { class: 'total' } : { 'data-testid': 'bill-' + x.function },
          h('td', null, total ? h('b', null, 'Total') : h('a', { href: '#/fn/' + encodeURIComponent(x.function) }, x.function)),
          h('td', { class: 'num' }, fmtInt(x.invocations)),
          h('td', { class: 'num' }, fmtMs(x.billedMs)),
          h('td', { class: 'num' }, x.gbSeconds.toFixed(4)),
          h('td', { class: 'num' }, x.gbSecondsLastHour.toFixed(4)));
        body.replaceChildren(...(b.functions || []).map((x) => row(x)), row(b.total, true));
      } catch (e) { err.replaceChildren(h('div', { class: 'error' }, 'Cannot load billing: ' + e.message)); }
    });
  }

  // ---- routing -----------------------------------------------------------

  function route() {
    leaveView();
    const hash = location.hash.replace(/^#/, '') || '/';
    const parts = hash.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
    let nav = 'functions';
    if (parts[0] === 'fn' && parts[1]) functionView(parts[1]);
    else if (parts[0] === 'registry') { nav = 'registry'; registryView(); }
    else if (parts[0] === 'billing') { nav = 'billing'; billingView(); }
    else functionsView();
    document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('data-nav') === nav));
    document.title = (parts[0] === 'fn' ? parts[1] + ' · ' : '') + 'Kappa';
  }

  window.addEventListener('hashchange', route);
  document.addEventListener('DOMContentLoaded', () => {
    route();
    refreshHost();
    setInterval(refreshHost, 5000);
  });
})();
