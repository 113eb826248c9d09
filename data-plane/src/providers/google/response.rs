//! Gemini `GenerateContentResponse`s → OpenAI completions and stream chunks.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::openai::{
    completion_id, tool_call_id, unix_now, AssistantMessage, ChatChunk, ChatCompletion, Choice,
    Delta, FunctionCall, ToolCall, ToolCallDelta, Usage,
};
use crate::providers::UpstreamError;

/// Finish reasons meaning Gemini withheld (the rest of) the answer.
const BLOCK_REASONS: [&str; 6] = [
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "SPII",
    "BLOCKLIST",
    "IMAGE_SAFETY",
];

/// One `generateContent` answer, or one event of `streamGenerateContent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    /// Gemini can report a failure inside a 2xx body, mid-stream in particular.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    safety_ratings: Vec<SafetyRating>,
}

#[derive(Debug, Default, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    /// Thought summaries: never part of the answer.
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<GeminiCall>,
}

#[derive(Debug, Default, Deserialize)]
struct GeminiCall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SafetyRating {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    blocked: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking tokens are billed as output, so they count as completion tokens.
    fn usage(&self) -> Usage {
        let completion = self.candidates_token_count + self.thoughts_token_count;
        Usage {
            prompt_tokens: self.prompt_token_count,
            completion_tokens: completion,
            total_tokens: self
                .total_token_count
                .unwrap_or(self.prompt_token_count + completion),
        }
    }
}

impl GenerateResponse {
    /// The in-band error, or the prompt block when no candidate came.
    fn failure(&self) -> Option<UpstreamError> {
        if let Some(error) = &self.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Some(UpstreamError::Protocol(format!(
                "Gemini reported an error: {message}"
            )));
        }
        let reason = self
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref());
        match reason {
            Some(reason) if self.candidates.is_empty() => Some(UpstreamError::Blocked {
                reason: format!("prompt blocked: {reason}"),
            }),
            _ => None,
        }
    }
}

impl Candidate {
    fn answer_parts(&self) -> impl Iterator<Item = &Part> {
        self.content
            .iter()
            .flat_map(|c| c.parts.iter())
            .filter(|p| !p.thought)
    }

    /// The OpenAI finish reason, or why there is no answer. `has_text` / `has_calls`: what
    /// this candidate produced (in a stream: so far).
    fn finish(&self, has_text: bool, has_calls: bool) -> Result<&'static str, UpstreamError> {
        let answered = if has_calls { "tool_calls" } else { "stop" };
        let reason = self.finish_reason.as_deref().unwrap_or("STOP");
        match reason {
            "STOP" | "FINISH_REASON_UNSPECIFIED" => Ok(answered),
            "MAX_TOKENS" => Ok("length"),
            r if BLOCK_REASONS.contains(&r) => {
                if has_text || has_calls {
                    return Ok("content_filter");
                }
                let categories: Vec<&str> = self
                    .safety_ratings
                    .iter()
                    .filter(|r| r.blocked)
                    .filter_map(|r| r.category.as_deref())
                    .collect();
                let reason = if categories.is_empty() {
                    r.to_owned()
                } else {
                    format!("{r}: {}", categories.join(", "))
                };
                Err(UpstreamError::Blocked { reason })
            }
            _ if has_text || has_calls => Ok(answered),
            other => Err(UpstreamError::Protocol(format!(
                "Gemini returned no content (finishReason={other})"
            ))),
        }
    }
}

fn tool_call(call: &GeminiCall) -> ToolCall {
    let arguments = match &call.args {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(args) => args.to_string(),
    };
    ToolCall {
        id: tool_call_id(),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: call.name.clone(),
            arguments,
        },
        extra: Map::new(),
    }
}

/// A whole `generateContent` answer as a completion (`model` left for the caller).
pub fn completion(response: GenerateResponse) -> Result<ChatCompletion, UpstreamError> {
    if let Some(failure) = response.failure() {
        return Err(failure);
    }
    if response.candidates.is_empty() {
        return Err(UpstreamError::Protocol(
            "Gemini returned no candidates".to_owned(),
        ));
    }
    let choices = response
        .candidates
        .iter()
        .zip(0u32..)
        .map(|(candidate, position)| {
            let mut text = String::new();
            let mut calls = Vec::new();
            for part in candidate.answer_parts() {
                if let Some(t) = &part.text {
                    text.push_str(t);
                }
                if let Some(call) = &part.function_call {
                    calls.push(tool_call(call));
                }
            }
            let finish = candidate.finish(!text.is_empty(), !calls.is_empty())?;
            let content = if text.is_empty() && !calls.is_empty() {
                None
            } else {
                Some(text)
            };
            let tool_calls = Some(calls).filter(|c| !c.is_empty());
            Ok(Choice {
                index: candidate.index.unwrap_or(position),
                message: AssistantMessage::new(content, tool_calls),
                finish_reason: Some(finish.to_owned()),
                extra: Map::new(),
            })
        })
        .collect::<Result<Vec<_>, UpstreamError>>()?;
    Ok(ChatCompletion {
        id: completion_id(),
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: String::new(),
        choices,
        usage: response.usage_metadata.as_ref().map(UsageMetadata::usage),
        extra: Map::new(),
    })
}

