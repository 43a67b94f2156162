//! SIGTERM/SIGINT for the long-running commands (`sensor`, `simulate`, `consume`): a thread that
//! sets a stop flag, so the main loop finishes its batch, flushes and exits cleanly.

use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set `stop` on the first SIGTERM or SIGINT. The handlers are registered before this returns, so
/// a signal sent right after start-up is not lost.
pub fn spawn_signal_thread(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the signal handler")?;
    let (mut term, mut int) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    })?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        stop.store(true, Ordering::SeqCst);
    })?;
    Ok(())
}
