//! Translation between the OpenAI wire format and Ollama's native API, as pure functions:
//! a chat request to an `/api/chat` body, an `/api/chat` answer to a completion, NDJSON stream
//! lines to chunks, and the small pieces `/api/embed` and `/api/tags` need.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::openai::{
    completion_id, tool_call_id, unix_now, AssistantMessage, ChatChunk, ChatCompletion,
    ChatRequest, Choice, Content, Delta, FunctionCall, Message, Role, ToolCall, ToolCallDelta,
    Usage,
};
use crate::providers::UpstreamError;

/// Substrings of model families Ollama can run with `tools`. Ollama does not say which models
/// take tools, and sending tools to one that does not fails only after a slow model load.
const TOOL_CAPABLE: [&str; 16] = [
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "qwen2.5",
    "qwen3",
    "mistral",
    "mixtral",
    "command-r",
    "firefunction",
    "gpt-oss",
    "granite3",
    "hermes3",
    "phi4-mini",
    "smollm2",
    "nemotron",
];

pub fn tool_capable(model: &str) -> bool {
    let model = model.to_lowercase();
    TOOL_CAPABLE.iter().any(|family| model.contains(family))
}

/// Whether the request's tools will actually be sent: Ollama has no `tool_choice`, so `"none"`
/// can only be honoured by leaving the tools out.
pub fn sends_tools(request: &ChatRequest) -> bool {
    request.has_tools() && request.tool_choice != Some(Value::String("none".to_owned()))
}

fn invalid(message: impl Into<String>, param: String) -> UpstreamError {
    UpstreamError::InvalidRequest {
        message: message.into(),
        param: Some(param),
    }
}

