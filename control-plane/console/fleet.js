// Fleet: every live worker as its heartbeat describes it, refreshed every two seconds while the
// page is open. A worker behind the current version is highlighted (and says so in words).

import { api } from './api.js';
import { el, fill, table, row, note, time } from './dom.js';

const REFRESH_MS = 2000;

function sum(windows, key) {
  return Object.values(windows ?? {}).reduce((n, w) => n + (w[key] ?? 0), 0);
}

function p99(windows) {
  const values = Object.values(windows ?? {}).map((w) => w.latency_ms?.p99 ?? 0);
  return values.length ? `${Math.max(...values).toFixed(0)} ms` : '—';
}

function view(fleet) {
  return [
    note(fleet.serving_current === fleet.live ? 'ok' : 'warn',
      `Current version v${fleet.current_version}: ${fleet.serving_current} of ${fleet.live} live worker(s) serve it.`),
    table('Live workers (figures: the last heartbeat interval)', ['Worker', 'Listen', 'Registry version', 'Lag', 'In flight', 'Requests', 'Upstream errors', 'Fallbacks', 'Exhausted', 'p99', 'Last beat', 'Binary'],
      fleet.workers.map((w) => row([
        el('span', { class: 'worker-id' }, w.worker_id),
        el('code', {}, w.listen),
        [`v${w.registry_version}`, w.lagging ? el('span', { class: 'badge warn' }, 'behind') : null],
        w.lagging ? `${(w.lag_seconds ?? 0).toFixed(1)} s` : '—',
        w.in_flight,
        sum(w.windows, 'requests'),
        sum(w.windows, 'upstream_errors'),
        sum(w.windows, 'fallbacks'),
        sum(w.windows, 'exhausted'),
        p99(w.windows),
        time(w.last_beat_at),
        w.binary_version,
      ], { class: w.lagging ? 'lagging' : undefined, 'data-worker': w.worker_id, 'data-version': w.registry_version })),
      { id: 'fleet' }),
  ];
}

export default async function fleet(section, { onLeave }) {
  const body = el('div', { id: 'fleet-view' });
  const status = el('p', { class: 'muted', id: 'fleet-updated' });
  let paused = false;
  const toggle = el('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause updates');
  toggle.addEventListener('click', () => {
    paused = !paused;
    toggle.setAttribute('aria-pressed', String(paused));
    toggle.textContent = paused ? 'Resume updates' : 'Pause updates';
  });
  fill(section, el('h1', {}, 'Fleet'), el('p', { class: 'actions' }, toggle, ' ', status), body);
  const refresh = async () => {
    if (paused) return;
    try {
      const { data } = await api('/fleet');
      fill(body, view(data));
      fill(status, 'Updated ', time(Date.now() / 1000), `; refreshes every ${REFRESH_MS / 1000} s.`);
    } catch (error) {
      fill(body, note('error', error.message));
    }
  };
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}
