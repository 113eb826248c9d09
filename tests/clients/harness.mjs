// What every Node client check shares: where the gateway is, and how a check reports.
// The Rust side (tests/e2e/clients.rs) starts the gateway and the mock, runs each script with
// a deadline, and reads the last line: "CLIENT OK <name> <n> checks", or "FAILED: …".

export const base = process.env.MANA_LLM_URL;
export const key = process.env.MANA_LLM_KEY;
if (!base || !key) {
  console.error('FAILED: MANA_LLM_URL and MANA_LLM_KEY must be set (tests/e2e/clients.rs sets them)');
  process.exit(2);
}

// The aliases the gateway serves (tests/e2e/clients.rs): Ollama-native first, OpenAI-compatible
// second, both played by the mock.
export const MIXED = 'mana/mixed'; // answered by the Ollama entry
export const FALLBACK = 'mana/fallback'; // the Ollama entry fails: the OpenAI-compatible one answers
export const TOOLS = 'mana/tools'; // calls get_weather, then answers "Sunny in Berlin"
export const TOOLS_FALLBACK = 'mana/tools-fallback';
export const JSON_MODEL = 'mana/json'; // answers {"city":"Berlin","temperature":21}
export const EMBED = 'mana/embed';
export const SLOW = 'mana/slow'; // a long, slow stream
// What each alias resolves to, as `model` and X-Mana-LLM-Resolved report it.
export const OLLAMA = 'ollama/qwen2.5:7b';
export const COMPAT = 'openai/mock-model';
export const OLLAMA_TOOLS = 'ollama/qwen2.5-calls-get_weather';
export const COMPAT_TOOLS = 'openai/calls-get_weather';

let checks = 0;

export function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

export function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

/** Runs the named checks in order; prints one line each, and the verdict last. */
export async function run(name, list) {
  for (const [label, fn] of list) {
    try {
      await fn();
      checks += 1;
      console.log(`ok ${label}`);
    } catch (e) {
      console.log(`FAILED: ${name}: ${label}: ${e?.stack ?? e}`);
      process.exit(1);
    }
  }
  console.log(`CLIENT OK ${name} ${checks} checks`);
}
