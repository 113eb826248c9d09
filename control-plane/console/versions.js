// Versions: the history (newest first, paged), one version's document, and a side-by-side
// diff of any two versions.

import { api } from './api.js';
import { el, fill, facts, table, row, chain, note, time, toYaml } from './dom.js';
import { setDraft } from './push.js';

const PAGE = 20;

/** A form that opens the diff of two version numbers. */
export function diffForm(go, from = '', to = '') {
  const fromInput = el('input', { id: 'diff-from', type: 'number', min: 1, required: true, value: from });
  const toInput = el('input', { id: 'diff-to', type: 'number', min: 1, required: true, value: to });
  return el('form', {
    class: 'inline',
    'aria-label': 'Compare two versions',
    onsubmit: (e) => { e.preventDefault(); go(`#/diff?from=${fromInput.value}&to=${toInput.value}`); },
  },
  el('label', { for: 'diff-from' }, 'From version'), fromInput,
  el('label', { for: 'diff-to' }, 'to version'), toInput,
  el('button', { type: 'submit' }, 'Show diff'));
}

export async function versions(section, { route, go }) {
  fill(section, el('h1', {}, 'Versions'), el('p', { class: 'muted' }, 'Loading…'));
  const { data: current } = await api('/registry');
  const newest = Number(route.query.get('upto')) || current.version;
  const after = Math.max(0, newest - PAGE);
  const { data } = await api(`/registry/versions?after=${after}&limit=${PAGE}`);
  const list = data.versions.slice().reverse();
  const pager = el('nav', { 'aria-label': 'Version pages', class: 'pager' },
    newest < current.version ? el('a', { href: `#/versions?upto=${Math.min(current.version, newest + PAGE)}` }, '← Newer') : null,
    after > 0 ? el('a', { href: `#/versions?upto=${after}` }, 'Older →') : null);
  fill(section,
    el('h1', {}, 'Versions'),
    diffForm(go, Math.max(1, current.version - 1), current.version),
    table(`Versions ${after + 1} to ${newest}, newest first`, ['Version', 'Source', 'Actor', 'Time', 'Aliases', ''],
      list.map((v) => row([
        el('a', { href: `#/versions/${v.version}` }, `v${v.version}`),
        v.source, v.actor ?? '—', time(v.recorded_at), v.alias_count,
        v.version === current.version
          ? el('span', { class: 'badge' }, 'current')
          : [el('a', { href: `#/diff?from=${v.version}&to=${current.version}` }, 'diff vs current'), ' · ',
            el('a', { href: `#/rollback?to=${v.version}` }, 'roll back to')],
      ], { 'data-version': v.version })), { id: 'versions' }),
    pager);
}

export async function version(section, { route, go }) {
  const { data: v } = await api(`/registry/versions/${encodeURIComponent(route.arg)}`);
  const yaml = toYaml(v.document);
  fill(section,
    el('h1', {}, `Version ${v.version}`),
    facts([
      ['Source', v.rolled_back_to ? `rollback to v${v.rolled_back_to}` : v.source],
      ['Actor', v.actor ?? '—'],
      ['Time', time(v.recorded_at)],
      ['Default alias', v.default ?? '(none)'],
      ['Content hash', el('code', {}, v.hash)],
    ]),
    el('p', { class: 'actions' },
      v.version > 1 ? el('a', { href: `#/diff?from=${v.version - 1}&to=${v.version}` }, `Diff against v${v.version - 1}`) : null, ' ',
      el('button', { type: 'button', onclick: () => { setDraft(yaml); go('#/push'); } }, 'Edit as a new push')),
    table('Aliases', ['Alias', 'Description', 'Chain'],
      v.aliases.map((a) => row([a.name, a.description || '—', chain(a.chain)]))),
    el('h2', {}, 'Document'),
    el('pre', { class: 'document', tabindex: 0, 'aria-label': `Version ${v.version} as aliases.yaml` }, yaml));
}

/** One side of a changed chain, each entry marked when the other side lacks it. */
function marked(entries, other, mark) {
  const marks = {};
  for (const t of entries) if (!other.includes(t)) marks[t] = mark;
  return chain(entries, marks);
}

export async function diff(section, { route, go }) {
  const from = Number(route.query.get('from'));
  const to = Number(route.query.get('to'));
  fill(section, el('h1', {}, 'Diff'), diffForm(go, from || '', to || ''));
  if (!from || !to) return;
  const [{ data: d }, { data: a }, { data: b }] = await Promise.all([
    api(`/registry/diff?from=${from}&to=${to}`),
    api(`/registry/versions/${from}`),
    api(`/registry/versions/${to}`),
  ]);
  const chains = (v) => Object.fromEntries(v.aliases.map((x) => [x.name, x.chain]));
  const [left, right] = [chains(a), chains(b)];
  const changed = Object.fromEntries(d.changed.map((c) => [c.name, c]));
  const names = [...new Set([...Object.keys(left), ...Object.keys(right)])].sort();
  const rows = names.map((name) => {
    let kind = 'same';
    if (d.added.includes(name)) kind = 'added';
    else if (d.removed.includes(name)) kind = 'removed';
    else if (changed[name]) kind = 'changed';
    const l = left[name];
    const r = right[name];
    const what = kind === 'changed'
      ? `${changed[name].from_chain.join() !== changed[name].to_chain.join() ? 'chain' : ''}${changed[name].description_changed ? ' description' : ''}`.trim()
      : '';
    return row([
      el('span', { class: 'alias-name' }, name),
      { cell: kind === 'same' ? 'unchanged' : `${kind}${what ? ` (${what})` : ''}`, class: `kind ${kind}` },
      { cell: l ? (kind === 'changed' ? marked(l, r, 'removed') : chain(l)) : '—', class: kind === 'removed' ? 'removed' : undefined },
      { cell: r ? (kind === 'changed' ? marked(r, l, 'added') : chain(r)) : '—', class: kind === 'added' ? 'added' : undefined },
    ], { class: `diff-${kind}`, 'data-alias': name });
  });
  const defaultRow = row([
    el('em', {}, 'default alias'),
    { cell: d.default_changed ? 'changed' : 'unchanged', class: `kind ${d.default_changed ? 'changed' : 'same'}` },
    a.default ?? '(none)', b.default ?? '(none)',
  ], { class: d.default_changed ? 'diff-changed' : 'diff-same' });
  const empty = !d.added.length && !d.removed.length && !d.changed.length && !d.default_changed && !d.providers_changed;
  section.append(
    empty ? note('info', `Versions ${from} and ${to} have the same content.`) : note('info',
      `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed`,
      d.default_changed ? ', default changed' : '', d.providers_changed ? ', providers changed' : '', '.'),
    table(`Version ${from} (left) against version ${to} (right)`, ['Alias', 'Change', `v${from}`, `v${to}`], [...rows, defaultRow], { id: 'diff', class: 'diff' }));
}
