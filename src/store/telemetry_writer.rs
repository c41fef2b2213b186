//! Group commit for pushed telemetry. A push is answered only once its samples are written
//! (what steward accepted survives a restart), but each commit costs a sync to disk: one
//! transaction per push caps a whole estate's pushes at one disk's syncs per second, however
//! many cores steward has. Here pushes that arrive while a commit runs wait for the next one
//! and share it: every push still waits for its own samples to be durable, and the database
//! sees one transaction per sync, whatever the push rate.
//!
//! A batch the database refuses is written again push by push, so each push gets its own
//! answer and one bad push never fails its neighbours.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, TelemetryRows};
use crate::telemetry::{HostSample, VmSample};

/// Pushes one commit takes at most; the rest wait for the next.
const MAX_BATCH: usize = 256;
/// Pushes waiting for a commit before a new push waits for room (backpressure, not memory).
const QUEUE: usize = 4096;

/// One push's samples and when steward received them.
#[derive(Debug)]
pub struct Push {
    pub hosts: Vec<HostSample>,
    pub vms: Vec<VmSample>,
    pub now: f64,
}

impl Push {
    fn rows(&self) -> TelemetryRows<'_> {
        TelemetryRows {
            hosts: &self.hosts,
            vms: &self.vms,
            now: self.now,
        }
    }
}

struct Job {
    push: Arc<Push>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Writes pushed samples, sharing commits between concurrent pushes. Cheap to clone.
#[derive(Clone)]
pub struct TelemetryWriter {
    jobs: mpsc::Sender<Job>,
}

impl TelemetryWriter {
    /// Start the writer on the current runtime; it stops when every handle is dropped.
    pub fn spawn(store: Store) -> TelemetryWriter {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        TelemetryWriter { jobs }
    }

    /// Write one push's samples; returns once they are committed.
    pub async fn save(&self, push: Arc<Push>) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { push, done })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<TelemetryRows<'_>> = batch.iter().map(|j| j.push.rows()).collect();
        let shared = store.save_telemetry_batch(&rows).await;
        drop(rows);
        match shared {
            Ok(()) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                let job = batch.pop().expect("one job");
                let _ = job.done.send(Err(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, pushes = batch.len(),
                    "a shared telemetry commit failed; writing its pushes one by one");
                for job in batch.drain(..) {
                    let alone = store.save_telemetry_batch(&[job.push.rows()]).await;
                    let _ = job.done.send(alone);
                }
            }
        }
    }
}
