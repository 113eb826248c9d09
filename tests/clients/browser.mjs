// A browser app on another origin calls mana-llm with fetch: headless Chromium (driven by
// playwright-core) loads a page from a server of its own, and the page sends Bearer-auth
// requests across origins, reads an SSE stream and the X-Mana-LLM-* headers. CORS preflights,
// allowed and exposed headers are what is under test.
import http from 'node:http';
import { chromium } from 'playwright-core';

import { base, key, run, check, eq, MIXED, FALLBACK, OLLAMA, COMPAT } from './harness.mjs';

const CHROMIUM = process.env.MANA_LLM_CHROMIUM ?? '/usr/bin/chromium';

// Runs inside the page: every call the app makes, and what it could read of each answer.
async function app({ gateway, key, mixed, fallback }) {
  const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
  const ask = (path, body, headers = auth) =>
    fetch(gateway + path, { method: 'POST', headers, body: JSON.stringify(body) });
  const headersOf = (r) => ({
    resolved: r.headers.get('x-mana-llm-resolved'),
    cache: r.headers.get('x-mana-llm-cache'),
    requestId: r.headers.get('x-request-id'),
    registryVersion: r.headers.get('x-mana-llm-registry-version'),
  });
  async function sse(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const events = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = block.split('\n').find((l) => l.startsWith('event: '))?.slice(7) ?? null;
        const data = block.split('\n').find((l) => l.startsWith('data: '))?.slice(6);
        if (data !== undefined) events.push({ event, data });
      }
    }
    return events;
  }
  const out = { origin: location.origin };

  const json = await ask('/v1/chat/completions', { model: mixed, messages: [{ role: 'user', content: 'Hi' }] });
  out.json = { status: json.status, ...headersOf(json), content: (await json.json()).choices[0].message.content };

  const stream = await ask('/v1/chat/completions', {
    model: fallback, stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Hi' }],
  });
  const chunks = await sse(stream);
  const parsed = chunks.filter((c) => c.data !== '[DONE]').map((c) => JSON.parse(c.data));
  out.stream = {
    status: stream.status,
    ...headersOf(stream),
    contentType: stream.headers.get('content-type'),
    text: parsed.map((c) => c.choices[0]?.delta?.content ?? '').join(''),
    usage: parsed.find((c) => c.usage)?.usage ?? null,
    done: chunks.at(-1)?.data === '[DONE]',
  };

  const responses = await ask('/v1/responses', { model: mixed, input: 'Hi', stream: true });
  const events = await sse(responses);
  out.responses = {
    status: responses.status,
    ...headersOf(responses),
    events: events.map((e) => e.event),
    text: events
      .filter((e) => e.event === 'response.output_text.delta')
      .map((e) => JSON.parse(e.data).delta)
      .join(''),
  };

  const anonymous = await ask('/v1/chat/completions', { model: mixed, messages: [] }, { 'Content-Type': 'application/json' });
  out.unauthorized = { status: anonymous.status, body: await anonymous.json() };
  return out;
}

const page = '<!doctype html><title>mana-llm browser check</title><p>app</p>';
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html' });
  res.end(page);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run',
  ],
});
let result;
try {
  const tab = await browser.newPage();
  const errors = [];
  tab.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await tab.goto(origin);
  result = await tab.evaluate(app, { gateway: base, key, mixed: MIXED, fallback: FALLBACK });
  result.consoleErrors = errors;
} catch (e) {
  // A blocked cross-origin call shows here as "TypeError: Failed to fetch".
  console.log(`FAILED: browser: the page's calls: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}

if (process.exitCode) process.exit();
await run('browser', [
  ['the page is on another origin', async () => {
    check(result.origin !== new URL(base).origin, `${result.origin} is the gateway's origin`);
  }],
  ['JSON with Bearer auth, X-Mana-LLM-* headers readable', async () => {
    eq(result.json.status, 200, 'status');
    eq(result.json.content, 'Hello from mock', 'content');
    eq(result.json.resolved, OLLAMA, 'x-mana-llm-resolved');
    check(['hit', 'miss', 'bypass'].includes(result.json.cache), `x-mana-llm-cache ${result.json.cache}`);
    check(result.json.requestId, 'x-request-id');
    check(result.json.registryVersion, 'x-mana-llm-registry-version');
  }],
  ['SSE read with fetch, through the fallback entry', async () => {
    eq(result.stream.status, 200, 'status');
    check(result.stream.contentType.startsWith('text/event-stream'), result.stream.contentType);
    eq(result.stream.resolved, COMPAT, 'x-mana-llm-resolved');
    eq(result.stream.text, 'Hello from mock', 'text');
    check(result.stream.usage?.total_tokens > 0, 'usage');
    check(result.stream.done, 'no [DONE]');
  }],
  ['a Responses stream', async () => {
    eq(result.responses.status, 200, 'status');
    eq(result.responses.events[0], 'response.created', 'first event');
    eq(result.responses.events.at(-1), 'response.completed', 'last event');
    eq(result.responses.text, 'Hello from mock', 'text');
    eq(result.responses.resolved, OLLAMA, 'x-mana-llm-resolved');
  }],
  ['a 401 is readable by the page', async () => {
    eq(result.unauthorized.status, 401, 'status');
    eq(result.unauthorized.body.error.code, 'invalid_api_key', 'code');
  }],
  ['no CORS errors in the console', async () => {
    eq(result.consoleErrors.filter((e) => /CORS|Access-Control/i.test(e)), [], 'console');
  }],
]);