/// The `/api/chat` body for `request` on `model`.
pub fn chat_body(request: &ChatRequest, model: &str, stream: bool) -> Result<Value, UpstreamError> {
    let mut body = json!({
        "model": model,
        "messages": messages(&request.messages)?,
        "stream": stream,
    });
    let options = options(request);
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    if let Some(format) = format(request) {
        body["format"] = format;
    }
    if sends_tools(request) {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .flatten()
            .map(|tool| {
                let mut function = json!({"name": tool.function.name});
                if let Some(description) = &tool.function.description {
                    function["description"] = json!(description);
                }
                if let Some(parameters) = &tool.function.parameters {
                    function["parameters"] = parameters.clone();
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    Ok(body)
}

fn options(request: &ChatRequest) -> Map<String, Value> {
    let mut options = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            options.insert(key.to_owned(), value);
        }
    };
    set("temperature", request.temperature.map(Value::from));
    set("top_p", request.top_p.map(Value::from));
    set("num_predict", request.max_tokens().map(Value::from));
    set("stop", request.stop.as_ref().map(|s| json!(s.to_vec())));
    set("seed", request.seed.map(Value::from));
    set(
        "frequency_penalty",
        request.frequency_penalty.map(Value::from),
    );
    set(
        "presence_penalty",
        request.presence_penalty.map(Value::from),
    );
    options
}

/// Ollama's `format`: `"json"` or a JSON schema it constrains the output to.
fn format(request: &ChatRequest) -> Option<Value> {
    let format = request.response_format.as_ref()?;
    match format.kind.as_str() {
        "json_object" => Some(json!("json")),
        "json_schema" => Some(format.schema().cloned().unwrap_or_else(|| json!("json"))),
        _ => None,
    }
}

fn messages(messages: &[Message]) -> Result<Vec<Value>, UpstreamError> {
    // Newer Ollama matches tool results to calls by function name, which OpenAI tool
    // messages do not carry; the assistant turn that made the call does.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let role = match message.role {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        let (content, images) = content(message.content.as_ref(), i)?;
        let mut m = json!({"role": role, "content": content});
        if !images.is_empty() {
            m["images"] = json!(images);
        }
        if let Some(calls) = message.tool_calls.as_ref().filter(|c| !c.is_empty()) {
            let mut converted = Vec::with_capacity(calls.len());
            for (k, call) in calls.iter().enumerate() {
                call_names.insert(&call.id, &call.function.name);
                converted.push(json!({"function": {
                    "name": call.function.name,
                    "arguments": arguments(&call.function.arguments, i, k)?,
                }}));
            }
            m["tool_calls"] = Value::Array(converted);
        }
        if message.role == Role::Tool {
            if let Some(id) = &message.tool_call_id {
                m["tool_call_id"] = json!(id);
            }
            let name = message
                .tool_call_id
                .as_deref()
                .and_then(|id| call_names.get(id).copied())
                .or(message.name.as_deref());
            if let Some(name) = name {
                m["tool_name"] = json!(name);
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// The text of a message and the base64 payloads of its images.
fn content(content: Option<&Content>, i: usize) -> Result<(String, Vec<String>), UpstreamError> {
    let Some(content) = content else {
        return Ok((String::new(), Vec::new()));
    };
    let mut images = Vec::new();
    if let Content::Parts(parts) = content {
        for (j, part) in parts.iter().enumerate() {
            match (part.kind.as_str(), &part.image_url) {
                ("text", _) => {}
                ("image_url", Some(image)) => {
                    let param = format!("messages[{i}].content[{j}].image_url.url");
                    images.push(image_payload(&image.url, param)?);
                }
                (kind, _) => {
                    return Err(invalid(
                        format!("ollama cannot take '{kind}' content parts; send text and image_url parts only"),
                        format!("messages[{i}].content[{j}].type"),
                    ))
                }
            }
        }
    }
    Ok((content.text(), images))
}

fn image_payload(url: &str, param: String) -> Result<String, UpstreamError> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if scheme == "http" || scheme == "https" {
        return Err(invalid(
            "ollama cannot fetch image URLs; send the image inline as a data: URL (data:image/png;base64,…)",
            param,
        ));
    }
    let inline = url
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("data:"))
        .and_then(|_| url[5..].split_once(','))
        .filter(|(header, _)| header.to_ascii_lowercase().ends_with(";base64"))
        .map(|(_, data)| data.trim())
        .filter(|data| !data.is_empty());
    match inline {
        Some(data) => Ok(data.to_owned()),
        None => Err(invalid(
            "ollama takes images only as base64 data: URLs (data:image/png;base64,…)",
            param,
        )),
    }
}

/// OpenAI sends tool-call arguments as a JSON string; Ollama wants the object itself.
fn arguments(arguments: &str, i: usize, k: usize) -> Result<Value, UpstreamError> {
    // Some clients send "" for a call without arguments.
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(invalid(
            "tool call arguments must be a JSON object encoded as a string",
            format!("messages[{i}].tool_calls[{k}].function.arguments"),
        )),
    }
}

/// One `/api/chat` answer: the whole answer, or one line of a stream.
#[derive(Debug, Default, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub message: Option<ResponseMessage>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: ResponseFunction,
}

#[derive(Debug, Deserialize)]
pub struct ResponseFunction {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

impl ChatResponse {
    fn error(&self) -> Option<String> {
        let error = self.error.as_ref().filter(|e| !e.is_null())?;
        Some(match error {
            Value::String(s) => s.clone(),
            other => other
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| other.to_string(), str::to_owned),
        })
    }

    fn usage(&self) -> Usage {
        Usage::new(
            self.prompt_eval_count.unwrap_or(0),
            self.eval_count.unwrap_or(0),
        )
    }

    fn content(&self) -> &str {
        self.message
            .as_ref()
            .and_then(|m| m.content.as_deref())
            .unwrap_or_default()
    }

    fn tool_calls(&self) -> Result<Vec<ToolCall>, UpstreamError> {
        self.message
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .map(tool_call)
            .collect()
    }

    fn finish_reason(&self, tool_calls: bool) -> &'static str {
        if tool_calls {
            "tool_calls"
        } else if self.done_reason.as_deref() == Some("length") {
            "length"
        } else {
            "stop"
        }
    }
}

fn tool_call(call: &ResponseToolCall) -> Result<ToolCall, UpstreamError> {
    if call.function.name.is_empty() {
        return Err(UpstreamError::Protocol(
            "a tool call without a function name".to_owned(),
        ));
    }
    let arguments = match &call.function.arguments {
        Value::String(s) => s.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    Ok(ToolCall {
        id: call
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(tool_call_id),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: call.function.name.clone(),
            arguments,
        },
        extra: Map::new(),
    })
}

