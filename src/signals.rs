//! Process signals: SIGTERM/Ctrl-C to stop (SIGHUP, to reload, is the control plane's own:
//! `mana_llm_control_plane::plane`), and serving until they come.
//!
//! Handlers are installed when these functions are *called*, not when a task first runs: a
//! signal that arrives before its handler exists takes the default action, which for both
//! SIGHUP and SIGTERM is to kill the process.

use std::future::Future;

/// Installs the SIGTERM and Ctrl-C handlers now; the returned future completes on the first.
pub fn shutdown() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
}

/// Serves `router` within `limits` until `shutdown` completes, then drains: `before_drain`
/// runs first (stop being ready, stop background work), new connections are refused, idle
/// and half-sent connections close at once, and in-flight requests and streams get up to
/// `drain` to finish; `after_drain` gets what is left of that deadline (to wait for background
/// tasks, close pools). A server that stops before any signal is an error, noticed at once.
pub async fn serve_until<F, A>(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: mana_llm_data_plane::conn::ConnLimits,
    shutdown: F,
    drain: std::time::Duration,
    before_drain: impl FnOnce(),
    after_drain: impl FnOnce(tokio::time::Instant) -> A,
) -> Result<(), String>
where
    F: Future<Output = ()>,
    A: Future<Output = ()>,
{
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(mana_llm_data_plane::run(
        listener,
        router,
        limits,
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
    ));
    let stopped_early = tokio::select! {
        () = shutdown => None,
        exited = &mut server => Some(exited),
    };
    before_drain();
    let deadline = tokio::time::Instant::now() + drain;
    let result = match stopped_early {
        Some(Ok(Ok(()))) => Err("the server stopped before any shutdown signal".to_owned()),
        Some(Ok(Err(e))) => Err(format!("server error: {e}")),
        Some(Err(e)) => Err(format!("server task failed: {e}")),
        None => {
            tracing::info!(
                drain_seconds = drain.as_secs_f64(),
                "shutting down: draining in-flight requests"
            );
            let _ = stop_tx.send(true);
            match tokio::time::timeout_at(deadline, server).await {
                Ok(Ok(Ok(()))) => {
                    tracing::info!("drained; bye");
                    Ok(())
                }
                Ok(Ok(Err(e))) => Err(format!("server error: {e}")),
                Ok(Err(e)) => Err(format!("server task failed: {e}")),
                Err(_) => {
                    tracing::warn!("drain deadline passed; exiting with requests still open");
                    Ok(())
                }
            }
        }
    };
    after_drain(deadline).await;
    result
}
