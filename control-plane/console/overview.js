// Overview: the current version, the default alias, every alias with its chain, declared
// providers, and what the fleet's heartbeats say about the current version.

import { api } from './api.js';
import { el, fill, facts, table, row, chain, note, time } from './dom.js';

/** The sum of every live worker's last-beat figures. */
function totals(workers) {
  const sum = { requests: 0, upstream_errors: 0, fallbacks: 0, exhausted: 0 };
  for (const w of workers) {
    for (const window of Object.values(w.windows ?? {})) {
      for (const key of Object.keys(sum)) sum[key] += window[key] ?? 0;
    }
  }
  return sum;
}

export default async function overview(section) {
  fill(section, el('h1', {}, 'Overview'), el('p', { class: 'muted' }, 'Loading…'));
  const { data: current } = await api('/registry');
  let fleet = null;
  let fleetError = null;
  try {
    fleet = (await api('/fleet')).data;
  } catch (error) {
    fleetError = error;
  }
  const providers = Object.values(current.document?.providers ?? {});
  const figures = fleet ? totals(fleet.workers) : null;
  fill(section,
    el('h1', {}, 'Overview'),
    facts([
      ['Current version', el('a', { href: `#/versions/${current.version}`, id: 'current-version' }, `v${current.version}`)],
      ['Default alias', el('span', { id: 'default-alias' }, current.default ?? '(none)')],
      ['Made by', [current.source ?? '—', ' · ', current.actor ?? '—', ' · ', time(current.recorded_at)]],
      ['Content hash', el('code', {}, (current.hash ?? '').slice(0, 16))],
      ['Fleet', fleet
        ? el('a', { href: '#/fleet' }, `${fleet.serving_current} of ${fleet.live} live worker(s) serve v${fleet.current_version}`)
        : el('span', { class: 'muted' }, fleetError?.message ?? 'unavailable')],
      figures && ['Last beat, all workers', `${figures.requests} requests · ${figures.upstream_errors} upstream errors · ${figures.fallbacks} fallbacks · ${figures.exhausted} exhausted`],
    ]),
    el('h2', {}, 'Aliases'),
    table(`The ${current.aliases.length} aliases of version ${current.version}`, ['Alias', 'Description', 'Chain (first healthy entry wins)'],
      current.aliases.map((a) => row([
        { cell: el('span', { class: 'alias-name' }, a.name), class: a.name === current.default ? 'default' : undefined },
        a.description || el('span', { class: 'muted' }, '—'),
        chain(a.chain),
      ], { 'data-alias': a.name })), { id: 'aliases' }),
    providers.length
      ? [el('h2', {}, 'Declared providers'),
        table('Providers the registry declares', ['Provider', 'Base URL', 'Key variable'],
          providers.map((p) => row([p.id, el('code', {}, p.base_url), p.api_key_env ?? '—'])))]
      : null,
    el('h2', {}, 'Providers across the fleet'),
    fleet
      ? table('Each provider\'s circuit breaker, counted over the live workers\' last heartbeats',
        ['Provider', 'Healthy', 'Half-open', 'Open'],
        Object.entries(fleet.providers ?? {}).map(([id, c]) => row([
          id, String(c.healthy), String(c.half_open), String(c.open),
        ], { 'data-provider': id, class: c.open ? 'lagging' : undefined })), { id: 'providers' })
      : note('warn', 'Breaker states come from the workers\' heartbeats, which cannot be read now.'),
  );
}
