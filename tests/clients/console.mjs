// The admin console, driven in headless Chromium (playwright-core with the system browser)
// against a real control plane with an admin token, two workers and Redis, started by
// tests/e2e/console.rs. Each step asserts with a message saying what the admin would have
// seen; the last line is "CONSOLE OK" only if every step passed. Screenshots of each page go to
// MANA_LLM_SCREENSHOTS. No sleeps: every wait is a condition polled up to a deadline.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.MANA_LLM_CONSOLE_URL;
const TOKEN = process.env.MANA_LLM_ADMIN_TOKEN;
const SHOTS = process.env.MANA_LLM_SCREENSHOTS ?? 'target/console-screenshots';
const CHROMIUM = process.env.MANA_LLM_CHROMIUM ?? '/usr/bin/chromium';
const WAIT = 15_000;

const XSS = '<script>alert(1)</script><img src=x onerror="window.__xss=1">';
const INVALID = 'aliases:\n  mana/broken:\n    chain: []\n  mana/odd:\n    description: 7\n    chain: [echo/x]\ndefault: mana/broken\n';
const V2 = `aliases:
  mana/chain:
    description: ${JSON.stringify(XSS)}
    chain: [groq/second, openrouter/third]
  mana/echo: {chain: [echo/v1]}
default: mana/chain
`;
const CANARY = 'aliases:\n  mana/chain: {chain: [ollama/first, groq/second]}\n  mana/echo: {chain: [echo/canary]}\ndefault: mana/chain\n';

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** The admin API as a script would call it, with the bearer token (to check what the page did). */
async function api(pathname, init = {}) {
  const response = await fetch(BASE + pathname, {
    ...init,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(init.headers ?? {}) },
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: response.status, json, text };
}

async function currentVersion() {
  const r = await api('/admin/v1/registry');
  check(r.status === 200, `GET /admin/v1/registry: ${r.status} ${r.text}`);
  return r.json.version;
}

async function versionCount() {
  return (await api('/admin/v1/registry/versions?limit=500')).json.versions.length;
}

/** Polls `condition` until it holds or `ms` pass; fails with `message` (and the last value). */
async function until(message, condition, ms = WAIT) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await condition();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${message} (still false after ${ms} ms)`);
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
}

fs.mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
const dialogs = [];
const consoleErrors = [];
page.on('dialog', (d) => { dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));

const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const text = (selector) => page.locator(selector).first().innerText();
async function visit(hash, ready) {
  const url = `${BASE}/admin/${hash}`;
  // The same URL again changes nothing (no hashchange): load the page afresh instead.
  if (page.url() === url) await page.reload();
  else await page.goto(url);
  await page.locator(ready).first().waitFor({ timeout: WAIT });
}

const steps = [];
function step(name, run) { steps.push([name, run]); }

let oldCookie = null;

step('a wrong token is refused, the right one signs in (keyboard only)', async () => {
  await page.goto(`${BASE}/admin/`);
  await page.locator('input#token').waitFor({ timeout: WAIT });
  await shot('sign-in');
  await page.locator('#token').fill('not-the-token');
  await page.keyboard.press('Enter');
  await page.locator('#sign-in-error').filter({ hasText: 'not the admin token' }).waitFor({ timeout: WAIT });
  check((await context.cookies()).length === 0, 'a refused sign-in set a cookie');
  await page.locator('#token').fill(TOKEN);
  await page.keyboard.press('Enter');
  await page.locator('#aliases').waitFor({ timeout: WAIT });
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'mana_llm_admin');
  check(session, `no session cookie after sign-in: ${JSON.stringify(cookies)}`);
  check(session.httpOnly && session.sameSite === 'Strict' && session.path === '/admin', `cookie attributes: ${JSON.stringify(session)}`);
  check(!session.value.includes(TOKEN), 'the cookie carries the token');
  oldCookie = `${session.name}=${session.value}`;
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  check(!stored.includes(TOKEN), 'the token is in browser storage');
  check(!(await page.content()).includes(TOKEN), 'the token is in the page');
});

step('the overview shows the seeded aliases and their chains', async () => {
  await page.locator('tr[data-alias="mana/echo"]').waitFor({ timeout: WAIT });
  const chain = await text('tr[data-alias="mana/chain"]');
  check(chain.includes('ollama/first') && chain.includes('groq/second'), `mana/chain row: ${chain}`);
  check((await text('#default-alias')) === 'mana/chain', 'default alias');
  check((await text('#current-version')) === 'v1', 'current version');
  // Breaker states come from both workers' heartbeats.
  await until('the overview counts the ollama breaker as healthy on both workers', async () => {
    await visit('#/overview', '#aliases');
    const provider = page.locator('tr[data-provider="ollama"] td');
    return (await provider.count()) === 4 && (await provider.nth(1).innerText()) === '2';
  });
  await shot('overview');
  // Readable at phone width: the page itself never scrolls sideways (tables scroll in a box).
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than a 390px screen`);
  await shot('overview-narrow');
  await page.setViewportSize({ width: 1280, height: 860 });
});

