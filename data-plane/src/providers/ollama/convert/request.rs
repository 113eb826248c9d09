//! An OpenAI chat request as an `/api/chat` body: messages, images, tool history, `options`
//! and `format`. Whatever Ollama cannot express is refused with the param that named it.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::sends_tools;
use crate::openai::{ChatRequest, Content, Message, Role};
use crate::providers::UpstreamError;

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
        // A limit of this provider, not a bad request: an alias moves on to an entry that
        // takes URLs.
        return Err(UpstreamError::Capability(format!(
            "ollama cannot fetch image URLs ({param}); send the image inline as a data: URL (data:image/png;base64,…)"
        )));
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