/// A whole non-streaming answer as a completion. `model` is left for the caller to fill.
pub fn completion(response: ChatResponse) -> Result<ChatCompletion, UpstreamError> {
    if let Some(error) = response.error() {
        return Err(UpstreamError::Protocol(format!(
            "ollama reported an error: {error}"
        )));
    }
    if response.message.is_none() {
        return Err(UpstreamError::Protocol(
            "the answer has no message".to_owned(),
        ));
    }
    let tool_calls = response.tool_calls()?;
    let content = response.content();
    // A tool-call turn has no text; OpenAI clients expect `null` there, not "".
    let content = (!content.is_empty() || tool_calls.is_empty()).then(|| content.to_owned());
    let finish_reason = response.finish_reason(!tool_calls.is_empty());
    let tool_calls = (!tool_calls.is_empty()).then_some(tool_calls);
    Ok(ChatCompletion {
        id: completion_id(),
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: String::new(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage::new(content, tool_calls),
            finish_reason: Some(finish_reason.to_owned()),
            extra: Map::new(),
        }],
        usage: Some(response.usage()),
        extra: Map::new(),
    })
}

/// Turns the NDJSON lines of one streamed answer into chunks that share one id.
pub struct StreamState {
    id: String,
    created: u64,
    include_usage: bool,
    started: bool,
    tool_calls: u32,
    done: bool,
}

impl StreamState {
    pub fn new(include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            created: unix_now(),
            include_usage,
            started: false,
            tool_calls: 0,
            done: false,
        }
    }

    /// Whether the `done` line arrived; nothing after it matters.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The chunks for one line. An error ends the stream.
    pub fn line(&mut self, line: &str) -> Result<Vec<ChatChunk>, UpstreamError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Vec::new());
        }
        let response: ChatResponse = serde_json::from_str(line)
            .map_err(|e| UpstreamError::Protocol(format!("invalid stream line: {e}")))?;
        if let Some(error) = response.error() {
            return Err(UpstreamError::Protocol(format!(
                "ollama reported an error mid-stream: {error}"
            )));
        }
        let mut chunks = Vec::new();
        let chunk = |delta, finish| ChatChunk::with_delta(&self.id, self.created, delta, finish);
        if !self.started {
            chunks.push(chunk(Delta::role(), None));
        }
        let content = response.content();
        if !content.is_empty() {
            chunks.push(chunk(Delta::content(content), None));
        }
        let calls = response.tool_calls()?;
        if !calls.is_empty() {
            let deltas = calls
                .iter()
                .zip(self.tool_calls..)
                .map(|(call, index)| ToolCallDelta::complete(index, call))
                .collect();
            chunks.push(chunk(
                Delta {
                    tool_calls: Some(deltas),
                    ..Delta::default()
                },
                None,
            ));
        }
        if response.done {
            let tool_calls = self.tool_calls > 0 || !calls.is_empty();
            let finish = response.finish_reason(tool_calls);
            chunks.push(chunk(Delta::default(), Some(finish)));
            if self.include_usage {
                chunks.push(ChatChunk::usage_only(
                    &self.id,
                    self.created,
                    response.usage(),
                ));
            }
        }
        self.started = true;
        self.tool_calls += calls.len() as u32;
        self.done = response.done;
        Ok(chunks)
    }

    /// Called when the body ended: a stream that never said `done` was cut short.
    pub fn end(&self) -> Result<(), UpstreamError> {
        if self.done {
            Ok(())
        } else {
            Err(UpstreamError::Protocol(
                "stream ended before done".to_owned(),
            ))
        }
    }
}

/// The `/api/embed` body.
pub fn embed_body(model: &str, texts: &[String], dimensions: Option<u32>) -> Value {
    let mut body = json!({"model": model, "input": texts});
    if let Some(d) = dimensions {
        body["dimensions"] = json!(d);
    }
    body
}