step('an invalid document shows every error inline and creates no version', async () => {
  const before = await versionCount();
  await visit('#/push', '#document');
  await page.locator('#document').fill(INVALID);
  await page.locator('#validate').click();
  const errors = page.locator('#validation-errors');
  await errors.waitFor({ timeout: WAIT });
  const shown = await errors.innerText();
  check(shown.includes('mana/broken') && shown.includes('chain must not be empty'), `validation errors: ${shown}`);
  check(shown.includes('mana/odd') && shown.includes('description must be a string'), `the second error is missing: ${shown}`);
  await page.locator('#push').click();
  await page.locator('#push-result').filter({ hasText: 'nothing was saved' }).waitFor({ timeout: WAIT });
  await shot('push-invalid');
  check((await versionCount()) === before, 'an invalid document made a version');
});

step('a valid push appears in Versions', async () => {
  await visit('#/push', '#document');
  await page.locator('#document').fill(V2);
  await page.locator('#validate').click();
  await page.locator('#push-result .note.ok').waitFor({ timeout: WAIT });
  await page.locator('#push').click();
  await page.locator('#push-result').filter({ hasText: 'version 2' }).waitFor({ timeout: WAIT });
  await shot('push');
  check((await currentVersion()) === 2, 'the push did not make version 2');
  await visit('#/versions', 'tr[data-version="2"]');
  const row = await text('tr[data-version="2"]');
  check(row.includes('push') && row.includes('console'), `version 2 row: ${row}`);
  await shot('versions');
});

step('within seconds the fleet page shows both workers on the new version', async () => {
  await visit('#/fleet', '#fleet');
  await until('both workers on v2 on the fleet page (it refreshes by itself)', () => page.evaluate(() => {
    const rows = [...document.querySelectorAll('#fleet tr[data-worker]')];
    return rows.length === 2 && rows.every((r) => r.dataset.version === '2' && !r.classList.contains('lagging'));
  }));
  await shot('fleet');
});

step('the diff page shows the changed chain', async () => {
  await visit('#/diff', '#diff-from');
  await page.locator('#diff-from').fill('1');
  await page.locator('#diff-to').fill('2');
  await page.locator('#diff-to').press('Enter');
  const changed = page.locator('#diff tr[data-alias="mana/chain"]');
  await changed.waitFor({ timeout: WAIT });
  check(await changed.evaluate((r) => r.classList.contains('diff-changed')), 'mana/chain is not marked changed');
  check((await changed.locator('del').innerText()) === 'ollama/first', 'the removed entry is not struck out');
  check((await changed.locator('ins').innerText()) === 'openrouter/third', 'the added entry is not marked');
  check((await changed.innerText()).includes('chain'), 'the change is not named');
  const echo = await page.locator('#diff tr[data-alias="mana/echo"]').evaluate((r) => r.className);
  check(echo === 'diff-same', `mana/echo: ${echo}`);
  await shot('diff');
});

step('a <script> in a description is rendered as text', async () => {
  await visit('#/overview', 'tr[data-alias="mana/chain"]');
  const row = await text('tr[data-alias="mana/chain"]');
  check(row.includes(XSS), `the description is not shown verbatim: ${row}`);
  const injected = await page.evaluate(() => ({
    scripts: document.querySelectorAll('main script').length,
    images: document.querySelectorAll('main img').length,
    flag: window.__xss ?? null,
  }));
  check(injected.scripts === 0 && injected.images === 0 && injected.flag === null, `markup from the document ran: ${JSON.stringify(injected)}`);
  check(dialogs.length === 0, `dialogs fired: ${dialogs}`);
});

