// Rollback: pick an earlier version, see what going back to it changes, confirm. A rollback is
// a new version with the old content, made only if the current version is still the one shown.

import { api } from './api.js';
import { el, fill, note, confirmDialog } from './dom.js';
import { diff } from './versions.js';

export default async function rollback(section, context) {
  fill(section, el('h1', {}, 'Rollback'), el('p', { class: 'muted' }, 'Loading…'));
  const { data: current } = await api('/registry');
  const after = Math.max(0, current.version - 100);
  const { data } = await api(`/registry/versions?after=${after}&limit=100`);
  const choices = data.versions.filter((v) => v.version !== current.version).reverse();
  const wanted = Number(context.route.query.get('to')) || choices[0]?.version;
  const select = el('select', { id: 'rollback-to' }, choices.map((v) => el('option', { value: v.version, selected: v.version === wanted },
    `v${v.version} — ${v.source}, ${v.actor ?? '—'}, ${v.alias_count} alias(es)`)));
  const preview = el('div', { id: 'rollback-preview' });
  const result = el('div', { id: 'rollback-result', 'aria-live': 'polite' });
  const button = el('button', { type: 'submit', class: 'danger', id: 'rollback' }, 'Roll back…');

  const show = async () => {
    const to = Number(select.value);
    button.textContent = `Roll back to v${to}…`;
    fill(preview, el('p', { class: 'muted' }, 'Loading the diff…'));
    const inner = el('section', {});
    // From the current version to the target: exactly what the rollback would change.
    await diff(inner, { ...context, route: { query: new URLSearchParams(`from=${current.version}&to=${to}`) }, go: () => {} });
    inner.querySelector('h1')?.remove();
    inner.querySelector('form')?.remove();
    fill(preview, el('h2', {}, `What changes going from v${current.version} back to v${to}'s content`), inner);
  };
  select.addEventListener('change', () => { show().catch((e) => fill(preview, note('error', e.message))); });

  const form = el('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const to = Number(select.value);
      const sure = await confirmDialog(`Roll back to version ${to}?`,
        el('p', {}, `This makes version ${current.version + 1} with the content of version ${to}. Version ${current.version} stays in the history.`),
        `Roll back to v${to}`);
      if (!sure) return;
      button.disabled = true;
      try {
        const { status, data: done } = await api('/registry/rollback', {
          method: 'POST',
          body: JSON.stringify({ to_version: to, expected_version: current.version }),
          headers: { 'Content-Type': 'application/json' },
        });
        fill(result, status === 201
          ? note('ok', 'Rolled back: ', el('a', { href: `#/versions/${done.version}` }, `version ${done.version}`), ` has version ${to}'s content.`)
          : note('info', `Version ${to} has the current content already: nothing changed.`));
      } catch (error) {
        fill(result, error.code === 'version_conflict'
          ? note('error', `Conflict: version ${error.currentVersion} became current since this page loaded v${current.version}. Nothing was changed; reload the page.`)
          : note('error', error.message));
      } finally {
        button.disabled = false;
      }
    },
  },
  el('label', { for: 'rollback-to' }, `Current version is v${current.version}. Roll back to`), ' ', select, ' ', button);

  fill(section, el('h1', {}, 'Rollback'),
    choices.length ? [form, result, preview] : note('info', 'There is only one version: nothing to roll back to.'));
  if (choices.length) await show();
}
