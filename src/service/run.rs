//! `voc serve`'s sequence: connect, migrate, prepare, listen, and shut down gracefully on
//! Ctrl-C or SIGTERM, letting requests in flight finish within the grace period.

use super::{AppState, ServiceSettings};
use anyhow::Context;

/// Runs the service until Ctrl-C or SIGTERM, answering with the router `routes` builds (the
/// caller passes `api::app`, so that imports run api → service and not back).
pub async fn serve(
    settings: ServiceSettings,
    routes: fn(AppState) -> axum::Router,
) -> anyhow::Result<()> {
    let pool = crate::store::connect_lazy(&settings.database).context("database URL")?;
    crate::store::migrate(&pool)
        .await
        .context("cannot apply the database migrations (is DATABASE_URL right and Postgres up?)")?;
    let (state, worker) = super::prepare(&settings, pool).await?;
    let background = super::start_background(&state, &settings);
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let addr = listener.local_addr()?;
    // Registered before anyone can learn the port: a SIGTERM sent right after the
    // "listening" line must shut down gracefully, not kill the process.
    let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
    tracing::info!(%addr, "listening");
    // Scripts and tests read this line to learn the port.
    println!("listening on http://{addr}");
    let app = routes(state.clone());
    let grace = settings.shutdown_grace;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = super::http::serve(listener, app, settings.connections.clone(), async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(());
    });
    let server = tokio::spawn(server);
    tokio::select! {
        r = server => {
            r.context("server task")?.context("server")?;
            for task in &background {
                task.abort();
            }
            crate::learning::scheduler::abandon_own_runs(&state.pool).await;
            drop(state);
            // The app (and its pipeline handles) are gone; the worker finishes and stops.
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
            Ok(())
        }
        _ = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("grace period over; stopping with requests still in flight");
            crate::learning::scheduler::abandon_own_runs(&state.pool).await;
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM, with the handlers installed now (a handler installed only when the
/// future is first polled leaves a window in which the default action kills the process).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