step('rollback with confirmation creates the next version', async () => {
  await visit('#/rollback?to=1', '#rollback-preview table');
  check((await page.locator('#rollback-to').inputValue()) === '1', 'version 1 is not preselected');
  await page.locator('#rollback').click();
  await page.locator('dialog.confirm').waitFor({ timeout: WAIT });
  await shot('rollback-confirm');
  await page.locator('dialog.confirm button', { hasText: 'Cancel' }).click();
  check((await currentVersion()) === 2, 'a cancelled rollback changed the registry');
  await page.locator('#rollback').click();
  await page.locator('dialog.confirm button', { hasText: 'Roll back to v1' }).click();
  await page.locator('#rollback-result').filter({ hasText: 'version 3' }).waitFor({ timeout: WAIT });
  await shot('rollback');
  const current = await api('/admin/v1/registry');
  check(current.json.version === 3 && current.json.source === 'rollback', `after rollback: ${current.text}`);
});

step('a push based on a version someone else replaced is a clear conflict', async () => {
  await visit('#/push', '#document');
  const basedOn = await currentVersion();
  // Someone else pushes while the editor is open.
  const other = await api('/admin/v1/registry', { method: 'POST', body: CANARY });
  check(other.status === 201, `the concurrent push: ${other.text}`);
  const before = await versionCount();
  await page.locator('#document').fill(V2);
  await page.locator('#push').click();
  const result = page.locator('#push-result .note.error');
  await result.waitFor({ timeout: WAIT });
  const message = await result.innerText();
  check(message.includes(`based on version ${basedOn}`) && message.includes(`version ${basedOn + 1} is now current`),
    `the conflict message: ${message}`);
  check((await versionCount()) === before, 'the conflicting push made a version');
  await shot('push-conflict');
});

step('the audit log pages and filters by kind', async () => {
  await visit('#/audit', '#audit tr[data-kind]');
  await shot('audit');
  await page.locator('#audit-kind').selectOption('RegistryRolledBack');
  await until('only rollback events after filtering', () => page.evaluate(() => {
    const kinds = [...document.querySelectorAll('#audit tr[data-kind]')].map((r) => r.dataset.kind);
    return kinds.length === 1 && kinds[0] === 'RegistryRolledBack';
  }));
});

step('a write without the CSRF token is refused', async () => {
  const before = await currentVersion();
  const answers = await page.evaluate(async (doc) => {
    const send = async (headers) => {
      const r = await fetch('/admin/v1/registry', { method: 'POST', body: doc, headers: { 'Content-Type': 'application/yaml', ...headers } });
      return { status: r.status, body: await r.json() };
    };
    return [await send({}), await send({ 'X-CSRF-Token': 'guessed' })];
  }, CANARY.replace('echo/canary', 'echo/no-csrf'));
  for (const a of answers) {
    check(a.status === 403 && a.body.error.code === 'csrf_failed', `a write without the CSRF token: ${JSON.stringify(a)}`);
  }
  check((await currentVersion()) === before, 'a write without the CSRF token changed the registry');
});

step('a canary can be started, watched and aborted', async () => {
  await visit('#/rollouts', '#canary-form');
  // CANARY itself is current by now (the conflict step pushed it).
  await page.locator('#canary-document').fill(CANARY.replace('echo/canary', 'echo/candidate'));
  await page.locator('#canary-share').fill('50%');
  await page.locator('#canary-auto').uncheck();
  await page.locator('#canary-soak').fill('300');
  await page.locator('#canary-start').click();
  await page.locator('#rollout-cohorts tr[data-cohort="candidate"]').waitFor({ timeout: WAIT });
  await until('one worker in each cohort', async () => {
    const cohorts = (await api('/admin/v1/rollout')).json?.active?.cohorts;
    return cohorts && cohorts.candidate.length === 1 && cohorts.stable.length === 1;
  });
  await page.locator('#rollout-figures').waitFor({ timeout: WAIT });
  await shot('rollouts');
  await page.locator('#rollout-abort').click();
  await page.locator('dialog.confirm button', { hasText: 'Abort' }).click();
  await page.locator('#canary-form').waitFor({ timeout: WAIT });
  const state = await api('/admin/v1/rollout');
  check(state.json.active === null && state.json.last?.outcome === 'aborted', `after abort: ${state.text}`);
});

