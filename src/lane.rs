//! A lane for work that can wait: one thread, below the HTTP workers' CPU priority, that runs
//! the CPU-bound part of telemetry pushes (parsing a body, building the next cluster view).
//!
//! Scheduler callouts sit on Nova's boot path; pushes are answered to agents that retry and
//! never block a boot. On the same cores, a push parsed on an HTTP worker delays every callout
//! queued on that worker, and the kernel shares the cores between callouts and pushes alike.
//! On the lane, a push's CPU work runs on a thread of its own at a higher nice value (Linux:
//! nice is a thread attribute), so the kernel gives a callout the core first and the push
//! waits, not the boot. With idle cores the lane runs at full speed.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

use tokio::sync::oneshot;

type Task = Box<dyn FnOnce() + Send>;

/// Runs closures in order on the lane's thread. Cheap to clone; the thread ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Lane {
    tasks: mpsc::Sender<Task>,
}

impl Lane {
    /// Start the lane's thread `nice` steps below the caller's priority (0..=19; 0 runs it at
    /// the workers' priority). If no thread can be started, the lane runs work on the
    /// caller's thread, and says so once.
    pub fn start(name: &str, nice: i32) -> Lane {
        let (tasks, rx) = mpsc::channel::<Task>();
        let started = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                lower_priority(nice);
                for task in rx {
                    // `run` hands its panics back to its caller; nothing may end the lane.
                    let _ = panic::catch_unwind(AssertUnwindSafe(task));
                }
            });
        if let Err(e) = started {
            tracing::warn!(lane = name, error = %e, "cannot start a thread for the lane; its work runs on the HTTP workers");
        }
        Lane { tasks }
    }

    /// Run `work` on the lane without waiting for it (dropping what a caller is done with).
    pub fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        if let Err(mpsc::SendError(task)) = self.tasks.send(Box::new(work)) {
            task();
        }
    }

    /// Run `work` on the lane and wait for it without holding the caller's thread. A panic in
    /// `work` resumes in the caller, as if it had run there.
    pub async fn run<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let task: Task = Box::new(move || {
            let _ = done.send(panic::catch_unwind(AssertUnwindSafe(work)));
        });
        if let Err(mpsc::SendError(task)) = self.tasks.send(task) {
            // No lane thread (it could not start; tasks never unwind into it, so nothing
            // else stops it): run the work here rather than lose it.
            task();
        }
        let outcome = answer
            .await
            .expect("the lane runs every task it takes, and a task always answers");
        match outcome {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}

/// Raise this thread's nice value by `nice` over the one it started with (capped at 19), so
/// the lane stays below the workers wherever steward's own nice value is; a failure only
/// logs, since the lane still works at the workers' priority.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, getpriority and setpriority take and return plain integers;
        // PRIO_PROCESS with a thread id reads or changes only that thread on Linux.
        // getpriority may return -1 as a value, so failure is told by errno.
        let rc = unsafe {
            let tid = libc::gettid() as libc::id_t;
            *libc::__errno_location() = 0;
            let started = libc::getpriority(libc::PRIO_PROCESS, tid);
            if started == -1 && *libc::__errno_location() != 0 {
                -1
            } else {
                libc::setpriority(libc::PRIO_PROCESS, tid, (started + nice).min(19))
            }
        };
        if rc != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "cannot lower the telemetry lane's priority; it runs at the workers' priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::debug!(nice, "thread priorities are set on Linux only");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn work_runs_in_order_on_the_lanes_own_thread() {
        let lane = Lane::start("test-lane", 0);
        let here = std::thread::current().id();
        let (first, second) = block_on(async {
            let a = lane.run(|| {
                (
                    std::thread::current().id(),
                    std::thread::current().name().map(String::from),
                )
            });
            let b = lane.run(|| std::thread::current().id());
            (a.await, b.await)
        });
        assert_ne!(first.0, here, "the work left the caller's thread");
        assert_eq!(first.1.as_deref(), Some("test-lane"));
        assert_eq!(first.0, second, "one thread serves the lane");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_lane_runs_below_the_callers_priority() {
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let caller = own();
        let lane = Lane::start("test-lane", 10);
        let on_lane = block_on(lane.run(own));
        assert_eq!(
            on_lane,
            (caller + 10).min(19),
            "the lane's thread is 10 steps below"
        );
        assert_eq!(own(), caller, "the caller's thread keeps its priority");
    }

    #[test]
    fn a_panic_on_the_lane_resumes_in_the_caller_and_the_lane_goes_on() {
        let lane = Lane::start("test-lane", 0);
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            block_on(lane.run(|| -> u8 { panic!("boom") }))
        }));
        assert!(caught.is_err(), "the caller sees the panic");
        assert_eq!(block_on(lane.run(|| 7)), 7, "the lane still serves");
    }
}
