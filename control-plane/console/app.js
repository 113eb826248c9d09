// The console's router: one page per location hash (#/overview, #/versions/3, #/diff?from=1&to=2,
// …). Each page fills a fresh <section>; a page that refreshes by itself registers a cleanup
// that runs when the admin navigates away, and a slow answer for a page already left lands in
// a detached section instead of over the new page.

import { signedIn, signOut } from './api.js';
import { el, fill, note } from './dom.js';
import overview from './overview.js';
import { versions, version, diff } from './versions.js';
import push from './push.js';
import rollback from './rollback.js';
import fleet from './fleet.js';
import rollouts from './rollouts.js';
import audit from './audit.js';

const pages = { overview, versions, version, diff, push, rollback, fleet, rollouts, audit };
const titles = {
  overview: 'Overview', versions: 'Versions', version: 'Version', diff: 'Diff', push: 'Push',
  rollback: 'Rollback', fleet: 'Fleet', rollouts: 'Rollouts', audit: 'Audit',
};

const main = document.getElementById('main');
let leave = [];

function route() {
  const [path, query = ''] = window.location.hash.replace(/^#\/?/, '').split('?');
  const [first = '', arg] = path.split('/');
  let name = first || 'overview';
  if (name === 'versions' && arg) name = 'version';
  return { name, arg, query: new URLSearchParams(query) };
}

/** What a failed page shows: the API's message, and a way back in when the session ended. */
export function failure(error) {
  if (error?.status === 401) {
    return note('error', 'Your session has ended. ', el('a', { href: '/admin/' }, 'Sign in again'), '.');
  }
  return note('error', error?.message ?? String(error));
}

async function render() {
  for (const cleanup of leave) cleanup();
  leave = [];
  const r = route();
  const page = pages[r.name];
  for (const link of document.querySelectorAll('nav a')) {
    const current = link.getAttribute('href') === `#/${r.name === 'version' || r.name === 'diff' ? 'versions' : r.name}`;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const section = el('section', { 'data-page': r.name });
  fill(main, section);
  document.title = `${titles[r.name] ?? 'Not found'} · mana-llm admin`;
  if (!page) {
    fill(section, el('h1', {}, 'Not found'), note('error', 'No such console page.'));
    return;
  }
  const context = { route: r, onLeave: (fn) => leave.push(fn), go: (hash) => { window.location.hash = hash; } };
  try {
    await page(section, context);
  } catch (error) {
    section.append(failure(error));
  }
}

const signOutButton = document.getElementById('sign-out');
if (signedIn) {
  signOutButton.hidden = false;
  signOutButton.addEventListener('click', () => { signOut(); });
}
window.addEventListener('hashchange', render);
render();
