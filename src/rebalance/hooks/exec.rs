//! The exec hook: run a configured command (argv templates, no shell) at drain and at rejoin.
//! Exit status 0 is success; anything else, or running past the timeout, fails the step with
//! the command's last words on stderr. The command runs in a process group of its own on the
//! async runtime; the whole group is killed when the command ends or times out, so nothing
//! it started (a grandchild holding stderr) outlives the step or holds up the runtime.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};

use super::settings::ExecHookSettings;
use super::{snippet, BoxFuture, Escape, Hook, HookContext, HookError};

/// How much of stderr is kept for the error message.
const STDERR_CAP: u64 = 64 * 1024;
/// How long stderr may still be read once the group is gone (something that left the group
/// with setsid may hold it).
const STDERR_GRACE: Duration = Duration::from_secs(1);

pub struct Exec {
    name: String,
    drain: Vec<String>,
    rejoin: Vec<String>,
    timeout: Duration,
}

/// Kills the process group it names when dropped: on every way out of a step, the
/// future's cancellation (shutdown) included.
struct Group(Option<i32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: killpg only sends a signal; pgid is the group this hook's child leads.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Exec {
    pub fn new(s: &ExecHookSettings) -> Self {
        Exec {
            name: s.name.clone(),
            drain: s.drain.clone(),
            rejoin: s.rejoin.clone(),
            timeout: Duration::from_secs_f64(s.timeout_seconds),
        }
    }

    async fn run(&self, argv: &[String], ctx: &HookContext, step: &str) -> Result<(), HookError> {
        if argv.is_empty() {
            return Ok(());
        }
        // Each value becomes (part of) one argv element; no shell ever parses it.
        let args: Vec<String> = argv
            .iter()
            .map(|a| ctx.render(a, &ctx.vm_name, Escape::Verbatim))
            .collect::<Result<_, _>>()?;
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                HookError(format!(
                    "exec hook {:?} ({step}): cannot run {:?}: {e}; check rebalance.hooks.exec",
                    self.name, args[0]
                ))
            })?;
        let mut group = Group(child.id().map(|pid| pid as i32));
        let mut stderr = child.stderr.take();
        let mut err = Vec::new();
        let status = wait_reading(&mut child, stderr.as_mut(), &mut err, self.timeout).await;
        // The command is done (or out of time): nothing it started may go on.
        group.kill();
        if status.is_none() {
            let _ = child.wait().await;
        }
        if let Some(e) = stderr.as_mut() {
            let _ = tokio::time::timeout(STDERR_GRACE, read_capped(e, &mut err)).await;
        }
        let err = String::from_utf8_lossy(&err);
        match status {
            None => Err(HookError(format!(
                "exec hook {:?} ({step}) for server {}: {:?} still ran after {:.1} s and was \
                 killed with its process group; raise its timeout_seconds or make it faster: {}",
                self.name,
                ctx.vm,
                args[0],
                self.timeout.as_secs_f64(),
                snippet(err.trim())
            ))),
            Some(Ok(s)) if s.success() => Ok(()),
            Some(Ok(s)) => Err(HookError(format!(
                "exec hook {:?} ({step}) for server {}: {:?} {}: {}",
                self.name,
                ctx.vm,
                args[0],
                describe(s),
                snippet(err.trim())
            ))),
            Some(Err(e)) => Err(HookError(format!(
                "exec hook {:?} ({step}): waiting for {:?} failed: {e}",
                self.name, args[0]
            ))),
        }
    }
}

/// Wait for the child to exit within `timeout`, reading stderr meanwhile so a chatty command
/// never blocks on a full pipe. `None` when the time ran out.
async fn wait_reading(
    child: &mut Child,
    mut stderr: Option<&mut ChildStderr>,
    err: &mut Vec<u8>,
    timeout: Duration,
) -> Option<std::io::Result<ExitStatus>> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            status = child.wait() => return Some(status),
            _ = &mut deadline => return None,
            n = async { stderr.as_mut().unwrap().read(&mut buf).await }, if stderr.is_some() => {
                match n {
                    Ok(n) if n > 0 => {
                        let room = (STDERR_CAP as usize).saturating_sub(err.len());
                        err.extend_from_slice(&buf[..n.min(room)]);
                    }
                    _ => stderr = None,
                }
            }
        }
    }
}

async fn read_capped(stderr: &mut ChildStderr, err: &mut Vec<u8>) {
    let room = STDERR_CAP.saturating_sub(err.len() as u64);
    let _ = stderr.take(room).read_to_end(err).await;
}

fn describe(s: ExitStatus) -> String {
    match s.signal() {
        Some(sig) => format!("was killed by signal {sig}"),
        None => format!("exited with {s}"),
    }
}

impl Hook for Exec {
    fn name(&self) -> &str {
        &self.name
    }

    fn drain<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(self.run(&self.drain, ctx, "drain"))
    }

    fn rejoin<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(self.run(&self.rejoin, ctx, "rejoin"))
    }
}
