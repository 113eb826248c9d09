// Building the page from data. Every value that came from the server (alias names,
// descriptions, provider URLs, actors, error messages) goes in as a text node or an attribute
// value, never as markup: there is no innerHTML anywhere in the console.

/** An element with attributes and children; strings and numbers become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  add(node, children);
  return node;
}

/** Appends children (nested arrays flattened, null/false skipped) as nodes or text. */
export function add(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces everything in `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  return add(node, children);
}

/** A time in the browser's local time, with UTC on hover. Takes RFC 3339 text or Unix seconds. */
export function time(value) {
  if (value === null || value === undefined || value === '') return el('span', { class: 'muted' }, '—');
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return document.createTextNode(String(value));
  const utc = date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return el('time', { datetime: date.toISOString(), title: utc }, date.toLocaleString());
}

/** A table in a horizontally scrolling box (narrow screens), with a caption for screen readers. */
export function table(caption, headings, rows, attrs = {}) {
  return el('div', { class: 'scroll' },
    el('table', attrs,
      el('caption', {}, caption),
      el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headings.length, class: 'muted' }, 'Nothing to show.')))));
}

/** A row of cells; a cell may be an element, text, or `{cell, class}`. */
export function row(cells, attrs = {}) {
  return el('tr', attrs, cells.map((c) => (c && c.cell !== undefined
    ? el('td', { class: c.class }, c.cell)
    : el('td', {}, c))));
}

/** A term/description list from pairs. */
export function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.filter(Boolean).map(([term, value]) => [el('dt', {}, term), el('dd', {}, value)]));
}

/** A message box; `kind` is info, ok, warn or error (errors are announced at once). */
export function note(kind, ...children) {
  return el('div', { class: `note ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, children);
}

/** A chain of targets as an ordered list. */
export function chain(targets, marks = {}) {
  return el('ol', { class: 'chain' }, targets.map((t) => el('li', { class: marks[t] }, marks[t] === 'added' ? el('ins', {}, t) : marks[t] === 'removed' ? el('del', {}, t) : t)));
}

/**
 * A confirmation in a modal <dialog> (keyboard: focus moves in, Escape cancels). Resolves to
 * true when confirmed. Not window.confirm: that blocks the page, and tests watch for dialogs.
 */
export function confirmDialog(title, body, confirmLabel) {
  return new Promise((resolve) => {
    const ok = el('button', { type: 'button', class: 'danger' }, confirmLabel);
    const cancel = el('button', { type: 'button' }, 'Cancel');
    const dialog = el('dialog', { 'aria-labelledby': 'confirm-title', class: 'confirm' },
      el('h2', { id: 'confirm-title' }, title), el('div', {}, body), el('p', { class: 'actions' }, ok, ' ', cancel));
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** The document as aliases.yaml text (strings JSON-quoted, which YAML reads as they are). */
export function toYaml(doc) {
  const q = (s) => JSON.stringify(String(s));
  const lines = ['aliases:'];
  for (const [name, alias] of Object.entries(doc.aliases ?? {})) {
    lines.push(`  ${q(name)}:`);
    if (alias.description) lines.push(`    description: ${q(alias.description)}`);
    lines.push('    chain:');
    for (const entry of alias.chain ?? []) {
      lines.push(entry.first_token_timeout
        ? `      - {target: ${q(entry.target)}, first_token_timeout_ms: ${Number(entry.first_token_timeout)}}`
        : `      - ${q(entry.target)}`);
    }
  }
  if (doc.default) lines.push(`default: ${q(doc.default)}`);
  const providers = Object.entries(doc.providers ?? {});
  if (providers.length) {
    lines.push('providers:');
    for (const [id, p] of providers) {
      const key = p.api_key_env ? `, api_key_env: ${q(p.api_key_env)}` : '';
      lines.push(`  ${q(id)}: {base_url: ${q(p.base_url)}${key}}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
