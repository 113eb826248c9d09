//! OpenAI chat requests → Gemini `GenerateContentRequest` bodies.

use serde_json::{json, Map, Value};

use crate::openai::{ChatRequest, Content, ContentPart, Message, Role, Stop};
use crate::providers::UpstreamError;

/// Gemini 3 rejects replayed function calls that lack the thought signature it issued with
/// them. OpenAI-shaped history has nowhere to keep that signature, so we send the value Google
/// documents for history that comes from elsewhere.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// What OpenAI clients send for images whose URL names no known extension.
const DEFAULT_IMAGE_MIME: &str = "image/jpeg";

fn invalid(message: impl Into<String>, param: impl Into<String>) -> UpstreamError {
    UpstreamError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

/// The body of `generateContent` / `streamGenerateContent` for `request`.
pub fn generate_content(request: &ChatRequest) -> Result<Value, UpstreamError> {
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini wants every function response of a turn in one user turn, so consecutive tool
    // messages are gathered here and flushed when another role comes.
    let mut responses: Vec<Value> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        if message.role != Role::Tool && !responses.is_empty() {
            contents.push(json!({"role": "user", "parts": std::mem::take(&mut responses)}));
        }
        match message.role {
            Role::System | Role::Developer => system.extend(system_text(message, i)?),
            Role::User => push_turn(&mut contents, "user", parts(message, i)?),
            Role::Assistant => {
                let mut parts = parts(message, i)?;
                parts.extend(function_calls(message, i)?);
                push_turn(&mut contents, "model", parts);
            }
            Role::Tool => responses.push(function_response(request, i)?),
        }
    }
    if !responses.is_empty() {
        contents.push(json!({"role": "user", "parts": responses}));
    }
    if contents.is_empty() {
        return Err(invalid("no user content to send", "messages"));
    }

    let mut body = Map::new();
    body.insert("contents".to_owned(), Value::Array(contents));
    if !system.is_empty() {
        body.insert(
            "systemInstruction".to_owned(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    let config = generation_config(request);
    if !config.is_empty() {
        body.insert("generationConfig".to_owned(), Value::Object(config));
    }
    if let Some(tools) = tools(request)? {
        body.insert("tools".to_owned(), tools);
        if let Some(choice) = &request.tool_choice {
            body.insert("toolConfig".to_owned(), tool_config(choice)?);
        }
    }
    Ok(Value::Object(body))
}

fn push_turn(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if !parts.is_empty() {
        contents.push(json!({"role": role, "parts": parts}));
    }
}

/// A system or developer message's text; Gemini takes a single system instruction.
fn system_text(message: &Message, i: usize) -> Result<Option<String>, UpstreamError> {
    let text = match &message.content {
        None => return Ok(None),
        Some(Content::Text(s)) => s.clone(),
        Some(Content::Parts(parts)) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => texts.push(t.as_str()),
                    (kind, _) => {
                        let param = format!("messages[{i}].content[{j}]");
                        return Err(invalid(
                            format!("{param}: system messages can only hold text, not '{kind}'"),
                            param,
                        ));
                    }
                }
            }
            texts.join("\n\n")
        }
    };
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// The content parts of a user or assistant message.
fn parts(message: &Message, i: usize) -> Result<Vec<Value>, UpstreamError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(Content::Text(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Content::Text(s)) => Ok(vec![json!({"text": s})]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .enumerate()
            .filter_map(|(j, part)| {
                content_part(part, &format!("messages[{i}].content[{j}]")).transpose()
            })
            .collect(),
    }
}

fn content_part(part: &ContentPart, param: &str) -> Result<Option<Value>, UpstreamError> {
    match part.kind.as_str() {
        "text" => Ok(part
            .text
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| json!({"text": t}))),
        "image_url" => match &part.image_url {
            Some(image) => image_part(&image.url, param).map(Some),
            None => Err(invalid(
                format!("{param}: an image_url part needs 'image_url.url'"),
                param,
            )),
        },
        other => Err(invalid(
            format!("{param}: content parts of type '{other}' are not supported by Gemini"),
            param,
        )),
    }
}

/// A data URL travels inline; an http(s) URL is handed to Gemini to fetch.
fn image_part(url: &str, param: &str) -> Result<Value, UpstreamError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((header, data)) = rest.split_once(',') else {
            return Err(invalid(format!("{param}: malformed data URL"), param));
        };
        let mut fields = header.split(';');
        let mime = fields.next().unwrap_or_default().trim();
        if !fields.any(|f| f.trim().eq_ignore_ascii_case("base64")) {
            return Err(invalid(
                format!("{param}: only base64 data URLs are supported"),
                param,
            ));
        }
        let mime = if mime.is_empty() {
            DEFAULT_IMAGE_MIME
        } else {
            mime
        };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data.trim()}}));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("http" | "https")) {
        return Ok(json!({"fileData": {"mimeType": guess_mime(url), "fileUri": url}}));
    }
    Err(invalid(
        format!("{param}: image URLs must be data: or http(s) URLs"),
        param,
    ))
}

