// The Vercel AI SDK against mana-llm, through both providers: `@ai-sdk/openai` with its
// defaults (`openai(id)` speaks the Responses API) and `@ai-sdk/openai-compatible` (chat
// completions): generateText, streamText, generateObject/streamObject with zod, tools over
// several steps (stopWhen), embed and embedMany.
import {
  Output, embed, embedMany, generateObject, generateText, stepCountIs, streamObject, streamText, tool,
} from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';

import {
  base, key, run, check, eq, MIXED, FALLBACK, TOOLS, TOOLS_FALLBACK, JSON_MODEL, EMBED,
  OLLAMA, COMPAT, OLLAMA_TOOLS, COMPAT_TOOLS,
} from './harness.mjs';

const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: key });
const compatible = createOpenAICompatible({
  name: 'mana', baseURL: `${base}/v1`, apiKey: key, includeUsage: true,
  // mana-llm passes response_format json_schema to every provider (Ollama: `format`).
  supportsStructuredOutputs: true,
});
const providers = [
  ['@ai-sdk/openai (Responses API)', (id) => openai(id)],
  ['@ai-sdk/openai-compatible', (id) => compatible.chatModel(id)],
];
const Weather = z.object({ city: z.string(), temperature: z.number() });
const getWeather = tool({
  description: 'Weather for a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, temperature: 21 }),
});

const checks = [];
for (const [name, model] of providers) {
  checks.push(
    [`${name}: generateText through both entries`, async () => {
      for (const [alias, resolved] of [[MIXED, OLLAMA], [FALLBACK, COMPAT]]) {
        const r = await generateText({ model: model(alias), prompt: 'Hello', maxRetries: 0 });
        eq(r.text, 'Hello from mock', `${alias} text`);
        eq(r.response.modelId, resolved, `${alias} model`);
        check(r.usage.inputTokens > 0 && r.usage.outputTokens > 0, `${alias} usage ${JSON.stringify(r.usage)}`);
        eq(r.response.headers['x-mana-llm-resolved'], resolved, `${alias} header`);
      }
    }],
    [`${name}: streamText`, async () => {
      for (const [alias, resolved] of [[MIXED, OLLAMA], [FALLBACK, COMPAT]]) {
        const r = streamText({ model: model(alias), prompt: 'Hello', maxRetries: 0 });
        let text = '';
        for await (const piece of r.textStream) text += piece;
        eq(text, 'Hello from mock', `${alias} text`);
        eq((await r.response).modelId, resolved, `${alias} model`);
        check((await r.usage).outputTokens > 0, `${alias} usage`);
        eq(await r.finishReason, 'stop', `${alias} finish`);
      }
    }],
    [`${name}: generateObject and streamObject with zod`, async () => {
      const r = await generateObject({ model: model(JSON_MODEL), schema: Weather, prompt: 'Weather?', maxRetries: 0 });
      eq(r.object, { city: 'Berlin', temperature: 21 }, 'object');
      const s = streamObject({ model: model(JSON_MODEL), schema: Weather, prompt: 'Weather?', maxRetries: 0 });
      let partials = 0;
      for await (const _ of s.partialObjectStream) partials += 1;
      check(partials >= 1, 'no partial objects');
      eq(await s.object, { city: 'Berlin', temperature: 21 }, 'streamed object');
      const t = await generateText({
        model: model(JSON_MODEL), output: Output.object({ schema: Weather }), prompt: 'Weather?', maxRetries: 0,
      });
      eq(t.output, { city: 'Berlin', temperature: 21 }, 'generateText output');
    }],
    [`${name}: tools over several steps (stopWhen)`, async () => {
      for (const [alias, resolved] of [[TOOLS, OLLAMA_TOOLS], [TOOLS_FALLBACK, COMPAT_TOOLS]]) {
        const r = await generateText({
          model: model(alias), prompt: 'Weather in Berlin?', tools: { get_weather: getWeather },
          stopWhen: stepCountIs(4), maxRetries: 0,
        });
        eq(r.steps.length, 2, `${alias} steps`);
        eq(r.steps[0].toolCalls.map((c) => [c.toolName, c.input]), [['get_weather', { city: 'Berlin' }]], `${alias} call`);
        eq(r.steps[0].toolResults[0].output, { city: 'Berlin', temperature: 21 }, `${alias} result`);
        eq(r.text, 'Sunny in Berlin', `${alias} final text`);
        eq(r.response.modelId, resolved, `${alias} model`);
      }
    }],
    [`${name}: streamed tools over several steps`, async () => {
      const r = streamText({
        model: model(TOOLS_FALLBACK), prompt: 'Weather in Berlin?', tools: { get_weather: getWeather },
        stopWhen: stepCountIs(4), maxRetries: 0,
      });
      let text = '';
      for await (const piece of r.textStream) text += piece;
      eq(text, 'Sunny in Berlin', 'final text');
      const steps = await r.steps;
      eq(steps.length, 2, 'steps');
      eq(steps[0].toolCalls[0].input, { city: 'Berlin' }, 'streamed call');
    }],
  );
}
checks.push(
  ['@ai-sdk/openai: embed and embedMany', async () => {
    const one = await embed({ model: openai.embeddingModel(EMBED), value: 'first', maxRetries: 0 });
    eq(one.embedding, [5, 0.5, -0.25], 'embedding');
    const many = await embedMany({ model: openai.embeddingModel(EMBED), values: ['first', 'second!'], maxRetries: 0 });
    eq(many.embeddings.map((e) => e[0]), [5, 7], 'embeddings');
  }],
  ['@ai-sdk/openai-compatible: embed and embedMany', async () => {
    const one = await embed({ model: compatible.embeddingModel(EMBED), value: 'first', maxRetries: 0 });
    eq(one.embedding, [5, 0.5, -0.25], 'embedding');
    const many = await embedMany({ model: compatible.embeddingModel(EMBED), values: ['a', 'bb', 'ccc'], maxRetries: 0 });
    eq(many.embeddings.map((e) => e[0]), [1, 2, 3], 'embeddings');
  }],
);

await run('ai-sdk', checks);
