//! `[logging]`: the log format and filter, and the process's log writer.

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigProblem, Problems, Section};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSettings {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `steward=debug,actix_web=info`.
    pub level: String,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        LoggingSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Section for LoggingSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            p.add("level", e.to_string());
        }
        p.into_vec()
    }
}

/// Log lines go through a writer thread, so a slow reader of stderr (a full pipe, a busy
/// journal) never stalls a scoring request; past 128k waiting lines, lines are dropped rather
/// than wait. The guard flushes on exit and must live as long as the process. `STEWARD_LOG`
/// overrides `level`.
pub fn init(s: &LoggingSettings) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&s.level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match s.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}
