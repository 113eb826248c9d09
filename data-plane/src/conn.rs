//! Serving connections with bounds: our own accept loop over hyper-util's HTTP/1 + HTTP/2
//! builder, because `axum::serve` exposes none of the knobs below.
//!
//! - At most [`ConnLimits::max_connections`] connections per worker. Past it a new connection
//!   gets a short 503 and is closed, so open files never run out and the ones already open
//!   keep working.
//! - A request head must arrive complete within `header_timeout` of its first byte
//!   (slowloris), and a connection with nothing in flight is closed after `idle_timeout`.
//!   Both are watched per connection ([`Activity`]), for HTTP/1 and HTTP/2 alike.
//! - HTTP/2: bounded concurrent streams, send buffer per stream and receive windows, so a
//!   peer that stops reading (a zero window) pins at most a bounded amount of memory.
//! - Drain: connections with nothing in flight (idle, or a half-sent head) close at once;
//!   the others finish their requests and close.

mod activity;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::settings::{ConfigError, Source};
pub use activity::Activity;
pub(crate) use activity::Holding;
use activity::{TrackedIo, Verdict};

/// The bounds of one worker's serving, from the environment (documented in the README's
/// configuration table).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnLimits {
    /// `MANA_LLM_MAX_CONNECTIONS`: open client connections per worker.
    pub max_connections: usize,
    /// `MANA_LLM_HEADER_TIMEOUT`: from a request's first byte to its complete head.
    pub header_timeout: Duration,
    /// `MANA_LLM_IDLE_TIMEOUT`: a connection with nothing in flight is closed after this.
    pub idle_timeout: Duration,
    /// `MANA_LLM_H2_MAX_STREAMS`: concurrent streams per HTTP/2 connection.
    pub h2_max_streams: u32,
    /// `MANA_LLM_H2_SEND_BUFFER_KB`: response bytes buffered per HTTP/2 stream while the peer's
    /// window is closed; past it the response waits (backpressure), it is not buffered.
    pub h2_send_buffer: usize,
    /// `MANA_LLM_H2_WINDOW_KB`: the receive window per stream (the connection gets 4×): how
    /// much request body a peer may send ahead of the handler reading it.
    pub h2_window: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 2048,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            h2_max_streams: 64,
            h2_send_buffer: 64 * 1024,
            h2_window: 256 * 1024,
        }
    }
}

impl ConnLimits {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let d = Self::default();
        let positive = |key: &str, value: usize| {
            if value == 0 {
                Err(ConfigError::new(key, "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let kb = |key: &str, default: usize| -> Result<usize, ConfigError> {
            let value = positive(key, src.number(key, default / 1024)?)?;
            value
                .checked_mul(1024)
                .filter(|b| *b <= i32::MAX as usize)
                .ok_or_else(|| ConfigError::new(key, "is too large"))
        };
        let h2_window = kb("MANA_LLM_H2_WINDOW_KB", d.h2_window as usize)?;
        Ok(Self {
            max_connections: positive(
                "MANA_LLM_MAX_CONNECTIONS",
                src.number("MANA_LLM_MAX_CONNECTIONS", d.max_connections)?,
            )?,
            header_timeout: src
                .seconds("MANA_LLM_HEADER_TIMEOUT", d.header_timeout.as_secs_f64())?,
            idle_timeout: src.seconds("MANA_LLM_IDLE_TIMEOUT", d.idle_timeout.as_secs_f64())?,
            h2_max_streams: positive(
                "MANA_LLM_H2_MAX_STREAMS",
                src.number("MANA_LLM_H2_MAX_STREAMS", d.h2_max_streams as usize)?,
            )?
            .try_into()
            .map_err(|_| ConfigError::new("MANA_LLM_H2_MAX_STREAMS", "is too large"))?,
            h2_send_buffer: kb("MANA_LLM_H2_SEND_BUFFER_KB", d.h2_send_buffer)?,
            h2_window: u32::try_from(h2_window)
                .map_err(|_| ConfigError::new("MANA_LLM_H2_WINDOW_KB", "is too large"))?,
        })
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Our own watchdog enforces the header timeout for both protocols; hyper's would also
        // cut idle keep-alive connections at the header timeout.
        builder
            .http1()
            .header_read_timeout(None)
            .max_buf_size(64 * 1024);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_streams)
            .max_send_buf_size(self.h2_send_buffer)
            .initial_stream_window_size(self.h2_window)
            .initial_connection_window_size(self.h2_window.saturating_mul(4))
            .max_header_list_size(64 * 1024)
            .max_pending_accept_reset_streams(Some(32))
            // Pings find peers that vanished without closing (their streams would stay open).
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(20));
        builder
    }
}

/// What a connection past the limit reads before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 183\r\n\r\n\
{\"error\":{\"message\":\"this worker has as many connections open as it allows (MANA_LLM_MAX_CONNECTIONS); retry shortly\",\"type\":\"server_error\",\"code\":\"too_many_connections\",\"param\":null}}";

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then drains:
/// no new connections, idle and half-sent ones closed at once, the rest closed as their
/// requests finish. Returns when every connection is gone.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let limits = Arc::new(limits);
    let builder = Arc::new(limits.builder());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let drain = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on a full fd table.
                    tracing::warn!(error = %e, "accept error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            connections.spawn(refuse(tcp, peer));
            continue;
        };
        let (builder, limits, router, drain) = (
            builder.clone(),
            limits.clone(),
            router.clone(),
            drain.clone(),
        );
        connections.spawn(async move {
            serve_connection(&builder, &limits, tcp, peer, router, drain).await;
            drop(permit);
        });
    }
    drop(listener);
    drain.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Answers a connection past the limit with a 503 and closes it, never waiting on the peer
/// for long.
async fn refuse(mut tcp: TcpStream, peer: SocketAddr) {
    tracing::warn!(%peer, "connection refused: MANA_LLM_MAX_CONNECTIONS reached");
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(TOO_MANY).await?;
        tcp.shutdown().await
    })
    .await;
}

async fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    limits: &ConnLimits,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    drain: CancellationToken,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(TrackedIo::new(tcp, activity.clone()));
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // Peer addresses let the admin API answer loopback clients only when it has no token.
        request.extensions_mut().insert(ConnectInfo(peer));
        let guard = tracked.start();
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Holding::body(body, guard)))
        }
    });
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    let mut check = Instant::now() + limits.header_timeout.min(limits.idle_timeout);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = drain.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
                check = Instant::now();
            }
            _ = tokio::time::sleep_until(check) => {
                let now = Instant::now();
                if draining {
                    // Nothing in flight and nothing left to flush: an idle connection or a
                    // half-sent head, closed now.
                    if activity.quiet(now) {
                        return;
                    }
                    check = now + Duration::from_millis(20);
                    continue;
                }
                match activity.verdict(now, limits) {
                    Verdict::Keep(next) => check = next,
                    Verdict::Close(reason) => {
                        tracing::debug!(%peer, reason, "closing connection");
                        return;
                    }
                }
            }
        }
    }
}