step('the rollouts page shows a running canary as the contract describes it, and aborts it after confirmation', async () => {
  // The control plane's answers are replaced in the browser, so the page is checked against
  // the rollout contract whatever this build serves.
  const now = Math.floor(Date.now() / 1000);
  const figures = (requests, error) => ({ requests, error_ratio: error, exhausted_ratio: 0, fallback_ratio: 0.25, p99_ms: 41.5 });
  const active = {
    candidate_version: 5, stable_version: 4, share: '50%', auto: true, soak_seconds: 30,
    started_at: now - 10, soak_ends_at: now + 20,
    cohorts: {
      candidate: [{ worker_id: 'w1', registry_version: 5 }, { worker_id: 'w3', registry_version: 5 }],
      stable: [{ worker_id: 'w0', registry_version: 4 }, { worker_id: 'w2', registry_version: 4 }],
    },
    figures: { candidate: figures(200, 0.015), stable: figures(180, 0) },
    verdict: 'candidate within bounds', paused: null,
  };
  let abortedWith = null;
  const json = (route, body) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });
  await page.route('**/admin/v1/rollout', (route) => json(route, abortedWith === null
    ? { active, last: null }
    : { active: null, last: { candidate_version: 5, stable_version: 4, outcome: 'aborted', decided_by: 'admin', reason: 'aborted by console', at: now } }));
  await page.route('**/admin/v1/rollout/abort', (route) => {
    abortedWith = route.request().headers()['x-csrf-token'] ?? '';
    return json(route, { aborted: true });
  });
  try {
    await visit('#/rollouts', '#rollout-cohorts');
    const cohorts = await text('#rollout-cohorts');
    check(cohorts.includes('w1 (v5), w3 (v5)') && cohorts.includes('w0 (v4), w2 (v4)'), `cohorts: ${cohorts}`);
    const shown = await text('#rollout-figures');
    check(shown.includes('1.50 %') && shown.includes('200') && shown.includes('42 ms'), `figures: ${shown}`);
    check((await text('#rollout-verdict')) === 'candidate within bounds', 'verdict');
    await shot('rollouts-active');
    await page.locator('#rollout-abort').click();
    await page.locator('dialog.confirm button', { hasText: 'Cancel' }).click();
    check(abortedWith === null, 'a cancelled abort was sent');
    await page.locator('#rollout-abort').click();
    await page.locator('dialog.confirm button', { hasText: 'Abort' }).click();
    await page.locator('#rollout-view').filter({ hasText: 'v5 aborted' }).waitFor({ timeout: WAIT });
    check(abortedWith?.length === 64, `the abort was sent without the CSRF token: ${abortedWith}`);
  } finally {
    await page.unrouteAll();
  }
});

step('sign-out ends the session', async () => {
  await visit('#/overview', '#aliases');
  await page.locator('#sign-out').click();
  await page.locator('input#token').waitFor({ timeout: WAIT });
  const replay = await fetch(`${BASE}/admin/v1/registry`, { headers: { Cookie: oldCookie } });
  check(replay.status === 401, `the old session cookie still works: ${replay.status}`);
});

step('no policy violations or script errors on any page', async () => {
  // The API's refusals the steps provoked on purpose (400 invalid, 401 signed out, 403 CSRF, 409 conflicts)
  // are logged by Chromium as failed loads; anything else — a policy violation above all — is not.
  const bad = consoleErrors.filter((e) => !/^Failed to load resource: the server responded with a status of (400|401|403|409)/.test(e));
  check(!consoleErrors.some((e) => /Content Security Policy/i.test(e)), `policy violations: ${consoleErrors.join(' | ')}`);
  check(bad.length === 0, `console errors: ${bad.join(' | ')}`);
  check(dialogs.length === 0, `dialogs fired: ${dialogs}`);
});

let failed = false;
for (const [name, run] of steps) {
  try {
    await run();
    console.log(`ok: ${name}`);
  } catch (error) {
    failed = true;
    console.log(`FAILED: ${name}: ${error?.stack ?? error}`);
    await shot(`failed-${steps.findIndex(([n]) => n === name)}`).catch(() => {});
    break;
  }
}
await browser.close();
if (failed) {
  process.exitCode = 1;
} else {
  console.log('CONSOLE OK');
}
