// The OpenAI Node SDK against mana-llm: chat (JSON, streamed with usage, tools both ways,
// parse with zod), embeddings in its default base64 mode, models, error classes, headers
// through withResponse(), abort mid-stream, and the Responses API (JSON, stream, tools, parse).
import OpenAI from 'openai';
import { zodResponseFormat, zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';

import {
  base, key, run, check, eq, MIXED, FALLBACK, TOOLS, TOOLS_FALLBACK, JSON_MODEL, EMBED, SLOW,
  OLLAMA, COMPAT, OLLAMA_TOOLS, COMPAT_TOOLS,
} from './harness.mjs';

const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
const hello = [{ role: 'user', content: 'Hello SDK' }];
const Weather = z.object({ city: z.string(), temperature: z.number() });

async function streamed(model, extra = {}) {
  const stream = await client.chat.completions.create({
    model, messages: hello, stream: true, stream_options: { include_usage: true }, ...extra,
  });
  let text = '';
  let usage = null;
  const models = new Set();
  const calls = [];
  for await (const chunk of stream) {
    models.add(chunk.model);
    if (chunk.usage) usage = chunk.usage;
    const delta = chunk.choices[0]?.delta;
    text += delta?.content ?? '';
    for (const call of delta?.tool_calls ?? []) {
      calls[call.index] ??= { name: '', arguments: '' };
      calls[call.index].name += call.function?.name ?? '';
      calls[call.index].arguments += call.function?.arguments ?? '';
    }
  }
  return { text, usage, models: [...models], calls };
}

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

await run('openai-node', [
  ['chat JSON through the Ollama entry', async () => {
    const r = await client.chat.completions.create({ model: MIXED, messages: hello });
    eq(r.model, OLLAMA, 'model');
    eq(r.choices[0].message.content, 'Hello from mock', 'content');
    check(r.usage.total_tokens > 0, 'usage');
  }],
  ['chat JSON falls back to the OpenAI-compatible entry', async () => {
    const r = await client.chat.completions.create({ model: FALLBACK, messages: hello });
    eq(r.model, COMPAT, 'model');
    eq(r.choices[0].message.content, 'Hello from mock', 'content');
  }],
  ['chat stream with usage, both entries', async () => {
    for (const [model, resolved] of [[MIXED, OLLAMA], [FALLBACK, COMPAT]]) {
      const s = await streamed(model);
      eq(s.text, 'Hello from mock', `${model} text`);
      eq(s.models, [resolved], `${model} chunk models`);
      check(s.usage?.total_tokens > 0, `${model}: no usage chunk`);
    }
  }],
  ['tools, not streamed', async () => {
    const r = await client.chat.completions.create({
      model: TOOLS, messages: [{ role: 'user', content: 'Weather in Berlin?' }], tools: [weatherTool],
    });
    eq(r.model, OLLAMA_TOOLS, 'model');
    const call = r.choices[0].message.tool_calls[0];
    eq(call.function.name, 'get_weather', 'tool');
    eq(JSON.parse(call.function.arguments), { city: 'Berlin' }, 'arguments');
    eq(r.choices[0].finish_reason, 'tool_calls', 'finish_reason');
  }],
  ['tools, streamed, through both entries', async () => {
    for (const [model, resolved] of [[TOOLS, OLLAMA_TOOLS], [TOOLS_FALLBACK, COMPAT_TOOLS]]) {
      const s = await streamed(model, { tools: [weatherTool] });
      eq(s.models, [resolved], `${model} chunk models`);
      eq(s.calls.length, 1, `${model} calls`);
      eq(s.calls[0].name, 'get_weather', `${model} tool`);
      eq(JSON.parse(s.calls[0].arguments), { city: 'Berlin' }, `${model} arguments`);
    }
  }],
  ['chat.completions.parse with a zod schema', async () => {
    const r = await client.chat.completions.parse({
      model: JSON_MODEL, messages: [{ role: 'user', content: 'Weather?' }],
      response_format: zodResponseFormat(Weather, 'weather'),
    });
    eq(r.choices[0].message.parsed, { city: 'Berlin', temperature: 21 }, 'parsed');
  }],
  ['embeddings in the default base64 mode', async () => {
    const r = await client.embeddings.create({ model: EMBED, input: ['first', 'second!'] });
    eq(r.data.length, 2, 'count');
    // The mock embeds a text as [its length, 0.5, -0.25]: decoded from base64 floats.
    eq(r.data[0].embedding, [5, 0.5, -0.25], 'first vector');
    eq(r.data[1].embedding[0], 7, 'second vector');
  }],
  ['models list has the aliases', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    for (const alias of [MIXED, FALLBACK, EMBED]) check(ids.includes(alias), `${alias} not in ${ids}`);
  }],
  ['error classes', async () => {
    const expect = async (cls, fn, status) => {
      try {
        await fn();
      } catch (e) {
        check(e instanceof cls, `${e?.constructor?.name} is not ${cls.name}: ${e}`);
        eq(e.status, status, 'status');
        check(typeof e.error?.message === 'string' || typeof e.message === 'string', 'message');
        return;
      }
      throw new Error(`no ${cls.name}`);
    };
    await expect(OpenAI.NotFoundError, () => client.chat.completions.create({ model: 'nope/x', messages: hello }), 404);
    await expect(OpenAI.BadRequestError, () => client.chat.completions.create({ model: MIXED, messages: [] }), 400);
    const stranger = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
    await expect(OpenAI.AuthenticationError, () => stranger.models.list(), 401);
    await expect(OpenAI.BadRequestError, () => client.responses.create({ model: MIXED, input: 'x', store: true }), 400);
  }],
  ['withResponse() headers', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: MIXED, messages: hello })
      .withResponse();
    eq(data.model, OLLAMA, 'model');
    eq(response.headers.get('x-mana-llm-resolved'), OLLAMA, 'x-mana-llm-resolved');
    check(response.headers.get('x-request-id'), 'x-request-id');
    check(['hit', 'miss', 'bypass'].includes(response.headers.get('x-mana-llm-cache')), 'x-mana-llm-cache');
  }],
  ['abort mid-stream', async () => {
    const stream = await client.chat.completions.create({ model: SLOW, messages: hello, stream: true });
    let chunks = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) chunks += 1;
      if (chunks === 2) {
        stream.controller.abort();
        break;
      }
    }
    eq(chunks, 2, 'content chunks before the abort');
    // The Rust side checks that the mock saw its stream closed early.
    console.log('aborted after 2 chunks');
  }],
  ['responses.create JSON', async () => {
    const r = await client.responses.create({ model: MIXED, input: 'Hello', instructions: 'Be brief' });
    eq(r.object, 'response', 'object');
    eq(r.status, 'completed', 'status');
    eq(r.model, OLLAMA, 'model');
    eq(r.output_text, 'Hello from mock', 'output_text');
    check(r.usage.input_tokens > 0 && r.usage.total_tokens > 0, 'usage');
  }],
  ['responses.create stream', async () => {
    const stream = await client.responses.create({ model: FALLBACK, input: 'Hello', stream: true });
    const types = [];
    let text = '';
    let last = -1;
    let completed = null;
    for await (const event of stream) {
      types.push(event.type);
      check(event.sequence_number === last + 1, `sequence ${event.sequence_number} after ${last}`);
      last = event.sequence_number;
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    eq(types[0], 'response.created', 'first event');
    eq(types.at(-1), 'response.completed', 'last event');
    eq(text, 'Hello from mock', 'text');
    eq(completed.model, COMPAT, 'model');
    check(completed.usage.output_tokens > 0, 'usage');
  }],
  ['responses with a function tool', async () => {
    const r = await client.responses.create({
      model: TOOLS, input: 'Weather in Berlin?',
      tools: [{ type: 'function', name: 'get_weather', parameters: weatherTool.function.parameters, strict: false }],
    });
    const call = r.output.find((o) => o.type === 'function_call');
    check(call, `no function_call in ${JSON.stringify(r.output)}`);
    eq(call.name, 'get_weather', 'name');
    eq(JSON.parse(call.arguments), { city: 'Berlin' }, 'arguments');
    const next = await client.responses.create({
      model: TOOLS,
      input: [
        { role: 'user', content: 'Weather in Berlin?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: '{"temperature":21}' },
      ],
    });
    eq(next.output_text, 'Sunny in Berlin', 'answer after the tool result');
  }],
  ['responses.parse with a zod text format', async () => {
    const r = await client.responses.parse({
      model: JSON_MODEL, input: 'Weather?', text: { format: zodTextFormat(Weather, 'weather') },
    });
    eq(r.output_parsed, { city: 'Berlin', temperature: 21 }, 'output_parsed');
  }],
]);
