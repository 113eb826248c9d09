//! Streamed bodies: framing (SSE, NDJSON), paced one frame per HTTP body chunk, with
//! scripted cuts, and the guard that notices when a client leaves before the end.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::Value;

use crate::script::Cut;

/// How one JSON message is written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `data: {json}\n\n` (OpenAI).
    Sse,
    /// `data: {json}\r\n\r\n` (Gemini).
    SseCrlf,
    /// `{json}\n` (Ollama).
    Ndjson,
}

impl Framing {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Framing::Sse | Framing::SseCrlf => "text/event-stream",
            Framing::Ndjson => "application/x-ndjson",
        }
    }

    /// Frames a raw text payload (JSON or not).
    pub(crate) fn wrap(self, payload: &str) -> Bytes {
        Bytes::from(match self {
            Framing::Sse => format!("data: {payload}\n\n"),
            Framing::SseCrlf => format!("data: {payload}\r\n\r\n"),
            Framing::Ndjson => format!("{payload}\n"),
        })
    }

    pub(crate) fn json(self, value: &Value) -> Bytes {
        self.wrap(&value.to_string())
    }
}

/// The role a frame plays, which decides pacing and where cuts apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Sent at once, before any pacing (OpenAI's role chunk).
    Preamble,
    /// Counted by `drop_after` / `stall_after`.
    Content,
    /// Finish chunks and terminators: never sent when a cut is scripted.
    Trailer,
}

#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub(crate) kind: Kind,
    pub(crate) bytes: Bytes,
}

impl Frame {
    pub(crate) fn new(kind: Kind, bytes: Bytes) -> Frame {
        Frame { kind, bytes }
    }
}

/// A streamed answer before pacing and cuts are applied.
#[derive(Clone, Debug)]
pub(crate) struct Streamed {
    pub(crate) framing: Framing,
    pub(crate) frames: Vec<Frame>,
}

/// Counts a response as closed early when dropped before [`CloseGuard::disarm`].
pub(crate) struct CloseGuard {
    counter: Arc<AtomicUsize>,
    armed: bool,
}

impl CloseGuard {
    pub(crate) fn new(counter: Arc<AtomicUsize>) -> CloseGuard {
        CloseGuard {
            counter,
            armed: true,
        }
    }

    /// The response reached its natural end (or the mock cut it on purpose).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if self.armed {
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Turns frames into a body yielding one HTTP chunk per frame.
///
/// A cut happens before the content frame past the scripted count, or before the first
/// trailer frame, or at the very end when there is no trailer, whichever comes first.
pub(crate) fn body(
    frames: Vec<Frame>,
    interval: Option<Duration>,
    cut: Option<Cut>,
    mut guard: CloseGuard,
) -> Body {
    let stream = async_stream::stream! {
        let total = frames.len();
        let mut sent = 0usize;
        for (i, frame) in frames.into_iter().enumerate() {
            if let Some(c) = cut {
                let n = match c {
                    Cut::Drop(n) | Cut::Stall(n) => n,
                };
                let stop_here = match frame.kind {
                    Kind::Preamble => false,
                    Kind::Content => sent >= n,
                    Kind::Trailer => true,
                };
                if stop_here {
                    break;
                }
            }
            if frame.kind != Kind::Preamble {
                if let Some(d) = interval {
                    tokio::time::sleep(d).await;
                }
            }
            if frame.kind == Kind::Content {
                sent += 1;
            }
            if i + 1 == total && cut.is_none() {
                guard.disarm();
            }
            yield Ok::<Bytes, io::Error>(frame.bytes);
        }
        match cut {
            None => guard.disarm(),
            Some(Cut::Drop(_)) => {
                guard.disarm();
                // Let hyper flush what was sent: an error while frames are still buffered
                // would discard them (and the response headers) with the connection. Hyper
                // polls the body for the next frame before flushing and flushes as soon as
                // the body is pending, so pending once (not for a while) is the barrier.
                tokio::task::yield_now().await;
                yield Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "mana-llm-mock: scripted drop_after",
                ));
            }
            Some(Cut::Stall(_)) => {
                // Silent until the client goes away; the guard then counts it.
                std::future::pending::<()>().await;
            }
        }
    };
    Body::from_stream(stream)
}
