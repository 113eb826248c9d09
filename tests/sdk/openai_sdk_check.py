"""Drives mana-llm with the official OpenAI Python SDK.

Usage: openai_sdk_check.py BASE_URL MODEL [MODEL ...]
For each model: chat (JSON and streamed with usage), embeddings (list input, floats), and a
model lookup; then the model list and an error. Exits non-zero with a message on any failure.
"""

import sys

try:
    import openai
except ImportError:
    sys.exit("the openai package is not installed: run scripts/test (it creates the virtualenv)")


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


def main():
    base_url, models = sys.argv[1], sys.argv[2:]
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=20)

    for model in models:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello SDK"}]
        )
        check(reply.model == model, f"{model}: response model {reply.model}")
        check(bool(reply.choices[0].message.content), f"{model}: empty content")

        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Hello SDK"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage
        check(bool(text), f"{model}: empty stream")
        check(usage is not None and usage.total_tokens > 0, f"{model}: no usage in stream")

        emb = client.embeddings.create(model=model, input=["first", "second"])
        check(len(emb.data) == 2, f"{model}: {len(emb.data)} embeddings")
        check(all(isinstance(x, float) for x in emb.data[0].embedding), f"{model}: not floats")

    listed = [m.id for m in client.models.list()]
    check("echo/echo" in listed, f"echo/echo not in {listed}")
    check(client.models.retrieve("echo/echo").id == "echo/echo", "retrieve echo/echo")

    try:
        client.chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "x"}])
        check(False, "unknown provider did not fail")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"status {e.status_code}")
    try:
        client.chat.completions.create(model="echo/x", messages=[])
        check(False, "empty messages did not fail")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"status {e.status_code}")

    print(f"SDK OK {len(models)} models")


if __name__ == "__main__":
    main()
