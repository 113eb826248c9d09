//! What the HTTP providers share: sending with error mapping, reading JSON, and reading
//! streamed bodies line by line (NDJSON) or event by event (SSE) with an idle deadline.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::UpstreamError;

/// The shared HTTP settings of one provider.
#[derive(Clone)]
pub struct Upstream {
    pub client: reqwest::Client,
    /// Base URL without a trailing `/`.
    pub base_url: String,
    /// Deadline for a whole non-streaming call, and for a stream's first byte.
    pub timeout: Duration,
    /// Longest silence tolerated between two pieces of a stream.
    pub idle_timeout: Duration,
    /// [`HOT_PATHS`] parsed once: parsing a URL (with IDNA host processing) on every call
    /// was a measurable share of the gateway's CPU per request.
    parsed: Vec<(&'static str, reqwest::Url)>,
}

/// The base URL without its password, if it has one.
impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base_url", &crate::scrub::redact_url(&self.base_url))
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// The paths called on every chat or embeddings request.
const HOT_PATHS: [&str; 4] = [
    "/chat/completions",
    "/embeddings",
    "/api/chat",
    "/api/embed",
];

impl Upstream {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let parsed = HOT_PATHS
            .iter()
            .filter_map(|path| {
                let url = reqwest::Url::parse(&format!("{base_url}{path}")).ok()?;
                Some((*path, url))
            })
            .collect();
        Self {
            client,
            base_url,
            timeout,
            idle_timeout,
            parsed,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// A POST to `path` under the base URL.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        match self.parsed.iter().find(|(p, _)| *p == path) {
            Some((_, url)) => self.client.post(url.clone()),
            // Not a hot path, or a base URL that does not parse: reqwest reports the latter.
            None => self.client.post(self.url(path)),
        }
    }

    /// Sends a non-streaming request and decodes its JSON body.
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let call = async {
            let response = send(request).await?;
            read_json(response).await
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                UpstreamError::Timeout(format!(
                    "no complete answer within {}s",
                    self.timeout.as_secs_f64()
                ))
            })?
    }

    /// Sends a streaming request: returns once the status line and headers arrived.
    pub async fn open_stream(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        tokio::time::timeout(self.timeout, send(request))
            .await
            .map_err(|_| {
                UpstreamError::Timeout(format!(
                    "no response headers within {}s",
                    self.timeout.as_secs_f64()
                ))
            })?
    }
}

/// Sends a request; transport failures and non-2xx statuses become [`UpstreamError`]s.
pub async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, UpstreamError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // An error body is small; cap it so a misbehaving upstream cannot make us buffer much.
    let body = read_capped(response, 16 * 1024).await.unwrap_or_default();
    Err(UpstreamError::Status {
        status: status.as_u16(),
        message: error_message(&body),
        retry_after,
    })
}

/// Reads a whole 2xx body as JSON.
pub async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, UpstreamError> {
    let bytes = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UpstreamError::Protocol(format!("invalid JSON: {e}")))
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, reqwest::Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        buf.extend_from_slice(&chunk);
        if buf.len() >= cap {
            buf.truncate(cap);
            break;
        }
    }
    Ok(buf.freeze())
}

/// The human part of an upstream error body: `error.message`, `error`, `message`, or the text.
pub fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error").filter(|e| e.is_string()),
            v.get("message").filter(|e| e.is_string()),
            v.pointer("/0/error/message"),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|m| m.as_str().map(str::to_owned))
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let text = if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text
    };
    truncate(&text, 500)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Classifies a reqwest failure. Messages carry no URL (and so no query string).
pub fn transport_error(e: reqwest::Error) -> UpstreamError {
    let is_timeout = e.is_timeout();
    let is_connect = e.is_connect();
    let is_body = e.is_body() || e.is_decode();
    let detail = describe(&e.without_url());
    if is_timeout {
        UpstreamError::Timeout(detail)
    } else if is_connect {
        UpstreamError::Connect(detail)
    } else if is_body {
        UpstreamError::Protocol(detail)
    } else {
        UpstreamError::Connect(detail)
    }
}

/// An error and its sources, joined: reqwest's own message alone is rarely enough.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A streamed body split into lines (without `\r\n`), each piece awaited at most `idle`.
pub fn lines(
    response: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<String, UpstreamError>> + Send {
    async_stream::stream! {
        let mut body = response.bytes_stream();
        let mut buf = BytesMut::new();
        loop {
            let next = match tokio::time::timeout(idle, body.next()).await {
                Ok(next) => next,
                Err(_) => {
                    yield Err(UpstreamError::Timeout(format!("stream stalled: nothing for {}s", idle.as_secs_f64())));
                    return;
                }
            };
            match next {
                Some(Ok(bytes)) => {
                    buf.extend_from_slice(&bytes);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line = buf.split_to(pos + 1);
                        let text = String::from_utf8_lossy(&line[..pos]);
                        yield Ok(text.trim_end_matches('\r').to_owned());
                    }
                }
                Some(Err(e)) => {
                    yield Err(UpstreamError::Protocol(format!("stream broke: {}", describe(&e.without_url()))));
                    return;
                }
                None => {
                    if !buf.is_empty() {
                        yield Ok(String::from_utf8_lossy(&buf).trim_end_matches('\r').to_owned());
                    }
                    return;
                }
            }
        }
    }
}

/// The `data:` payloads of a server-sent event stream (comments and other fields skipped).
pub fn sse_data(
    response: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<String, UpstreamError>> + Send {
    lines(response, idle).filter_map(|line| async move {
        match line {
            Ok(mut line) => {
                let data = line.strip_prefix("data:")?;
                let skip = line.len() - data.strip_prefix(' ').unwrap_or(data).len();
                // Reuses the line's buffer rather than copying the payload out of it.
                line.drain(..skip);
                Some(Ok(line))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_paths_are_parsed_once_and_others_still_work() {
        let upstream = Upstream::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/v1/",
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(upstream.parsed.len(), HOT_PATHS.len());
        for path in ["/chat/completions", "/models/x:generateContent"] {
            let built = upstream.post(path).build().unwrap();
            assert_eq!(built.url().as_str(), format!("http://127.0.0.1:9/v1{path}"));
        }
    }

    #[test]
    fn error_messages_come_from_the_usual_places() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad model"}}"#),
            "bad model"
        );
        assert_eq!(
            error_message(br#"{"error":"model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert_eq!(error_message(b"plain text"), "plain text");
        assert_eq!(error_message(b""), "(empty body)");
        assert!(error_message("é".repeat(600).as_bytes()).len() <= 504);
    }
}
