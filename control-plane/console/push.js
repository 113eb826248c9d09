// Push: edit a document, Validate it (a dry run: every error, nothing written), and Push it
// as the next version, expecting the version it was based on so a concurrent change is a
// clear conflict rather than a silent overwrite.

import { api, documentType } from './api.js';
import { el, fill, note, toYaml } from './dom.js';

let draft = null;

/** Text the next visit of the Push page starts from (e.g. "Edit as a new push"). */
export function setDraft(text) {
  draft = text;
}

/** Every validation error, with the alias (and field) it names pulled out for the eye. */
export function errorList(errors) {
  return el('ul', { class: 'errors', id: 'validation-errors' }, errors.map((message) => {
    const alias = /alias '([^']+)'/.exec(message)?.[1];
    const field = /(chain\[\d+\][\w.]*|description|chain|default|base_url|api_key_env)/.exec(message)?.[1];
    return el('li', {},
      alias ? el('span', { class: 'where' }, alias, field ? ` · ${field}` : '') : null,
      alias ? ' ' : null,
      message);
  }));
}

/** The result area's content for a failed push or validation. */
export function pushFailure(error, basedOn) {
  if (error.code === 'invalid_registry') {
    return [note('error', `The document has ${error.errors.length} error(s); nothing was saved.`), errorList(error.errors)];
  }
  if (error.code === 'version_conflict') {
    return note('error', `Conflict: this edit was based on version ${basedOn}, but version ${error.currentVersion} is now current (someone else changed the registry). `,
      'Nothing was saved. Look at ', el('a', { href: `#/diff?from=${basedOn}&to=${error.currentVersion}` }, `what changed since v${basedOn}`),
      ', then reload this page to edit on top of it.');
  }
  if (error.code === 'rollout_in_progress') {
    return note('error', 'A staged rollout is running: promote or abort it on the ', el('a', { href: '#/rollouts' }, 'Rollouts page'), ' first. ', error.message);
  }
  return note('error', error.message);
}

export default async function push(section) {
  fill(section, el('h1', {}, 'Push'), el('p', { class: 'muted' }, 'Loading…'));
  const { data: current } = await api('/registry');
  const basedOn = current.version;
  const editor = el('textarea', {
    id: 'document', rows: 18, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'document-help',
  });
  editor.value = draft ?? toYaml(current.document);
  draft = null;
  const result = el('div', { id: 'push-result', 'aria-live': 'polite' });
  const validate = el('button', { type: 'button', id: 'validate' }, 'Validate');
  const submit = el('button', { type: 'submit', id: 'push', class: 'primary' }, `Push as v${basedOn + 1}`);
  const busy = (on) => { validate.disabled = on; submit.disabled = on; };
  const send = async (path, headers = {}) => api(path, {
    method: 'POST', body: editor.value, headers: { 'Content-Type': documentType(editor.value), ...headers },
  });

  validate.addEventListener('click', async () => {
    busy(true);
    try {
      const { data } = await send('/registry/validate');
      fill(result, note('ok', `Valid: ${data.aliases.length} alias(es), default ${data.default ?? '(none)'}.`,
        data.unchanged ? ' It is identical to the current version, so a push would change nothing.' : ''));
    } catch (error) {
      fill(result, pushFailure(error, basedOn));
    } finally {
      busy(false);
    }
  });

  const form = el('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      busy(true);
      try {
        const { status, data } = await send('/registry', { 'If-Match': String(basedOn) });
        fill(result, status === 201
          ? note('ok', 'Pushed: ', el('a', { href: `#/versions/${data.version}` }, `version ${data.version}`), ' is current. ',
            el('a', { href: '#/fleet' }, 'Watch the fleet take it'), '.')
          : note('info', `Identical to version ${data.version}: no version was made.`));
      } catch (error) {
        fill(result, pushFailure(error, basedOn));
      } finally {
        busy(false);
      }
    },
  },
  el('label', { for: 'document' }, 'Registry document (aliases.yaml, or JSON)'),
  el('p', { id: 'document-help', class: 'hint' }, `Starts from version ${basedOn}. Validate checks it like a push would, and saves nothing; Push makes it the next version unless someone changed the registry since v${basedOn}.`),
  editor,
  el('p', { class: 'actions' }, validate, ' ', submit));
  fill(section, el('h1', {}, 'Push'), form, result);
}
