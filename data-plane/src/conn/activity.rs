//! What one connection is doing, as the watchdog needs to know it: requests in flight (from
//! the service being called until the response body is dropped), when the next request head
//! started arriving, and when bytes last moved.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::ConnLimits;

/// During a drain, a connection whose last write is older than this has nothing left to
/// flush, so closing it loses nothing.
const FLUSHED_AFTER: Duration = Duration::from_millis(100);

pub struct Activity(Mutex<State>);

struct State {
    in_flight: usize,
    /// When the last response finished (or the connection was accepted).
    idle_since: Instant,
    /// The first byte of a request head that has not been parsed yet (HTTP/1 only: HTTP/2
    /// peers send pings and settings between requests).
    head_started: Option<Instant>,
    last_read: Instant,
    last_write: Instant,
    /// Decided by the first bytes: the HTTP/2 preface starts with `PRI `.
    http2: Option<bool>,
}

/// What the watchdog should do with a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look again at this time.
    Keep(Instant),
    /// Close it now, for this reason.
    Close(&'static str),
}

impl Activity {
    pub fn new(now: Instant) -> Self {
        Self(Mutex::new(State {
            in_flight: 0,
            idle_since: now,
            head_started: None,
            last_read: now,
            last_write: now,
            http2: None,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// A request is being served until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_started = None;
        InFlight(self.clone())
    }

    pub fn read(&self, now: Instant, bytes: &[u8]) {
        let mut state = self.state();
        state.last_read = now;
        let http2 = *state
            .http2
            .get_or_insert_with(|| bytes.starts_with(b"PRI "));
        if state.in_flight == 0 && state.head_started.is_none() && !http2 {
            state.head_started = Some(now);
        }
    }

    pub fn wrote(&self, now: Instant) {
        self.state().last_write = now;
    }

    /// Whether a draining connection can be closed now without cutting anything off.
    pub fn quiet(&self, now: Instant) -> bool {
        let state = self.state();
        state.in_flight == 0 && now.saturating_duration_since(state.last_write) >= FLUSHED_AFTER
    }

    /// Whether the connection outlived the header or idle timeout, or when to look again.
    pub fn verdict(&self, now: Instant, limits: &ConnLimits) -> Verdict {
        let state = self.state();
        if state.in_flight > 0 {
            return Verdict::Keep(now + limits.header_timeout.min(limits.idle_timeout));
        }
        let (deadline, reason) = match state.head_started {
            Some(started) => (started + limits.header_timeout, "header_timeout"),
            None => {
                // Bytes still moving (a slow reader downloading the last answer, HTTP/2
                // pings) are not idleness.
                let last = state.idle_since.max(state.last_write).max(state.last_read);
                (last + limits.idle_timeout, "idle_timeout")
            }
        };
        if now >= deadline {
            Verdict::Close(reason)
        } else {
            Verdict::Keep(deadline)
        }
    }
}

/// One request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// The socket, reporting every read and write to the connection's [`Activity`].
pub struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> TrackedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(Instant::now(), &buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote(Instant::now());
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote(Instant::now());
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body holding `G` (an in-flight count, a budget permit, …) until hyper drops
/// the body: whatever the guard stands for lasts as long as the answer is being sent.
pub struct Holding<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> Holding<G> {
    /// `body`, wrapped so `guard` lives as long as it.
    pub fn body(inner: Body, guard: G) -> Body {
        Body::new(Self {
            inner,
            _guard: guard,
        })
    }
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
