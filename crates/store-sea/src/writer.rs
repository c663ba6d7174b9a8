//! Write transactions on a thread of their own (SQLite files).
//!
//! A SQLite file has one writer connection, held from a transaction's `BEGIN` to its `COMMIT`.
//! Each statement in between is a round trip from the task that runs the transaction to the
//! connection's thread and back, and the way back waits for that task's turn on its executor:
//! under load, behind every request that the server's workers have ready. The writer then sat
//! idle most of the time it was held (a profile of the load script's mix had its thread busy
//! for a seventh of the time while edits queued for it for hundreds of milliseconds).
//! [`WriterThread`] is a single-threaded runtime on a thread of the store's, with nothing else
//! to do: a transaction run there ([`crate::SeaStore::on_writer`]) is polled as soon as each
//! statement answers.
//!
//! A transaction started there runs to its end even if the caller stops waiting (a client that
//! hangs up): it commits or rolls back whole, as before; only the answer is lost. Stopping the
//! thread ([`WriterThread::stop`], from `SeaStore::close`) drops what is still running there,
//! which rolls it back.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::own_thread::OwnThread;

/// The writer's runtime and its thread; stops (without waiting) when dropped.
#[derive(Debug)]
pub(crate) struct WriterThread {
    handle: Handle,
    /// The thread; the sender's drop ends its runtime.
    own: OwnThread<oneshot::Sender<()>>,
}

impl WriterThread {
    /// Starts the thread.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handle) = std::sync::mpsc::channel::<std::io::Result<Handle>>();
        // The runtime is built, run and dropped on its thread alone (dropping it in an async
        // context would panic).
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let rt = match Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(rt.handle().clone()));
                // Runs the spawned transactions until the stop sender is dropped.
                rt.block_on(async move {
                    let _ = stopped.await;
                });
            })?;
        let handle = handle
            .recv()
            .map_err(|_| std::io::Error::other("the writer thread ended at its start"))??;
        Ok(Self {
            handle,
            own: OwnThread::new(stop, thread),
        })
    }

    /// Runs `work` on the thread and waits for its result; `None` if it did not complete (it
    /// panicked, or the thread stopped).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        use tracing::Instrument as _;
        // Under the caller's span, so that what the transaction logs names its request.
        self.handle.spawn(work.in_current_span()).await.ok()
    }

    /// Starts `work` on the thread without waiting for it.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        use tracing::Instrument as _;
        drop(self.handle.spawn(work.in_current_span()));
    }

    /// Stops the runtime (transactions still running there are dropped, which rolls them back)
    /// and waits for the thread.
    pub(crate) fn stop(&self) {
        self.own.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_writer_thread_and_a_panic_is_no_answer() {
        let w = WriterThread::start().unwrap();
        let name = w
            .run(async { std::thread::current().name().map(str::to_owned) })
            .await;
        assert_eq!(name, Some(Some("sqlite-writer".to_owned())));
        let (tx, rx) = oneshot::channel();
        w.spawn(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        assert_eq!(rx.await.unwrap().as_deref(), Some("sqlite-writer"));
        let panicked: Option<()> = w.run(async { panic!("in the transaction") }).await;
        assert_eq!(panicked, None);
        // Still running after a panic.
        assert_eq!(w.run(async { 7 }).await, Some(7));
        w.stop();
        assert_eq!(w.run(async { 8 }).await, None, "stopped");
    }

    #[tokio::test]
    async fn work_goes_on_when_its_caller_stops_waiting() {
        let w = WriterThread::start().unwrap();
        let (go, wait) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel::<u32>();
        let caller = w.run(async move {
            let _ = wait.await;
            let _ = done.send(5);
        });
        // The caller gives up (a client hanging up) before the work can finish.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), caller)
                .await
                .is_err()
        );
        go.send(()).unwrap();
        assert_eq!(finished.await.unwrap(), 5);
    }
}