/// Seconds since the Unix epoch for an RFC 3339 timestamp, `YYYY-MM-DDTHH:MM:SS(.frac)?(Z|±HH:MM)`,
/// as Ollama writes `modified_at`. `None` if it is not one or lies before 1970.
pub fn unix_seconds(s: &str) -> Option<u64> {
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(range)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let byte = |i: usize| s.as_bytes().get(i).copied();
    if byte(4) != Some(b'-')
        || byte(7) != Some(b'-')
        || !matches!(byte(10), Some(b'T' | b't' | b' '))
        || byte(13) != Some(b':')
        || byte(16) != Some(b':')
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let [h1, h2, m1, m2] = digits.map(|d| i64::from(d - b'0'));
            let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(local - offset).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    fn body(v: Value) -> Result<Value, UpstreamError> {
        chat_body(&request(v), "m:7b", false)
    }

    fn param(e: UpstreamError) -> Option<String> {
        match e {
            UpstreamError::InvalidRequest { param, .. } => param,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    fn response(v: Value) -> ChatResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn simple_messages() {
        let b = body(json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null}
        ]}))
        .unwrap();
        assert_eq!(
            b,
            json!({"model": "m:7b", "stream": false, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": ""}
            ]})
        );
        let streamed = chat_body(
            &request(json!({"messages": [{"role": "user", "content": "x"}]})),
            "m",
            true,
        )
        .unwrap();
        assert_eq!(streamed["stream"], true);
    }

    #[test]
    fn data_url_images_go_to_images() {
        let b = body(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "a"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "b"},
            {"type": "image_url", "image_url": {"url": "DATA:image/jpeg;BASE64,BBBB", "detail": "low"}}
        ]}]}))
        .unwrap();
        assert_eq!(
            b["messages"][0],
            json!({"role": "user", "content": "a b", "images": ["AAAA", "BBBB"]})
        );
    }

    #[test]
    fn images_ollama_cannot_take_are_refused_with_their_param() {
        let e = body(json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
            ]}
        ]}))
        .unwrap_err();
        assert!(e.to_string().contains("cannot fetch image URLs"), "{e}");
        assert_eq!(
            param(e).as_deref(),
            Some("messages[1].content[1].image_url.url")
        );
        for url in [
            "data:image/png,raw",
            "data:image/png;base64,",
            "file:///x.png",
        ] {
            let e = body(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}
            ]}]}))
            .unwrap_err();
            assert_eq!(
                param(e).as_deref(),
                Some("messages[0].content[0].image_url.url"),
                "{url}"
            );
        }
        let e = body(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}
        ]}]}))
        .unwrap_err();
        assert!(e.to_string().contains("input_audio"), "{e}");
        assert_eq!(param(e).as_deref(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn tool_history() {
        let b = body(json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_w", "arguments": "{\"city\":\"Berlin\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "12C"},
            {"role": "tool", "tool_call_id": "unknown", "content": "?"}
        ]}))
        .unwrap();
        assert_eq!(
            b["messages"][1],
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_w", "arguments": {"city": "Berlin"}}},
                {"function": {"name": "now", "arguments": {}}}
            ]})
        );
        assert_eq!(
            b["messages"][2],
            json!({"role": "tool", "content": "12C", "tool_call_id": "c1", "tool_name": "get_w"})
        );
        assert_eq!(
            b["messages"][3],
            json!({"role": "tool", "content": "?", "tool_call_id": "unknown"})
        );

        for bad in ["[1,2]", "{not json", "\"s\""] {
            let e = body(json!({"messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": bad}}
            ]}]}))
            .unwrap_err();
            assert_eq!(
                param(e).as_deref(),
                Some("messages[0].tool_calls[0].function.arguments")
            );
        }
    }

    #[test]
    fn tools_are_sent_unless_tool_choice_is_none() {
        let mut v = json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "g"}}
            ],
            "tool_choice": "required"
        });
        assert_eq!(
            body(v.clone()).unwrap()["tools"],
            json!([
                {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "g"}}
            ])
        );
        v["tool_choice"] = json!("none");
        assert!(body(v.clone()).unwrap().get("tools").is_none());
        assert!(!sends_tools(&request(v)));
    }

    #[test]
    fn options_mapping() {
        let b = body(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 50, "max_completion_tokens": 10,
            "stop": "x", "seed": 7, "frequency_penalty": 1.0, "presence_penalty": -0.5
        }))
        .unwrap();
        assert_eq!(
            b["options"],
            json!({"temperature": 0.5, "top_p": 0.9, "num_predict": 10, "stop": ["x"],
                   "seed": 7, "frequency_penalty": 1.0, "presence_penalty": -0.5})
        );
        let b = body(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stop": ["a", "b"]}))
            .unwrap();
        assert_eq!(b["options"], json!({"num_predict": 5, "stop": ["a", "b"]}));
        let b = body(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert!(b.get("options").is_none());
    }

    #[test]
    fn response_format_mapping_in_both_modes() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let cases = [
            (json!({"type": "json_object"}), Some(json!("json"))),
            (
                json!({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}),
                Some(schema.clone()),
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "s"}}),
                Some(json!("json")),
            ),
            (json!({"type": "text"}), None),
        ];
        for (format, expected) in cases {
            for stream in [false, true] {
                let r = request(json!({
                    "messages": [{"role": "user", "content": "x"}],
                    "response_format": format
                }));
                let b = chat_body(&r, "m", stream).unwrap();
                assert_eq!(
                    b.get("format"),
                    expected.as_ref(),
                    "{format} stream={stream}"
                );
            }
        }
    }

    #[test]
    fn plain_answer_is_kept_verbatim() {
        let fenced = "```json\n{\"a\":1}\n```";
        let c = completion(response(json!({
            "message": {"role": "assistant", "content": fenced},
            "done": true, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 6
        })))
        .unwrap();
        assert_eq!(c.object, "chat.completion");
        assert!(c.id.starts_with("chatcmpl-"));
        assert_eq!(c.model, "");
        let choice = &c.choices[0];
        assert_eq!(choice.message.content.as_deref(), Some(fenced));
        assert!(choice.message.tool_calls.is_none());
        assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
        assert_eq!(c.usage, Some(Usage::new(4, 6)));

        let empty =
            completion(response(json!({"message": {"content": ""}, "done": true}))).unwrap();
        assert_eq!(empty.choices[0].message.content.as_deref(), Some(""));
        assert_eq!(empty.usage, Some(Usage::new(0, 0)));
    }

    #[test]
    fn tool_call_answer() {
        let c = completion(response(json!({
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_w", "arguments": {"city": "Berlin"}}},
                {"id": "up_1", "function": {"name": "raw", "arguments": "{\"a\":1}"}}
            ]},
            "done": true, "done_reason": "stop"
        })))
        .unwrap();
        let choice = &c.choices[0];
        assert_eq!(choice.message.content, None);
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        let calls = choice.message.tool_calls.as_ref().unwrap();
        assert!(calls[0].id.starts_with("call_"));
        assert_eq!(calls[0].kind, "function");
        assert_eq!(calls[0].function.name, "get_w");
        assert_eq!(
            serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
            json!({"city": "Berlin"})
        );
        assert_eq!(calls[1].id, "up_1");
        assert_eq!(calls[1].function.arguments, "{\"a\":1}");
    }

    #[test]
    fn length_and_errors() {
        let c = completion(response(json!({
            "message": {"content": "trunc"}, "done": true, "done_reason": "length"
        })))
        .unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));

        let e = completion(response(json!({"error": "model 'x' not found"}))).unwrap_err();
        assert!(matches!(&e, UpstreamError::Protocol(m) if m.contains("model 'x' not found")));
        assert!(matches!(
            completion(response(json!({"done": true}))),
            Err(UpstreamError::Protocol(_))
        ));
    }

    fn lines(state: &mut StreamState, lines: &[&str]) -> Vec<ChatChunk> {
        lines.iter().flat_map(|l| state.line(l).unwrap()).collect()
    }

    #[test]
    fn stream_of_text() {
        let mut s = StreamState::new(true);
        let chunks = lines(
            &mut s,
            &[
                r#"{"message":{"role":"assistant","content":"Hel"},"done":false}"#,
                "",
                r#"{"message":{"role":"assistant","content":"lo"},"done":false}"#,
                r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#,
            ],
        );
        assert_eq!(chunks.len(), 5);
        assert!(chunks
            .iter()
            .all(|c| c.id == chunks[0].id && c.created == chunks[0].created));
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert!(chunks[1..]
            .iter()
            .all(|c| c.choices.iter().all(|ch| ch.delta.role.is_none())));
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hel"));
        assert_eq!(chunks[2].choices[0].delta.content.as_deref(), Some("lo"));
        assert_eq!(chunks[3].choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(chunks[3].choices[0].delta.content.is_none());
        assert!(chunks[4].choices.is_empty());
        assert_eq!(chunks[4].usage, Some(Usage::new(3, 2)));
        assert!(s.is_done());
        s.end().unwrap();
        assert_ne!(
            StreamState::new(false).id,
            s.id,
            "ids are unique per stream"
        );
    }

    #[test]
    fn stream_of_tool_calls_and_length() {
        let mut s = StreamState::new(false);
        let chunks = lines(
            &mut s,
            &[
                r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}}]},"done":false}"#,
                r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"b","arguments":{}}}]},"done":false}"#,
                r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#,
            ],
        );
        assert_eq!(chunks.len(), 4, "role, two tool calls, finish; no usage");
        let call = |i: usize| &chunks[i].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!((call(1).index, call(2).index), (0, 1));
        let f = call(1).function.as_ref().unwrap();
        assert_eq!(f.name.as_deref(), Some("a"));
        assert_eq!(f.arguments.as_deref(), Some("{\"x\":1}"));
        assert!(call(1).id.as_deref().unwrap().starts_with("call_"));
        assert_eq!(
            chunks[3].choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );

        let mut s = StreamState::new(false);
        let chunks = lines(
            &mut s,
            &[r#"{"message":{"content":"x"},"done":true,"done_reason":"length"}"#],
        );
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("x"));
        assert_eq!(
            chunks[2].choices[0].finish_reason.as_deref(),
            Some("length")
        );
    }

    #[test]
    fn stream_errors() {
        let mut s = StreamState::new(false);
        let e = s.line(r#"{"error":"out of memory"}"#).unwrap_err();
        assert!(matches!(&e, UpstreamError::Protocol(m) if m.contains("out of memory")));
        assert!(!s.started, "no role chunk before an error");
        assert!(matches!(s.line("{nope"), Err(UpstreamError::Protocol(_))));

        let mut s = StreamState::new(false);
        lines(&mut s, &[r#"{"message":{"content":"a"},"done":false}"#]);
        assert!(!s.is_done());
        assert!(
            matches!(s.end(), Err(UpstreamError::Protocol(m)) if m == "stream ended before done")
        );
    }

    #[test]
    fn tool_capable_models() {
        for yes in [
            "qwen2.5:7b",
            "Llama3.1:8b",
            "llama3.3",
            "mistral-nemo",
            "qwen3:30b-a3b",
            "gpt-oss:20b",
            "hf.co/x/Hermes3-GGUF",
            "phi4-mini",
        ] {
            assert!(tool_capable(yes), "{yes}");
        }
        for no in ["gemma3:4b", "llava:7b", "phi4", "llama2", ""] {
            assert!(!tool_capable(no), "{no}");
        }
    }

    #[test]
    fn embed_bodies() {
        let texts = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            embed_body("nomic", &texts, Some(64)),
            json!({"model": "nomic", "input": ["a", "b"], "dimensions": 64})
        );
        assert!(embed_body("nomic", &texts, None)
            .get("dimensions")
            .is_none());
    }

    #[test]
    fn timestamps() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-01-01T00:00:00Z"), Some(1_767_225_600));
        assert_eq!(unix_seconds("2000-02-29T12:34:56.789Z"), Some(951_827_696));
        assert_eq!(
            unix_seconds("2024-05-13T11:28:33.960536626-07:00"),
            Some(1_715_624_913)
        );
        assert_eq!(
            unix_seconds("2024-05-13T19:28:33+02:00"),
            Some(1_715_624_913 - 3600)
        );
        for bad in [
            "",
            "2024-05-13",
            "2024-05-13T11:28:33",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-13T24:00:00Z",
            "2024-05-13T11:28:33.Z",
            "2024-05-13T11:28:33+0200",
            "1969-12-31T23:59:59Z",
            "2024-05-13T11:28:33Zjunk",
            "2024-05-1é11:28:33Z",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }
}
