//! A scriptable mock LLM provider for mana-llm's end-to-end tests and benchmarks.
//!
//! One axum server on `127.0.0.1:<free port>` plays three upstream APIs:
//! OpenAI-compatible (`/v1/...`), Ollama native (`/api/...`) and Gemini REST (`/v1beta/...`).
//!
//! Module map:
//! - `lib.rs` — [`MockProvider`] (the handle tests hold), [`Route`], [`Recorded`], shared state.
//! - `script` — [`Reply`], the builder for scripted answers.
//! - `server` — router, request recording, and applying a reply (delay, stall, status, …).
//! - `stream` — SSE/NDJSON framing, pacing, scripted cuts, the closed-early guard.
//! - `openai`, `ollama`, `gemini` — each API's response bodies.

mod gemini;
mod ollama;
mod openai;
mod script;
mod server;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::serve::ListenerExt;

pub use script::Reply;

/// An endpoint the mock serves; replies are scripted and requests recorded per route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /v1/chat/completions`
    OpenAiChat,
    /// `POST /v1/embeddings`
    OpenAiEmbeddings,
    /// `GET /v1/models`
    OpenAiModels,
    /// `POST /api/chat`
    OllamaChat,
    /// `POST /api/embed`
    OllamaEmbed,
    /// `GET /api/tags`
    OllamaTags,
    /// `POST /v1beta/models/{model}:generateContent`
    GeminiGenerate,
    /// `POST /v1beta/models/{model}:streamGenerateContent`
    GeminiStream,
    /// `POST /v1beta/models/{model}:batchEmbedContents`
    GeminiEmbed,
    /// `GET /v1beta/models`
    GeminiModels,
}

impl Route {
    /// Every route, in declaration order.
    pub const ALL: [Route; 10] = [
        Route::OpenAiChat,
        Route::OpenAiEmbeddings,
        Route::OpenAiModels,
        Route::OllamaChat,
        Route::OllamaEmbed,
        Route::OllamaTags,
        Route::GeminiGenerate,
        Route::GeminiStream,
        Route::GeminiEmbed,
        Route::GeminiModels,
    ];
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names; repeated headers joined with `", "`.
    pub headers: HashMap<String, String>,
    /// `Null` if the body was empty or not JSON.
    pub body: serde_json::Value,
    /// Gemini: from the path; others: `body["model"]`.
    pub model: Option<String>,
}

#[derive(Default)]
struct State {
    queues: HashMap<Route, VecDeque<Reply>>,
    defaults: HashMap<Route, Reply>,
    recorded: HashMap<Route, Vec<Recorded>>,
}

/// State shared between the handle and the server's handlers.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) closed_early: Arc<AtomicUsize>,
    seq: AtomicU64,
    /// Opened by [`MockProvider::release`]; [`Reply::held`] replies wait for it.
    pub(crate) released: tokio::sync::watch::Sender<bool>,
    /// Replies waiting for the release right now.
    pub(crate) held: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request and takes the reply for it: the queue's head, else the default.
    pub(crate) fn record_and_take(&self, route: Route, request: Recorded) -> Reply {
        let mut state = self.lock();
        state.recorded.entry(route).or_default().push(request);
        if let Some(reply) = state.queues.get_mut(&route).and_then(VecDeque::pop_front) {
            return reply;
        }
        state.defaults.get(&route).cloned().unwrap_or_default()
    }

    /// A number unique to this mock, for response ids.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Stop accepting when the last clone goes; open connections finish on their own.
        self.task.abort();
    }
}

/// The running mock server. Cheap to clone; the server stops accepting connections when
/// the last clone is dropped.
#[derive(Clone)]
pub struct MockProvider {
    inner: Arc<Handle>,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// Binds `127.0.0.1:0` and spawns the server on the current tokio runtime.
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start() -> MockProvider {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        match MockProvider::start_on(addr).await {
            Ok(mock) => mock,
            Err(e) => panic!("mana-llm-mock: cannot bind {addr}: {e}"),
        }
    }

    /// Binds `addr` and spawns the server on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            closed_early: Arc::new(AtomicUsize::new(0)),
            seq: AtomicU64::new(0),
            released: tokio::sync::watch::channel(false).0,
            held: AtomicUsize::new(0),
        });
        let app = server::router(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockProvider {
            inner: Arc::new(Handle { shared, addr, task }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT` — the Ollama base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// `http://127.0.0.1:PORT/v1beta`
    pub fn gemini_base(&self) -> String {
        format!("{}/v1beta", self.url())
    }

    /// Queues a reply for `route`; queued replies are consumed first-in first-out, one per call.
    pub fn push(&self, route: Route, reply: Reply) {
        self.push_n(route, 1, reply);
    }

    /// Queues the same reply `n` times.
    pub fn push_n(&self, route: Route, n: usize, reply: Reply) {
        let mut state = self.inner.shared.lock();
        let queue = state.queues.entry(route).or_default();
        queue.extend(std::iter::repeat_n(reply, n));
    }

    /// The reply used when `route`'s queue is empty (initially [`Reply::ok`]).
    pub fn set_default(&self, route: Route, reply: Reply) {
        self.inner.shared.lock().defaults.insert(route, reply);
    }

    /// How many requests `route` has received (error replies included).
    pub fn calls(&self, route: Route) -> usize {
        self.inner
            .shared
            .lock()
            .recorded
            .get(&route)
            .map_or(0, Vec::len)
    }

    /// Every request `route` has received, oldest first.
    pub fn requests(&self, route: Route) -> Vec<Recorded> {
        self.inner
            .shared
            .lock()
            .recorded
            .get(&route)
            .cloned()
            .unwrap_or_default()
    }

    pub fn last_request(&self, route: Route) -> Option<Recorded> {
        self.inner
            .shared
            .lock()
            .recorded
            .get(&route)
            .and_then(|v| v.last().cloned())
    }

    /// Responses the client abandoned before the mock finished sending them: streams
    /// dropped mid-way, and requests dropped while delayed or stalled.
    pub fn streams_closed_early(&self) -> usize {
        self.inner.shared.closed_early.load(Ordering::SeqCst)
    }

    /// Requests whose [`Reply::held`] response is waiting for [`MockProvider::release`].
    pub fn held(&self) -> usize {
        self.inner.shared.held.load(Ordering::SeqCst)
    }

    /// Lets every held response (and any later one) go.
    pub fn release(&self) {
        self.inner.shared.released.send_replace(true);
    }

    /// Clears queues, defaults, recorded requests and the closed-early counter.
    pub fn reset(&self) {
        *self.inner.shared.lock() = State::default();
        self.inner.shared.closed_early.store(0, Ordering::SeqCst);
    }
}
