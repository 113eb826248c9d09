//! [`Reply`]: what the mock answers to one request, built with chained setters.

use std::time::Duration;

use serde_json::Value;

/// The content pieces answered by [`Reply::ok`].
pub(crate) const DEFAULT_PIECES: [&str; 3] = ["Hello", " from", " mock"];

/// The body answered by [`Reply::malformed`].
pub(crate) const GARBAGE: &str = r#"{"this is": not json"#;

/// One scripted answer. `Reply::default()` is the same as [`Reply::ok`].
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub(crate) status: Option<u16>,
    pub(crate) pieces: Option<Vec<String>>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) delay: Option<Duration>,
    pub(crate) stall: bool,
    pub(crate) held: bool,
    pub(crate) interval: Option<Duration>,
    pub(crate) cut: Option<Cut>,
    pub(crate) malformed: bool,
    pub(crate) tool_call: Option<(String, Value)>,
    pub(crate) finish: Option<String>,
    pub(crate) blocked: Option<String>,
    pub(crate) echo_key: bool,
    pub(crate) error_after: Option<usize>,
}

/// Where a streamed answer stops short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Abort the connection after this many content chunks.
    Drop(usize),
    /// Go silent forever after this many content chunks.
    Stall(usize),
}

/// A finish reason, independent of any provider's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    Other(String),
}

impl Finish {
    fn parse(reason: &str) -> Finish {
        match reason.to_ascii_lowercase().as_str() {
            "stop" => Finish::Stop,
            "length" | "max_tokens" => Finish::Length,
            "content_filter" | "safety" => Finish::ContentFilter,
            "tool_calls" => Finish::ToolCalls,
            _ => Finish::Other(reason.to_owned()),
        }
    }

    /// OpenAI `finish_reason`.
    pub(crate) fn openai(&self) -> String {
        match self {
            Finish::Stop => "stop".into(),
            Finish::Length => "length".into(),
            Finish::ContentFilter => "content_filter".into(),
            Finish::ToolCalls => "tool_calls".into(),
            Finish::Other(s) => s.clone(),
        }
    }

    /// Ollama `done_reason` (Ollama reports tool calls as a plain "stop").
    pub(crate) fn ollama(&self) -> String {
        match self {
            Finish::Stop | Finish::ToolCalls => "stop".into(),
            Finish::Length => "length".into(),
            Finish::ContentFilter => "content_filter".into(),
            Finish::Other(s) => s.clone(),
        }
    }

    /// Gemini `finishReason`.
    pub(crate) fn gemini(&self) -> String {
        match self {
            Finish::Stop | Finish::ToolCalls => "STOP".into(),
            Finish::Length => "MAX_TOKENS".into(),
            Finish::ContentFilter => "SAFETY".into(),
            Finish::Other(s) => s.to_ascii_uppercase(),
        }
    }
}

impl Reply {
    /// 200 with the default content pieces `["Hello", " from", " mock"]`.
    pub fn ok() -> Reply {
        Reply::default()
    }

    /// 200 answering these pieces (one stream chunk each; concatenated when not streaming).
    pub fn text(pieces: &[&str]) -> Reply {
        Reply {
            pieces: Some(pieces.iter().map(|p| (*p).to_owned()).collect()),
            ..Reply::default()
        }
    }

    /// An error status with a JSON error body in the route's style.
    pub fn status(code: u16) -> Reply {
        Reply {
            status: Some(code),
            ..Reply::default()
        }
    }

    /// Adds a `Retry-After: <secs>` header.
    pub fn retry_after(mut self, secs: u64) -> Reply {
        self.retry_after = Some(secs);
        self
    }

