//! The router, request recording, and applying a scripted [`Reply`] to a request.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::script::GARBAGE;
use crate::stream::{self, CloseGuard, Frame, Framing, Kind, Streamed};
use crate::{gemini, ollama, openai, Recorded, Reply, Route, Shared};

/// Largest request body read (bigger bodies are recorded as `Null`).
const BODY_LIMIT: usize = 64 << 20;

/// What a route module answers: a JSON body, or frames to stream.
pub(crate) enum Answer {
    Json(Value),
    Stream(Streamed),
}

/// What route modules know about the request being answered.
pub(crate) struct Ctx<'a> {
    pub(crate) body: &'a Value,
    /// The requested model, echoed in answers ("mock-model" when absent).
    pub(crate) model: String,
    /// Stream the answer (OpenAI `stream: true`, Ollama unless `stream: false`, Gemini `alt=sse`).
    pub(crate) stream: bool,
    pub(crate) seq: u64,
    pub(crate) created: u64,
    /// The credential the request carried (empty if none), for [`Reply::echo_key`].
    pub(crate) credential: String,
}

/// Which API family a route belongs to, for error bodies and stream framing.
#[derive(Clone, Copy)]
enum Style {
    OpenAi,
    Ollama,
    Gemini,
}

fn style(route: Route) -> Style {
    match route {
        Route::OpenAiChat | Route::OpenAiEmbeddings | Route::OpenAiModels => Style::OpenAi,
        Route::OllamaChat | Route::OllamaEmbed | Route::OllamaTags => Style::Ollama,
        Route::GeminiGenerate | Route::GeminiStream | Route::GeminiEmbed | Route::GeminiModels => {
            Style::Gemini
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let fixed = |route: Route| {
        move |State(s): State<Arc<Shared>>, req: Request| dispatch(s, route, None, req)
    };
    Router::new()
        .route("/v1/chat/completions", post(fixed(Route::OpenAiChat)))
        .route("/v1/embeddings", post(fixed(Route::OpenAiEmbeddings)))
        .route("/v1/models", get(fixed(Route::OpenAiModels)))
        .route("/api/chat", post(fixed(Route::OllamaChat)))
        .route("/api/embed", post(fixed(Route::OllamaEmbed)))
        .route("/api/tags", get(fixed(Route::OllamaTags)))
        .route("/v1beta/models", get(fixed(Route::GeminiModels)))
        .route("/v1beta/models/{*rest}", post(gemini_post))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// `POST /v1beta/models/{model}:{method}` — axum cannot route on ':' inside a segment.
async fn gemini_post(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let rest = req.uri().path().trim_start_matches("/v1beta/models/");
    let Some((model, method)) = rest.rsplit_once(':') else {
        return not_found(rest);
    };
    let route = match method {
        "generateContent" => Route::GeminiGenerate,
        "streamGenerateContent" => Route::GeminiStream,
        "batchEmbedContents" => Route::GeminiEmbed,
        _ => return not_found(rest),
    };
    let model = model.to_owned();
    dispatch(shared, route, Some(model), req).await
}

fn not_found(what: &str) -> Response {
    let body = json!({"error": {"code": 404, "message": format!("mock: no method {what}"), "status": "NOT_FOUND"}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Records the request, then answers it as the scripted reply says.
async fn dispatch(
    shared: Arc<Shared>,
    route: Route,
    path_model: Option<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let model = path_model.or_else(|| body.get("model").and_then(Value::as_str).map(Into::into));
    let query = parts.uri.query().map(str::to_owned);
    let credential = credential(&parts.headers, query.as_deref());
    let recorded = Recorded {
        path: parts.uri.path().to_owned(),
        query: query.clone(),
        headers: header_map(&parts.headers),
        body: body.clone(),
        model: model.clone(),
    };
    let reply = by_model_name(model.as_deref(), &body)
        .unwrap_or_else(|| shared.record_and_take(route, recorded));

    // From here on, a client going away before the end counts as "closed early".
    let guard = CloseGuard::new(shared.closed_early.clone());
    if reply.held {
        let mut released = shared.released.subscribe();
        shared.held.fetch_add(1, Ordering::SeqCst);
        let _ = released.wait_for(|open| *open).await;
        shared.held.fetch_sub(1, Ordering::SeqCst);
    }
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    if reply.stall {
        std::future::pending::<()>().await;
    }
    let ctx = Ctx {
        body: &body,
        model: model.unwrap_or_else(|| "mock-model".to_owned()),
        stream: wants_stream(route, &body, query.as_deref()),
        seq: shared.next_seq(),
        created: unix_now(),
        credential,
    };
    let mut response = answer(route, &ctx, &reply, guard);
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Replies chosen by the model's name, for runs where nobody can script the mock (benchmarks,
/// the binary, fallback chains): `status-503` answers that status, `pieces-20` answers in 20
/// pieces and `pieces-20-every-100ms` sends them 100 ms apart; `echo-key-401` answers 401
/// quoting the credential received, `echo-key-midstream` streams one chunk and then an in-band
/// error quoting it. For clients driven as child processes (tests/clients), which nobody can
/// script: `…calls-NAME` (e.g. `qwen2.5-calls-get_weather`) calls tool NAME with
/// `{"city": "Berlin"}`, or answers "Sunny in Berlin" once the conversation carries a tool
/// result (one agent step each); `…json-weather` answers `{"city": "Berlin", "temperature": 21}`
/// in three pieces. Such
/// requests are not recorded, and neither are `bench…` models (default answers): a long load
/// run must not grow the mock's memory.
fn by_model_name(model: Option<&str>, body: &Value) -> Option<Reply> {
    let model = model?;
    if let Some((_, name)) = model.split_once("calls-") {
        let has_result = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        return Some(if has_result {
            Reply::text(&["Sunny", " in", " Berlin"])
        } else {
            Reply::tool_call(name, json!({"city": "Berlin"}))
        });
    }
    if model.ends_with("json-weather") {
        return Some(Reply::text(&[
            r#"{"city":"#,
            r#""Berlin","#,
            r#""temperature":21}"#,
        ]));
    }
    if model.starts_with("bench") {
        return Some(Reply::ok());
    }
    if model == "echo-key-midstream" {
        return Some(Reply::ok().error_after(1).echo_key());
    }
    if let Some(code) = model
        .strip_prefix("echo-key-")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return Some(Reply::status(code).echo_key());
    }
    if let Some(code) = model
        .strip_prefix("status-")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return Some(Reply::status(code));
    }
    // `pieces-20`, or `pieces-20-every-100ms` for a slow stream.
    let spec = model.strip_prefix("pieces-")?;
    let (count, every) = match spec.split_once("-every-") {
        Some((count, ms)) => (count, Some(ms.strip_suffix("ms")?.parse::<u64>().ok()?)),
        None => (spec, None),
    };
    let n = count.parse::<usize>().ok()?;
    let pieces: Vec<String> = (0..n.clamp(1, 10_000)).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let reply = Reply::text(&refs);
    Some(match every {
        Some(ms) => reply.interval(Duration::from_millis(ms.min(60_000))),
        None => reply,
    })
}

/// Builds the response; `guard` is disarmed for complete bodies and moved into streamed ones.
fn answer(route: Route, ctx: &Ctx<'_>, reply: &Reply, mut guard: CloseGuard) -> Response {
    let style = style(route);
    if let Some(code) = reply.status {
        guard.disarm();
        let body = error_body(style, code, &error_message(ctx, reply, code));
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(body)).into_response();
    }
    let answer = if reply.malformed {
        if ctx.stream {
            let framing = framing(route);
            let frame = Frame::new(Kind::Content, framing.wrap(GARBAGE));
            Answer::Stream(Streamed {
                framing,
                frames: vec![frame],
            })
        } else {
            guard.disarm();
            return (
                [(header::CONTENT_TYPE, "application/json")],
                GARBAGE.to_owned(),
            )
                .into_response();
        }
    } else {
        match route {
            Route::OpenAiChat => openai::chat(ctx, reply),
            Route::OpenAiEmbeddings => Answer::Json(openai::embeddings(ctx)),
            Route::OpenAiModels => Answer::Json(openai::models()),
            Route::OllamaChat => ollama::chat(ctx, reply),
            Route::OllamaEmbed => Answer::Json(ollama::embed(ctx)),
            Route::OllamaTags => Answer::Json(ollama::tags()),
            Route::GeminiGenerate | Route::GeminiStream => gemini::generate(route, ctx, reply),
            Route::GeminiEmbed => Answer::Json(gemini::embed(ctx)),
            Route::GeminiModels => Answer::Json(gemini::models()),
        }
    };
    let answer = match (answer, reply.error_after) {
        (Answer::Stream(s), Some(n)) => Answer::Stream(error_mid_stream(
            s,
            n,
            error_body(style, 500, &error_message(ctx, reply, 500)),
        )),
        (answer, _) => answer,
    };
    match answer {
        Answer::Json(value) => {
            guard.disarm();
            Json(value).into_response()
        }
        Answer::Stream(s) => {
            let body = stream::body(s.frames, reply.interval, reply.cut, guard);
            (
                [
                    (header::CONTENT_TYPE, s.framing.content_type()),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response()
        }
    }
}

fn framing(route: Route) -> Framing {
    match style(route) {
        Style::OpenAi => Framing::Sse,
        Style::Ollama => Framing::Ndjson,
        Style::Gemini => Framing::SseCrlf,
    }
}

/// The text of an error answer: fixed, or quoting the credential received.
fn error_message(ctx: &Ctx<'_>, reply: &Reply, code: u16) -> String {
    if reply.echo_key {
        format!("Incorrect API key provided: {}", ctx.credential)
    } else {
        format!("mock error {code}")
    }
}

/// An error body in the route's style; also the payload of an in-band stream error.
fn error_body(style: Style, code: u16, message: &str) -> Value {
    match style {
        Style::OpenAi => json!({"error": {"message": message, "type": "mock", "code": null}}),
        Style::Ollama => json!({"error": message}),
        Style::Gemini => json!({"error": {"code": code, "message": message, "status": "MOCK"}}),
    }
}

/// `s` cut after `n` content frames, ending with one `error` event instead of its trailer.
fn error_mid_stream(s: Streamed, n: usize, error: Value) -> Streamed {
    let mut content = 0;
    let mut frames: Vec<Frame> = s
        .frames
        .into_iter()
        .filter(|f| match f.kind {
            Kind::Preamble => true,
            Kind::Content => {
                content += 1;
                content <= n
            }
            Kind::Trailer => false,
        })
        .collect();
    frames.push(Frame::new(Kind::Trailer, s.framing.json(&error)));
    Streamed {
        framing: s.framing,
        frames,
    }
}

/// The credential a request carried: a bearer token, a Gemini or Anthropic-style key header,
/// or a `key` query parameter; several joined with spaces.
fn credential(headers: &HeaderMap, query: Option<&str>) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let bearer = header("authorization").map(|v| {
        v.strip_prefix("Bearer ")
            .map(str::to_owned)
            .unwrap_or(v.clone())
    });
    let key_param = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .map(str::to_owned)
    });
    [
        bearer,
        header("x-goog-api-key"),
        header("x-api-key"),
        key_param,
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

fn wants_stream(route: Route, body: &Value, query: Option<&str>) -> bool {
    match route {
        Route::OpenAiChat => body.get("stream").and_then(Value::as_bool) == Some(true),
        // Ollama streams unless told not to.
        Route::OllamaChat => body.get("stream").and_then(Value::as_bool) != Some(false),
        Route::GeminiStream => query
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair == "alt=sse"),
        _ => false,
    }
}

fn header_map(headers: &HeaderMap) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A deterministic embedding for one input text.
pub(crate) fn embedding(text: &str) -> Value {
    json!([text.chars().count() as f64, 0.5, -0.25])
}

/// A rough token count for usage fields: whitespace-separated words, at least one.
pub(crate) fn tokens(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_choose_replies() {
        let by_model_name = |model| by_model_name(model, &Value::Null);
        assert_eq!(
            by_model_name(Some("status-503")).and_then(|r| r.status),
            Some(503)
        );
        let pieces = by_model_name(Some("pieces-20")).unwrap();
        assert_eq!(pieces.pieces.map(|p| p.len()), Some(20));
        assert!(by_model_name(Some("bench-x")).is_some());
        let slow = by_model_name(Some("pieces-20-every-100ms")).unwrap();
        assert_eq!(slow.interval, Some(Duration::from_millis(100)));
        assert_eq!(slow.pieces.map(|p| p.len()), Some(20));
        assert!(by_model_name(Some("pieces-20-every-x")).is_none());
        assert!(by_model_name(Some("mock-model")).is_none());
        let echo = by_model_name(Some("echo-key-429")).unwrap();
        assert_eq!((echo.status, echo.echo_key), (Some(429), true));
        let mid = by_model_name(Some("echo-key-midstream")).unwrap();
        assert_eq!((mid.error_after, mid.echo_key), (Some(1), true));
        assert!(by_model_name(None).is_none());
        let first = by_model_name(Some("qwen2.5-calls-get_weather")).unwrap();
        assert_eq!(
            first.tool_call.map(|(name, _)| name).as_deref(),
            Some("get_weather")
        );
        let result = json!({"messages": [{"role": "tool", "content": "21"}]});
        let second = super::by_model_name(Some("calls-get_weather"), &result).unwrap();
        assert!(second.tool_call.is_none());
        assert_eq!(second.joined(), "Sunny in Berlin");
        let json = by_model_name(Some("json-weather")).unwrap().joined();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap()["city"],
            "Berlin"
        );
    }
}
