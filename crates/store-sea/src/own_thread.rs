//! A thread of the store's own (the WAL checkpointer, the SQLite writer) that runs until the
//! sending half of its stop channel is gone.

use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

/// The thread and the sender whose drop stops it; dropping this stops the thread without
/// waiting for it.
#[derive(Debug)]
pub(crate) struct OwnThread<S> {
    stop: Mutex<Option<S>>,
    pub(crate) thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S> OwnThread<S> {
    /// `thread`, which ends once `stop` is dropped.
    pub(crate) const fn new(stop: S, thread: JoinHandle<()>) -> Self {
        Self {
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Drops the stop sender and waits for the thread. Blocks.
    pub(crate) fn stop(&self) {
        drop(
            self.stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            // A panic in the thread has nothing left to clean up.
            let _ = t.join();
        }
    }
}
