//! The exec hook: run a configured command (argv templates, no shell) at drain and at rejoin.
//! Exit status 0 is success; anything else, or running past the timeout (the command is then
//! killed), fails the step with the command's last words on stderr.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::settings::ExecHookSettings;
use super::{snippet, BoxFuture, Hook, HookContext, HookError};

pub struct Exec {
    name: String,
    drain: Vec<String>,
    rejoin: Vec<String>,
    timeout: Duration,
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
        let args: Vec<String> = argv
            .iter()
            .map(|a| ctx.render(a, &ctx.vm_name, false))
            .collect::<Result<_, _>>()?;
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                HookError(format!(
                    "exec hook {:?} ({step}): cannot run {:?}: {e}; check rebalance.hooks.exec",
                    self.name, args[0]
                ))
            })?;
        // Read stderr on a thread of its own, so a chatty command never blocks on a full pipe.
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HookError(format!(
                        "exec hook {:?} ({step}) for server {}: {:?} still ran after {:.0} s and \
                         was killed; raise its timeout_seconds or make it faster",
                        self.name,
                        ctx.vm,
                        args[0],
                        self.timeout.as_secs_f64()
                    )));
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => {
                    return Err(HookError(format!(
                        "exec hook {:?} ({step}): waiting for {:?} failed: {e}",
                        self.name, args[0]
                    )))
                }
            }
        };
        let err = reader.join().unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(HookError(format!(
                "exec hook {:?} ({step}) for server {}: {:?} exited with {status}: {}",
                self.name,
                ctx.vm,
                args[0],
                snippet(err.trim())
            )))
        }
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