    /// Waits this long before sending the response headers.
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }

    /// Holds the response until [`crate::MockProvider::release`]: a test that needs requests
    /// to overlap makes them overlap instead of hoping a delay is long enough.
    pub fn held(mut self) -> Reply {
        self.held = true;
        self
    }

    /// Never answers: holds the request open until the client goes away.
    pub fn stall() -> Reply {
        Reply {
            stall: true,
            ..Reply::default()
        }
    }

    /// Streaming: waits this long between chunks (and before the first content chunk).
    pub fn interval(mut self, d: Duration) -> Reply {
        self.interval = Some(d);
        self
    }

    /// Streaming: sends `n` content chunks, then aborts the connection (no terminator).
    pub fn drop_after(mut self, n: usize) -> Reply {
        self.cut = Some(Cut::Drop(n));
        self
    }

    /// Streaming: sends `n` content chunks, then goes silent forever.
    pub fn stall_after(mut self, n: usize) -> Reply {
        self.cut = Some(Cut::Stall(n));
        self
    }

    /// 200 with a body that is not valid JSON (streaming: one garbage data line).
    pub fn malformed() -> Reply {
        Reply {
            malformed: true,
            ..Reply::default()
        }
    }

    /// The model answers with one call of tool `name` with these arguments.
    pub fn tool_call(name: &str, arguments: Value) -> Reply {
        Reply {
            tool_call: Some((name.to_owned(), arguments)),
            ..Reply::default()
        }
    }

    /// Finish reason, e.g. "length" or "content_filter"; translated into the route's
    /// vocabulary ("length" ↔ "MAX_TOKENS", "content_filter" ↔ "SAFETY").
    pub fn finish(mut self, reason: &str) -> Reply {
        self.finish = Some(reason.to_owned());
        self
    }

    /// Gemini: `promptFeedback.blockReason = reason` and no candidates. Other routes: the
    /// same as `finish("content_filter")`.
    pub fn blocked(reason: &str) -> Reply {
        Reply {
            blocked: Some(reason.to_owned()),
            ..Reply::default()
        }
    }

    /// Error texts quote the credential the request carried (`Authorization: Bearer …`,
    /// `x-goog-api-key`, `x-api-key` or `?key=`), as many real upstreams do: "Incorrect API key
    /// provided: sk-…". For checking that the gateway never passes it on.
    pub fn echo_key(mut self) -> Reply {
        self.echo_key = true;
        self
    }

    /// Streaming: sends `n` content chunks, then an in-band error event in the route's style
    /// (`{"error": …}`) and ends the stream.
    pub fn error_after(mut self, n: usize) -> Reply {
        self.error_after = Some(n);
        self
    }

    pub(crate) fn pieces(&self) -> Vec<String> {
        match &self.pieces {
            Some(p) => p.clone(),
            None => DEFAULT_PIECES.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    pub(crate) fn joined(&self) -> String {
        self.pieces().concat()
    }

    /// Completion tokens reported in usage: one per piece (one for a tool call).
    pub(crate) fn completion_tokens(&self) -> u64 {
        if self.tool_call.is_some() {
            return 1;
        }
        self.pieces().len() as u64
    }

    pub(crate) fn finish_reason(&self) -> Finish {
        if let Some(reason) = &self.finish {
            return Finish::parse(reason);
        }
        if self.blocked.is_some() {
            return Finish::ContentFilter;
        }
        if self.tool_call.is_some() {
            return Finish::ToolCalls;
        }
        Finish::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_vocabularies() {
        let r = Reply::ok().finish("length");
        assert_eq!(r.finish_reason().gemini(), "MAX_TOKENS");
        let r = Reply::ok().finish("SAFETY");
        assert_eq!(r.finish_reason().openai(), "content_filter");
        assert_eq!(
            Reply::blocked("SAFETY").finish_reason().openai(),
            "content_filter"
        );
        let t = Reply::tool_call("f", serde_json::json!({}));
        assert_eq!(t.finish_reason().openai(), "tool_calls");
        assert_eq!(t.finish_reason().ollama(), "stop");
        assert_eq!(Reply::ok().joined(), "Hello from mock");
    }
}
