//! Responses `input` into chat messages.
//!
//! A string is one user message. Items: messages (`input_text`, `input_image` and, in earlier
//! assistant turns, `output_text` parts), `function_call` (joined into the assistant message
//! before it, as chat wants the calls of one turn in one message) and `function_call_output`
//! (a `tool` message). Reasoning items are dropped: they are one provider's private state and
//! mean nothing to another. Item references and file ids point at state the gateway does not
//! keep, and are refused.

use serde_json::{json, Map, Value};

use crate::openai::error::RequestError;

/// Appends the chat messages `input` stands for.
pub(super) fn messages(input: &Value, out: &mut Vec<Value>) -> Result<(), RequestError> {
    let items = match input {
        Value::String(text) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Value::Array(items) => items,
        _ => {
            return Err(RequestError::invalid(
                "input must be a string or a list of input items",
                "input",
            ))
        }
    };
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let Some(item) = item.as_object() else {
            return Err(RequestError::invalid(
                format!("{param} must be an object"),
                param,
            ));
        };
        match item.get("type").and_then(Value::as_str) {
            None | Some("message") => out.push(message(item, &param)?),
            Some("function_call") => function_call(item, &param, out)?,
            Some("function_call_output") => out.push(function_output(item, &param)?),
            Some("reasoning") => {}
            Some("item_reference") => {
                return Err(RequestError {
                    message: format!(
                        "{param} is an item_reference, which points at an item stored on the server; mana-llm's /v1/responses is stateless: send the item itself (Vercel AI SDK: providerOptions.openai.store = false)"
                    ),
                    param: Some(param),
                    code: "unsupported_stateful_feature",
                })
            }
            Some(other) => {
                return Err(RequestError::invalid(
                    format!("{param}.type '{other}' is not supported: mana-llm takes messages, function_call and function_call_output items"),
                    format!("{param}.type"),
                ))
            }
        }
    }
    Ok(())
}

fn message(item: &Map<String, Value>, param: &str) -> Result<Value, RequestError> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    if !matches!(role, "user" | "system" | "developer" | "assistant") {
        return Err(RequestError::invalid(
            format!(
                "{param}.role must be 'user', 'system', 'developer' or 'assistant', got '{role}'"
            ),
            format!("{param}.role"),
        ));
    }
    let content = match item.get("content") {
        Some(Value::String(text)) => json!(text),
        Some(Value::Array(parts)) => {
            let parts = parts
                .iter()
                .enumerate()
                .map(|(j, part)| content_part(part, &format!("{param}.content[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            // Assistant turns as plain text: every provider takes that for earlier answers.
            if role == "assistant" {
                let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                json!(text.concat())
            } else {
                Value::Array(parts)
            }
        }
        _ => {
            return Err(RequestError::invalid(
                format!("{param}.content must be a string or a list of content parts"),
                format!("{param}.content"),
            ))
        }
    };
    Ok(json!({"role": role, "content": content}))
}

fn content_part(part: &Value, param: &str) -> Result<Value, RequestError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let text = |field: &str| {
        part.get(field).and_then(Value::as_str).ok_or_else(|| {
            RequestError::invalid(
                format!("{param}: a {kind} part needs a '{field}' string"),
                param.to_owned(),
            )
        })
    };
    match kind {
        "input_text" | "output_text" => Ok(json!({"type": "text", "text": text("text")?})),
        "refusal" => Ok(json!({"type": "text", "text": text("refusal")?})),
        "input_image" => {
            let Some(url) = part.get("image_url").and_then(Value::as_str) else {
                let why = if part.get("file_id").is_some_and(|f| !f.is_null()) {
                    "file ids point at OpenAI's file store, which mana-llm does not have"
                } else {
                    "it has none"
                };
                return Err(RequestError::invalid(
                    format!("{param}: an input_image part needs 'image_url' (an https: or data: URL); {why}"),
                    format!("{param}.image_url"),
                ));
            };
            let mut image = Map::new();
            image.insert("url".into(), json!(url));
            if let Some(detail) = part.get("detail").filter(|d| d.is_string()) {
                image.insert("detail".into(), detail.clone());
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        other => Err(RequestError::invalid(
            format!("{param}.type '{other}' is not supported: mana-llm takes input_text, input_image and output_text parts"),
            format!("{param}.type"),
        )),
    }
}

fn required_str<'a>(
    item: &'a Map<String, Value>,
    field: &str,
    param: &str,
) -> Result<&'a str, RequestError> {
    item.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            RequestError::invalid(
                format!("{param}.{field} must be a non-empty string"),
                format!("{param}.{field}"),
            )
        })
}

/// A call the model made in an earlier turn: added to the assistant message before it.
fn function_call(
    item: &Map<String, Value>,
    param: &str,
    out: &mut Vec<Value>,
) -> Result<(), RequestError> {
    let call_id = required_str(item, "call_id", param)?;
    let name = required_str(item, "name", param)?;
    let arguments = match item.get("arguments") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(RequestError::invalid(
                format!("{param}.arguments must be a JSON-encoded string"),
                format!("{param}.arguments"),
            ))
        }
    };
    let call = json!({
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    });
    match out.last_mut() {
        Some(last) if last["role"] == "assistant" => {
            match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                Some(calls) => calls.push(call),
                None => last["tool_calls"] = json!([call]),
            }
        }
        _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
    }
    Ok(())
}

fn function_output(item: &Map<String, Value>, param: &str) -> Result<Value, RequestError> {
    let call_id = required_str(item, "call_id", param)?;
    let output = match item.get("output") {
        Some(Value::String(s)) => s.clone(),
        // A list of content parts: its text (chat tool messages carry text).
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .concat(),
        _ => {
            return Err(RequestError::invalid(
                format!("{param}.output must be a string or a list of content parts"),
                format!("{param}.output"),
            ))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": call_id, "content": output}))
}
