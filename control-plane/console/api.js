// The admin API as the console calls it: same-origin fetch with the session cookie, and the
// session's CSRF token (from the page's <meta>) on every write. The admin token itself never
// reaches this script.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
export const signedIn = document.querySelector('meta[name="console-auth"]')?.content === 'session';

/** An error answer of the admin API: `{"error": {"message", "type", "code", ...}}`. */
export class ApiError extends Error {
  constructor(status, body, path) {
    const error = body?.error ?? {};
    super(error.message ?? `HTTP ${status} from ${path}`);
    this.status = status;
    this.code = error.code ?? null;
    this.errors = error.errors ?? [];
    this.currentVersion = error.current_version ?? null;
  }
}

/** A write names the console as its actor in the audit log, and carries the CSRF token. */
function writeHeaders(headers) {
  const all = { 'X-Mana-LLM-Actor': 'console', ...headers };
  return csrf ? { ...all, 'X-CSRF-Token': csrf } : all;
}

/** Calls `/admin/v1${path}`; resolves to the JSON answer, throws an ApiError for any non-2xx. */
export async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const all = { Accept: 'application/json', ...headers };
  const response = await fetch(`/admin/v1${path}`, {
    method,
    headers: method === 'GET' ? all : writeHeaders(all),
    body,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data, path);
  return { status: response.status, data };
}

/** The content type a document's text is sent with. */
export function documentType(text) {
  return text.trimStart().startsWith('{') ? 'application/json' : 'application/yaml';
}

/** Ends the session on the server, then shows the sign-in form. */
export async function signOut() {
  await fetch('/admin/sign-out', { method: 'POST', headers: writeHeaders({}), credentials: 'same-origin' });
  window.location.assign('/admin/');
}