/// The image type named by the URL's extension (Gemini needs one for a file it fetches).
fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => DEFAULT_IMAGE_MIME,
    }
}

fn function_calls(message: &Message, i: usize) -> Result<Vec<Value>, UpstreamError> {
    let Some(calls) = &message.tool_calls else {
        return Ok(Vec::new());
    };
    calls
        .iter()
        .enumerate()
        .map(|(k, call)| {
            let param = format!("messages[{i}].tool_calls[{k}].function.arguments");
            let raw = call.function.arguments.trim();
            // Some clients send "" for a call without arguments.
            let args = if raw.is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_str::<Value>(raw)
                    .map_err(|e| invalid(format!("{param} is not valid JSON: {e}"), &param))?
            };
            if !args.is_object() {
                return Err(invalid(format!("{param} must be a JSON object"), param));
            }
            Ok(json!({
                "functionCall": {"name": call.function.name, "args": args},
                "thoughtSignature": SKIP_SIGNATURE,
            }))
        })
        .collect()
}

/// A tool message as a `functionResponse`. Gemini matches responses to calls by name, which
/// OpenAI tool messages do not carry: it comes from the assistant call with the same id.
fn function_response(request: &ChatRequest, i: usize) -> Result<Value, UpstreamError> {
    let message = &request.messages[i];
    let from_call = message.tool_call_id.as_deref().and_then(|id| {
        request.messages[..i]
            .iter()
            .rev()
            .filter_map(|m| m.tool_calls.as_ref())
            .flatten()
            .find(|call| call.id == id)
            .map(|call| call.function.name.as_str())
    });
    let Some(name) = from_call.or(message.name.as_deref()) else {
        return Err(invalid(
            format!(
                "messages[{i}]: tool message answers no earlier assistant tool call (tool_call_id) and has no name"
            ),
            format!("messages[{i}].tool_call_id"),
        ));
    };
    let text = message
        .content
        .as_ref()
        .map(Content::text)
        .unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => json!({"result": other}),
        Err(_) => json!({"result": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

fn generation_config(request: &ChatRequest) -> Map<String, Value> {
    let mut config = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            config.insert(key.to_owned(), value);
        }
    };
    put("temperature", request.temperature.map(Value::from));
    put("topP", request.top_p.map(Value::from));
    put("maxOutputTokens", request.max_tokens().map(Value::from));
    put(
        "stopSequences",
        request
            .stop
            .as_ref()
            .map(Stop::to_vec)
            .filter(|s| !s.is_empty())
            .map(Value::from),
    );
    put("presencePenalty", request.presence_penalty.map(Value::from));
    put(
        "frequencyPenalty",
        request.frequency_penalty.map(Value::from),
    );
    put("seed", request.seed.map(Value::from));
    put(
        "candidateCount",
        request.n.filter(|n| *n > 1).map(Value::from),
    );
    if let Some(format) = &request.response_format {
        match format.kind.as_str() {
            "json_object" => put("responseMimeType", Some(json!("application/json"))),
            "json_schema" => {
                put("responseMimeType", Some(json!("application/json")));
                // `responseJsonSchema` takes standard JSON Schema; `responseSchema` would
                // need it rewritten into Gemini's OpenAPI subset.
                put("responseJsonSchema", format.schema().cloned());
            }
            _ => {}
        }
    }
    config
}

fn tools(request: &ChatRequest) -> Result<Option<Value>, UpstreamError> {
    let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let declarations = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(invalid(
                    format!(
                        "tools[{i}]: Gemini only takes function tools, not '{}'",
                        tool.kind
                    ),
                    format!("tools[{i}].type"),
                ));
            }
            let mut declaration = Map::new();
            declaration.insert("name".to_owned(), json!(tool.function.name));
            if let Some(description) = &tool.function.description {
                declaration.insert("description".to_owned(), json!(description));
            }
            // The JSON Schema variant of `parameters`: OpenAI clients send JSON Schema
            // (`additionalProperties`, empty `properties`, …) that the OpenAPI-subset
            // `parameters` field rejects.
            if let Some(parameters) = &tool.function.parameters {
                declaration.insert("parametersJsonSchema".to_owned(), parameters.clone());
            }
            Ok(Value::Object(declaration))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(json!([{"functionDeclarations": declarations}])))
}

fn tool_config(choice: &Value) -> Result<Value, UpstreamError> {
    let config = match choice {
        Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
        Value::String(s) if s == "none" => json!({"mode": "NONE"}),
        Value::String(s) if s == "required" => json!({"mode": "ANY"}),
        Value::Object(o) => match o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            None => return Err(invalid("tool_choice names no function", "tool_choice")),
        },
        _ => return Err(invalid("unsupported tool_choice", "tool_choice")),
    };
    Ok(json!({"functionCallingConfig": config}))
}

#[cfg(test)]
mod tests;
