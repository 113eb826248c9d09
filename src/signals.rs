//! Process signals: SIGTERM/Ctrl-C to stop, SIGHUP to reload.

use std::future::Future;

/// Completes on the first SIGTERM or Ctrl-C.
pub async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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

/// Runs `on_hangup` for every SIGHUP, one at a time, for the life of the process.
pub fn on_hangup<F, Fut>(on_hangup: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reloads by signal are off");
            return;
        };
        while hangups.recv().await.is_some() {
            on_hangup().await;
        }
    });
    #[cfg(not(unix))]
    let _ = on_hangup;
}