/// What a stream has sent so far for one candidate.
#[derive(Debug, Default)]
struct CandidateState {
    started: bool,
    has_text: bool,
    tool_calls: u32,
    finished: bool,
}

/// Turns the events of one `streamGenerateContent` call into chunks of one completion.
#[derive(Debug)]
pub struct StreamState {
    id: String,
    created: u64,
    include_usage: bool,
    payloads: usize,
    candidates: BTreeMap<u32, CandidateState>,
    usage: Option<Usage>,
}

impl StreamState {
    pub fn new(include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            created: unix_now(),
            include_usage,
            payloads: 0,
            candidates: BTreeMap::new(),
            usage: None,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> ChatChunk {
        let mut chunk = ChatChunk::with_delta(&self.id, self.created, delta, finish);
        for choice in &mut chunk.choices {
            choice.index = index;
        }
        chunk
    }

    /// The chunks for one SSE `data` payload. An error ends the stream.
    pub fn payload(&mut self, data: &str) -> Result<Vec<ChatChunk>, UpstreamError> {
        if data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let response: GenerateResponse = serde_json::from_str(data)
            .map_err(|e| UpstreamError::Protocol(format!("invalid stream payload: {e}")))?;
        self.payloads += 1;
        if let Some(failure) = response.failure() {
            return Err(failure);
        }
        if let Some(usage) = &response.usage_metadata {
            self.usage = Some(usage.usage());
        }
        let mut out = Vec::new();
        for (candidate, position) in response.candidates.iter().zip(0u32..) {
            let index = candidate.index.unwrap_or(position);
            let mut state = self.candidates.remove(&index).unwrap_or_default();
            let result = self.candidate(index, candidate, &mut state, &mut out);
            self.candidates.insert(index, state);
            result?;
        }
        Ok(out)
    }

    fn candidate(
        &self,
        index: u32,
        candidate: &Candidate,
        state: &mut CandidateState,
        out: &mut Vec<ChatChunk>,
    ) -> Result<(), UpstreamError> {
        if state.finished {
            return Ok(());
        }
        // The role goes out with the first real chunk, so a stream that is blocked before
        // saying anything ends in an error rather than an empty answer.
        let start = |state: &mut CandidateState, out: &mut Vec<ChatChunk>| {
            if !state.started {
                state.started = true;
                out.push(self.chunk(index, Delta::role(), None));
            }
        };
        for part in candidate.answer_parts() {
            if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                start(state, out);
                state.has_text = true;
                out.push(self.chunk(index, Delta::content(text), None));
            }
            if let Some(call) = &part.function_call {
                start(state, out);
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta::complete(
                        state.tool_calls,
                        &tool_call(call),
                    )]),
                    ..Delta::default()
                };
                state.tool_calls += 1;
                out.push(self.chunk(index, delta, None));
            }
        }
        if candidate.finish_reason.is_some() {
            let finish = candidate.finish(state.has_text, state.tool_calls > 0)?;
            start(state, out);
            state.finished = true;
            out.push(self.chunk(index, Delta::default(), Some(finish)));
        }
        Ok(())
    }

    /// The chunks after the last payload: finish chunks Gemini left out, then usage.
    pub fn end(&mut self) -> Result<Vec<ChatChunk>, UpstreamError> {
        if self.payloads == 0 {
            return Err(UpstreamError::Protocol("empty stream".to_owned()));
        }
        if !self.candidates.values().any(|c| c.started) {
            return Err(UpstreamError::Protocol(
                "Gemini stream ended without content".to_owned(),
            ));
        }
        let mut out: Vec<ChatChunk> = self
            .candidates
            .iter()
            .filter(|(_, c)| c.started && !c.finished)
            .map(|(index, c)| {
                let finish = if c.tool_calls > 0 {
                    "tool_calls"
                } else {
                    "stop"
                };
                self.chunk(*index, Delta::default(), Some(finish))
            })
            .collect();
        for state in self.candidates.values_mut() {
            state.finished = true;
        }
        if self.include_usage {
            out.push(ChatChunk::usage_only(
                &self.id,
                self.created,
                self.usage.unwrap_or_default(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> GenerateResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn text_and_usage() {
        let c = completion(parse(json!({
            "candidates": [{"index": 0, "content": {"role": "model", "parts": [
                {"text": "thinking…", "thought": true}, {"text": "Hello "}, {"text": "world"}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 4, "totalTokenCount": 12},
            "modelVersion": "gemini-2.5-flash"
        })))
        .unwrap();
        assert!(c.id.starts_with("chatcmpl-"));
        assert_eq!(c.object, "chat.completion");
        assert_eq!(c.model, "");
        assert_eq!(c.choices.len(), 1);
        assert_eq!(c.choices[0].message.content.as_deref(), Some("Hello world"));
        assert!(c.choices[0].message.tool_calls.is_none());
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            c.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
                total_tokens: 12
            })
        );
        let c = completion(parse(json!({
            "candidates": [{"content": {"parts": [{"text": "x"}]}}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}
        })))
        .unwrap();
        assert_eq!(c.usage, Some(Usage::new(2, 1)));
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn function_calls_become_tool_calls() {
        let c = completion(parse(json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Berlin"}}},
            {"functionCall": {"name": "now"}}
        ]}, "finishReason": "STOP"}]})))
        .unwrap();
        let choice = &c.choices[0];
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(choice.message.content, None);
        let calls = choice.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert!(calls[0].id.starts_with("call_"));
        assert_ne!(calls[0].id, calls[1].id);
        assert_eq!(calls[0].kind, "function");
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
            json!({"city": "Berlin"})
        );
        assert_eq!(calls[1].function.arguments, "{}");
    }

    #[test]
    fn max_tokens_is_length_not_an_error() {
        let c = completion(parse(json!({"candidates": [
            {"content": {"parts": [{"text": "cut"}]}, "finishReason": "MAX_TOKENS"}
        ]})))
        .unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
        let c = completion(parse(
            json!({"candidates": [{"finishReason": "MAX_TOKENS"}]}),
        ))
        .unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(c.choices[0].message.content.as_deref(), Some(""));
    }

    #[test]
    fn blocks() {
        let err = completion(parse(json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "LOW"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
        ]}]})))
        .unwrap_err();
        match err {
            UpstreamError::Blocked { reason } => assert_eq!(
                reason,
                "SAFETY: HARM_CATEGORY_HARASSMENT, HARM_CATEGORY_DANGEROUS_CONTENT"
            ),
            other => panic!("{other:?}"),
        }
        let err = completion(parse(
            json!({"candidates": [{"finishReason": "RECITATION"}]}),
        ));
        assert!(matches!(err, Err(UpstreamError::Blocked { reason }) if reason == "RECITATION"));
        let err = completion(parse(
            json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}),
        ));
        assert!(
            matches!(err, Err(UpstreamError::Blocked { reason }) if reason == "prompt blocked: SAFETY")
        );
        let c = completion(parse(json!({"candidates": [
            {"content": {"parts": [{"text": "partial"}]}, "finishReason": "SAFETY"}
        ]})))
        .unwrap();
        assert_eq!(
            c.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert_eq!(c.choices[0].message.content.as_deref(), Some("partial"));
    }

    #[test]
    fn empty_and_broken_answers_are_protocol_errors() {
        let err = completion(parse(
            json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}),
        ));
        assert!(
            matches!(&err, Err(UpstreamError::Protocol(m)) if m == "Gemini returned no content (finishReason=MALFORMED_FUNCTION_CALL)"),
            "{err:?}"
        );
        assert!(matches!(
            completion(parse(json!({}))),
            Err(UpstreamError::Protocol(_))
        ));
        let err = completion(parse(
            json!({"error": {"code": 500, "message": "internal"}}),
        ));
        assert!(
            matches!(&err, Err(UpstreamError::Protocol(m)) if m.contains("internal")),
            "{err:?}"
        );
    }

    #[test]
    fn several_candidates_become_several_choices() {
        let c = completion(parse(json!({"candidates": [
            {"index": 0, "content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
            {"index": 1, "content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}
        ]})))
        .unwrap();
        assert_eq!(c.choices.len(), 2);
        assert_eq!(c.choices[1].index, 1);
        assert_eq!(c.choices[1].message.content.as_deref(), Some("b"));
        assert_eq!(c.choices[1].finish_reason.as_deref(), Some("length"));
    }

    fn run(include_usage: bool, payloads: &[Value]) -> Vec<Result<ChatChunk, UpstreamError>> {
        let mut state = StreamState::new(include_usage);
        let mut out = Vec::new();
        for p in payloads {
            match state.payload(&p.to_string()) {
                Ok(chunks) => out.extend(chunks.into_iter().map(Ok)),
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
        match state.end() {
            Ok(chunks) => out.extend(chunks.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
        out
    }

    fn ok(items: Vec<Result<ChatChunk, UpstreamError>>) -> Vec<ChatChunk> {
        items.into_iter().map(Result::unwrap).collect()
    }

    #[test]
    fn stream_sequence() {
        let chunks = ok(run(
            true,
            &[
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}]}),
                json!({"candidates": [{"content": {"parts": [{"text": "lo"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}}],
                       "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}}),
                json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "g"}}]}, "finishReason": "STOP"}],
                       "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}}),
            ],
        ));
        let id = &chunks[0].id;
        assert!(chunks
            .iter()
            .all(|c| &c.id == id && c.created == chunks[0].created));
        assert!(chunks.iter().all(|c| c.object == "chat.completion.chunk"));
        let roles = chunks
            .iter()
            .filter(|c| c.choices.first().is_some_and(|ch| ch.delta.role.is_some()))
            .count();
        assert_eq!(roles, 1);
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hel"));
        assert_eq!(chunks[2].choices[0].delta.content.as_deref(), Some("lo"));
        let call = &chunks[3].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.index, 0);
        assert!(call.id.as_deref().unwrap().starts_with("call_"));
        let function = call.function.as_ref().unwrap();
        assert_eq!(function.name.as_deref(), Some("f"));
        assert_eq!(function.arguments.as_deref(), Some(r#"{"a":1}"#));
        let call = &chunks[4].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.index, 1);
        assert_eq!(
            call.function.as_ref().unwrap().arguments.as_deref(),
            Some("{}")
        );
        assert_eq!(
            chunks[5].choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
        assert!(chunks[5].usage.is_none());
        assert!(chunks[6].choices.is_empty());
        assert_eq!(chunks[6].usage, Some(Usage::new(5, 3)));
        assert_eq!(chunks.len(), 7);
    }

    #[test]
    fn stream_without_usage_request_or_finish_reason() {
        let chunks = ok(run(
            false,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}}], "usageMetadata": {"promptTokenCount": 1}}),
            ],
        ));
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2].choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(chunks.iter().all(|c| c.usage.is_none()));
    }

    #[test]
    fn stream_length_and_late_safety_stop() {
        let chunks = ok(run(
            false,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]}),
            ],
        ));
        assert_eq!(
            chunks.last().unwrap().choices[0].finish_reason.as_deref(),
            Some("length")
        );
        let chunks = ok(run(
            false,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}),
                json!({"candidates": [{"finishReason": "SAFETY"}]}),
            ],
        ));
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[2].choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
    }

    #[test]
    fn stream_failures() {
        let first_err = |payloads: &[Value]| {
            let items = run(true, payloads);
            assert!(items.last().unwrap().is_err(), "{items:?}");
            assert_eq!(items.len(), 1, "nothing before the error: {items:?}");
            items.into_iter().last().unwrap().unwrap_err()
        };
        assert!(matches!(
            first_err(&[json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})]),
            UpstreamError::Blocked { reason } if reason == "prompt blocked: PROHIBITED_CONTENT"
        ));
        assert!(matches!(
            first_err(&[json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": [{"category": "C", "blocked": true}]}]})]),
            UpstreamError::Blocked { reason } if reason == "SAFETY: C"
        ));
        assert!(matches!(
            first_err(&[json!({"error": {"message": "overloaded"}})]),
            UpstreamError::Protocol(m) if m.contains("overloaded")
        ));
        assert!(matches!(
            first_err(&[]),
            UpstreamError::Protocol(m) if m == "empty stream"
        ));
        assert!(matches!(
            first_err(&[json!({"usageMetadata": {"promptTokenCount": 1}})]),
            UpstreamError::Protocol(_)
        ));

        let mut state = StreamState::new(false);
        assert!(state.payload("").unwrap().is_empty());
        assert!(matches!(
            state.payload("{nope"),
            Err(UpstreamError::Protocol(_))
        ));
        let items = run(
            false,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}),
                json!({"error": {"message": "boom"}}),
            ],
        );
        assert_eq!(items.len(), 3);
        assert!(items[2].is_err());
    }
}
