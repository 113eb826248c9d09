// Audit: the event log, newest first, a page at a time, filtered by event kind.

import { api } from './api.js';
import { el, fill, table, row, time } from './dom.js';

const PAGE = 50;
const KINDS = ['RegistryVersionPublished', 'RegistryRolledBack', 'RegistryReloadRejected', 'RolloutStarted', 'RolloutPromoted', 'RolloutAborted'];

/** The last sequence number in the log (the API pages forwards only). */
async function lastSequence() {
  let after = 0;
  for (let i = 0; i < 50; i += 1) {
    const { data } = await api(`/audit?after=${after}&limit=500`);
    if (data.events.length) after = data.events.at(-1).sequence;
    if (data.next_after === null) break;
  }
  return after;
}

function details(e) {
  const parts = [];
  if (e.source) parts.push(`source ${e.source}`);
  if (e.to_version) parts.push(`content of v${e.to_version}`);
  const r = e.rollout;
  if (r?.share) parts.push(`candidate v${e.registry_version} on ${r.share} (${(r.cohort ?? []).join(', ')}) beside stable v${r.stable_version}`);
  if (r?.outcome) parts.push(`v${e.registry_version} ${r.outcome} by ${r.decided_by}`);
  if (r?.reason) parts.push(r.reason);
  return [parts.join(' · '), e.errors?.length ? el('ul', { class: 'errors' }, e.errors.map((m) => el('li', {}, m))) : null];
}

export default async function audit(section, { route, go }) {
  const kind = route.query.get('kind') ?? '';
  const last = await lastSequence();
  const upto = Number(route.query.get('upto')) || last;
  const after = Math.max(0, upto - PAGE);
  const { data } = await api(`/audit?after=${after}&limit=${PAGE}`);
  const kinds = [...new Set([...KINDS, ...data.events.map((e) => e.type)])];
  const shown = data.events.filter((e) => !kind || e.type === kind).reverse();
  const select = el('select', { id: 'audit-kind' },
    el('option', { value: '' }, 'every kind'),
    kinds.map((k) => el('option', { value: k, selected: k === kind }, k)));
  const link = (params) => `#/audit?${new URLSearchParams({ ...(kind ? { kind } : {}), ...params })}`;
  select.addEventListener('change', () => go(`#/audit?${new URLSearchParams(select.value ? { kind: select.value, upto } : { upto })}`));
  fill(section,
    el('h1', {}, 'Audit'),
    el('p', {}, el('label', { for: 'audit-kind' }, 'Show events of '), select),
    table(`Events ${after + 1} to ${upto}${kind ? ` of kind ${kind}` : ''}, newest first`, ['#', 'Time', 'Kind', 'Version', 'Actor', 'Details'],
      shown.map((e) => row([e.sequence, time(e.recorded_at), e.type, e.registry_version ? `v${e.registry_version}` : '—', e.actor, details(e)],
        { 'data-kind': e.type })), { id: 'audit' }),
    el('nav', { 'aria-label': 'Audit pages', class: 'pager' },
      upto < last ? el('a', { href: link({ upto: Math.min(last, upto + PAGE) }) }, '← Newer') : null,
      after > 0 ? el('a', { href: link({ upto: after }) }, 'Older →') : null));
}
