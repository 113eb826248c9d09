// Rollouts: start a canary (a document, the share of workers that take it first, automatic
// promotion after a soak), watch its cohorts and figures, and promote or abort it. Refreshes
// every two seconds.

import { api, documentType } from './api.js';
import { el, fill, facts, table, row, note, time, toYaml, confirmDialog } from './dom.js';
import { pushFailure } from './push.js';

const REFRESH_MS = 2000;

const percent = (x) => (typeof x === 'number' ? `${(x * 100).toFixed(2)} %` : '—');
const FIGURES = [
  ['Requests', (f) => f?.requests ?? '—'],
  ['Error ratio', (f) => percent(f?.error_ratio)],
  ['Exhausted ratio', (f) => percent(f?.exhausted_ratio)],
  ['Fallback ratio', (f) => percent(f?.fallback_ratio)],
  ['p99 latency', (f) => (typeof f?.p99_ms === 'number' ? `${f.p99_ms.toFixed(0)} ms` : '—')],
];

/** A cohort's workers as the API lists them: `w1 (v5), w3 (v5)`. */
function members(list) {
  return (list ?? []).map((m) => (typeof m === 'string' ? m : `${m.worker_id} (v${m.registry_version})`)).join(', ') || '—';
}

function activeView(a, act) {
  return [
    el('h2', {}, `Canary: v${a.candidate_version} on ${a.share} of the fleet (stable v${a.stable_version})`),
    a.paused ? note('warn', `Paused: ${a.paused}`) : null,
    facts([
      ['Verdict', el('span', { id: 'rollout-verdict' }, a.verdict ?? '—')],
      ['Promotion', a.auto ? ['automatic when the soak ends at ', time(a.soak_ends_at)] : 'manual'],
      ['Soak', `${a.soak_seconds} s`],
      ['Started', time(a.started_at)],
    ]),
    table('Cohorts', ['Cohort', 'Version', 'Workers'], [
      row(['candidate', `v${a.candidate_version}`, members(a.cohorts?.candidate)], { 'data-cohort': 'candidate' }),
      row(['stable', `v${a.stable_version}`, members(a.cohorts?.stable)], { 'data-cohort': 'stable' }),
    ], { id: 'rollout-cohorts' }),
    table('Figures since the start', ['', 'Candidate', 'Stable'],
      FIGURES.map(([name, f]) => row([name, f(a.figures?.candidate), f(a.figures?.stable)])), { id: 'rollout-figures' }),
    el('p', { class: 'actions' },
      el('button', { type: 'button', class: 'primary', id: 'rollout-promote', onclick: () => act('promote', a) }, 'Promote…'), ' ',
      el('button', { type: 'button', class: 'danger', id: 'rollout-abort', onclick: () => act('abort', a) }, 'Abort…')),
  ];
}

function lastView(last) {
  if (!last) return null;
  return note(last.outcome === 'promoted' ? 'ok' : 'warn', `Last rollout: v${last.candidate_version} ${last.outcome}`,
    last.decided_by ? ` by ${last.decided_by}` : '', last.reason ? ` (${last.reason})` : '', ' at ', time(last.at), '.');
}

function startForm(current, result, refresh) {
  const doc = el('textarea', { id: 'canary-document', rows: 12, spellcheck: 'false' });
  doc.value = toYaml(current.document);
  const share = el('input', { id: 'canary-share', value: '50%', required: true, pattern: '\\d{1,3}%', 'aria-describedby': 'canary-share-help' });
  const auto = el('input', { id: 'canary-auto', type: 'checkbox', checked: true });
  const soak = el('input', { id: 'canary-soak', type: 'number', min: 1, value: 30, required: true });
  return el('form', {
    id: 'canary-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const query = new URLSearchParams({ canary: share.value, auto: String(auto.checked), soak: `${soak.value}s` });
      try {
        const { data } = await api(`/registry?${query}`, {
          method: 'POST', body: doc.value,
          headers: { 'Content-Type': documentType(doc.value), 'If-Match': String(current.version) },
        });
        fill(result, note('ok', `Canary of v${data.version ?? '?'} started.`));
      } catch (error) {
        fill(result, pushFailure(error, current.version));
      }
      await refresh();
    },
  },
  el('h2', {}, 'Start a canary'),
  el('label', { for: 'canary-document' }, `Candidate document (based on v${current.version})`), doc,
  el('p', { class: 'inline' },
    el('label', { for: 'canary-share' }, 'Share of workers'), share,
    el('span', { id: 'canary-share-help', class: 'hint' }, 'e.g. 50%'),
    el('label', { for: 'canary-soak' }, 'Soak (seconds)'), soak,
    auto, el('label', { for: 'canary-auto' }, 'Promote automatically after the soak')),
  el('p', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', id: 'canary-start' }, 'Start canary')));
}

export default async function rollouts(section, { onLeave }) {
  const body = el('div', { id: 'rollout-view' });
  const result = el('div', { id: 'rollout-result', 'aria-live': 'polite' });
  fill(section, el('h1', {}, 'Rollouts'), result, body);
  let shown = null;

  const act = async (what, a) => {
    const sure = await confirmDialog(what === 'promote' ? `Promote v${a.candidate_version}?` : `Abort the canary of v${a.candidate_version}?`,
      el('p', {}, what === 'promote'
        ? `Every worker moves to v${a.candidate_version}.`
        : `The candidate cohort goes back to v${a.stable_version}; v${a.candidate_version} stays in the history.`),
      what === 'promote' ? 'Promote' : 'Abort');
    if (!sure) return;
    try {
      await api(`/rollout/${what}`, { method: 'POST' });
      fill(result, note('ok', what === 'promote' ? `v${a.candidate_version} promoted.` : 'Canary aborted.'));
    } catch (error) {
      fill(result, note('error', error.code === 'no_rollout' ? 'No rollout is running any more.' : error.message));
    }
    await refresh();
  };

  const refresh = async () => {
    let state;
    try {
      state = (await api('/rollout')).data;
    } catch (error) {
      fill(body, note('error', error.message));
      return;
    }
    if (state.active) {
      fill(body, activeView(state.active, act), lastView(state.last));
      shown = 'active';
    } else if (shown !== 'idle') {
      // The start form is drawn once, not on every refresh: the admin may be typing in it.
      const { data: current } = await api('/registry');
      fill(body, note('info', 'No rollout is running.'), lastView(state.last), startForm(current, result, refresh));
      shown = 'idle';
    }
  };
  await refresh();
  const timer = setInterval(() => { if (shown !== 'none') refresh(); }, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}
