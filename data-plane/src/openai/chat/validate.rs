//! What handlers ask of a request, and the checks it must pass before any provider sees it.

use serde_json::Value;

use super::{ChatRequest, Content, Message};
use crate::openai::error::RequestError;

impl ChatRequest {
    /// Whether the client asked for a final usage chunk in a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The token budget asked for, whichever of the two OpenAI names carried it.
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn has_tools(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// Whether the model must be able to call tools: tools given and not switched off.
    pub fn needs_tools(&self) -> bool {
        self.has_tools() && self.tool_choice.as_ref().and_then(Value::as_str) != Some("none")
    }

    /// Checks what serde cannot: ranges, non-empty lists, shapes of free-form fields.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.messages.is_empty() {
            return Err(RequestError::invalid(
                "messages must contain at least one message",
                "messages",
            ));
        }
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        if self.max_tokens == Some(0) {
            return Err(RequestError::invalid(
                "max_tokens must be at least 1",
                "max_tokens",
            ));
        }
        if self.max_completion_tokens == Some(0) {
            return Err(RequestError::invalid(
                "max_completion_tokens must be at least 1",
                "max_completion_tokens",
            ));
        }
        if self.n == Some(0) {
            return Err(RequestError::invalid("n must be at least 1", "n"));
        }
        for (i, message) in self.messages.iter().enumerate() {
            message.validate(i)?;
        }
        if let Some(tools) = &self.tools {
            for (i, tool) in tools.iter().enumerate() {
                if tool.function.name.trim().is_empty() {
                    return Err(RequestError::invalid(
                        format!("tools[{i}].function.name must not be empty"),
                        format!("tools[{i}].function.name"),
                    ));
                }
            }
        }
        if let Some(choice) = &self.tool_choice {
            validate_tool_choice(choice)?;
        }
        if let Some(format) = &self.response_format {
            if !matches!(format.kind.as_str(), "text" | "json_object" | "json_schema") {
                return Err(RequestError::invalid(
                    format!(
                        "response_format.type must be one of 'text', 'json_object', 'json_schema', got '{}'",
                        format.kind
                    ),
                    "response_format.type",
                ));
            }
        }
        Ok(())
    }
}

impl Message {
    fn validate(&self, i: usize) -> Result<(), RequestError> {
        let Some(Content::Parts(parts)) = &self.content else {
            return Ok(());
        };
        for (j, part) in parts.iter().enumerate() {
            let param = format!("messages[{i}].content[{j}]");
            match part.kind.as_str() {
                "text" if part.text.is_none() => {
                    return Err(RequestError::invalid(
                        format!("{param}: a text part needs a 'text' string"),
                        param,
                    ))
                }
                "image_url" if part.image_url.is_none() => {
                    return Err(RequestError::invalid(
                        format!("{param}: an image_url part needs 'image_url.url'"),
                        param,
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn range(name: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), RequestError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(RequestError::invalid(
            format!("{name} must be between {min} and {max}, got {v}"),
            name,
        )),
        _ => Ok(()),
    }
}

pub(super) fn validate_tool_choice(choice: &Value) -> Result<(), RequestError> {
    let ok = match choice {
        Value::String(s) => matches!(s.as_str(), "auto" | "none" | "required"),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RequestError::invalid(
            "tool_choice must be 'auto', 'none', 'required' or {\"type\":\"function\",\"function\":{\"name\":…}}",
            "tool_choice",
        ))
    }
}
