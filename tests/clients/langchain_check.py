"""LangChain (langchain-openai) against mana-llm: invoke, stream, with_structured_output,
bind_tools (a whole tool round, streamed and not) and OpenAIEmbeddings with its default
token-id input.

Run by tests/e2e/clients.rs with MANA_LLM_URL and MANA_LLM_KEY set; prints one line per check
and "CLIENT OK langchain <n> checks" last, or "FAILED: …" and exits 1.
"""

import json
import os
import sys
import traceback

import tiktoken
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

BASE = os.environ["MANA_LLM_URL"] + "/v1"
KEY = os.environ["MANA_LLM_KEY"]

# The aliases tests/e2e/clients.rs serves: an Ollama-native entry first, an OpenAI-compatible
# one second, both played by the mock.
MIXED, FALLBACK = "mana/mixed", "mana/fallback"
TOOLS, TOOLS_FALLBACK = "mana/tools", "mana/tools-fallback"
JSON_MODEL, EMBED = "mana/json", "mana/embed"
OLLAMA, COMPAT = "ollama/qwen2.5:7b", "openai/mock-model"

# OpenAIEmbeddings splits texts into token ids with tiktoken, whose vocabularies are downloaded
# on first use, and this machine reaches no such host. A byte-level encoding built here keeps
# the client's real code path (token-id input, chunking, re-assembly); only the vocabulary is
# ours.
BYTES = tiktoken.Encoding(
    name="mana-test-bytes",
    pat_str=r"\S+|\s+",
    mergeable_ranks={bytes([i]): i for i in range(256)},
    special_tokens={},
)
tiktoken.encoding_for_model = lambda _model: BYTES
tiktoken.get_encoding = lambda _name: BYTES


def chat(model, **kwargs):
    return ChatOpenAI(model=model, base_url=BASE, api_key=KEY, max_retries=0, timeout=20, **kwargs)


class Weather(BaseModel):
    city: str
    temperature: float


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return json.dumps({"city": city, "temperature": 21})


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def invoke():
    for model, resolved in [(MIXED, OLLAMA), (FALLBACK, COMPAT)]:
        reply = chat(model).invoke("Hello")
        check(reply.content == "Hello from mock", f"{model}: {reply.content!r}")
        check(reply.response_metadata.get("model_name") == resolved, f"{model}: {reply.response_metadata}")
        check(reply.usage_metadata and reply.usage_metadata["input_tokens"] > 0, f"{model}: usage {reply.usage_metadata}")


def stream():
    for model in [MIXED, FALLBACK]:
        chunks = list(chat(model, stream_usage=True).stream("Hello"))
        text = "".join(c.content for c in chunks)
        check(text == "Hello from mock", f"{model}: {text!r}")
        total = None
        for c in chunks:
            total = c if total is None else total + c
        check(total.usage_metadata and total.usage_metadata["output_tokens"] > 0, f"{model}: usage {total.usage_metadata}")


def structured_output():
    weather = chat(JSON_MODEL).with_structured_output(Weather).invoke("Weather in Berlin?")
    check(weather == Weather(city="Berlin", temperature=21), f"{weather!r}")


def bind_tools():
    for model, streamed in [(TOOLS, False), (TOOLS_FALLBACK, True)]:
        llm = chat(model).bind_tools([get_weather])
        question = HumanMessage("Weather in Berlin?")
        if streamed:
            reply = None
            for chunk in llm.stream([question]):
                reply = chunk if reply is None else reply + chunk
        else:
            reply = llm.invoke([question])
        calls = reply.tool_calls
        check(len(calls) == 1, f"{model}: calls {calls}")
        check(calls[0]["name"] == "get_weather", f"{model}: {calls}")
        check(calls[0]["args"] == {"city": "Berlin"}, f"{model}: {calls}")
        result = get_weather.invoke(calls[0]["args"])
        answer = llm.invoke([question, reply, ToolMessage(result, tool_call_id=calls[0]["id"])])
        check(answer.content == "Sunny in Berlin", f"{model}: {answer.content!r}")


def embeddings():
    emb = OpenAIEmbeddings(model=EMBED, base_url=BASE, api_key=KEY, max_retries=0)
    texts = ["first", "second text"]
    vectors = emb.embed_documents(texts)
    check(len(vectors) == 2 and all(len(v) == 3 for v in vectors), f"{vectors}")
    # The mock embeds what it was sent; for token ids that is their JSON text, so the first
    # number proves the ids reached an entry that takes them (the Ollama one cannot).
    for text, vector in zip(texts, vectors):
        sent = json.dumps(BYTES.encode(text), separators=(",", ":"))
        check(abs(vector[0] - len(sent)) < 1e-6, f"{text!r}: {vector} for {sent}")
    query = emb.embed_query("first")
    check(query == vectors[0], f"{query} != {vectors[0]}")


def main():
    checks = [
        ("invoke through both entries", invoke),
        ("stream with usage", stream),
        ("with_structured_output (json_schema)", structured_output),
        ("bind_tools, a whole tool round, streamed and not", bind_tools),
        ("OpenAIEmbeddings with token-id input", embeddings),
    ]
    for label, fn in checks:
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported the same way
            print(f"FAILED: langchain: {label}: {traceback.format_exc()}")
            sys.exit(1)
        print(f"ok {label}")
    print(f"CLIENT OK langchain {len(checks)} checks")


if __name__ == "__main__":
    main()
