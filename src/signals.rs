//! Process signals: SIGTERM/Ctrl-C to stop, SIGHUP to reload.
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

/// Installs the SIGHUP handler now, then runs `on_hangup` for every SIGHUP, one at a time.
pub fn on_hangup<F, Fut>(on_hangup: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reloads by signal are off");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                on_hangup().await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = on_hangup;
}

/// Serves `router` within `limits` until `shutdown` completes, then drains: `before_drain`
/// runs first (stop being ready, stop background work), new connections are refused, idle
/// and half-sent connections close at once, and in-flight requests and streams get up to
/// `drain` to finish.
pub async fn serve_until<F>(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: mana_llm_data_plane::conn::ConnLimits,
    shutdown: F,
    drain: std::time::Duration,
    before_drain: impl FnOnce(),
) -> Result<(), String>
where
    F: Future<Output = ()>,
{
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(mana_llm_data_plane::run(
        listener,
        router,
        limits,
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
    ));
    shutdown.await;
    before_drain();
    tracing::info!(
        drain_seconds = drain.as_secs_f64(),
        "shutting down: draining in-flight requests"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(drain, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained; bye"),
        Ok(Ok(Err(e))) => return Err(format!("server error: {e}")),
        Ok(Err(e)) => return Err(format!("server task failed: {e}")),
        Err(_) => tracing::warn!("drain deadline passed; exiting with requests still open"),
    }
    Ok(())
}
