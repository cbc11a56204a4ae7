//! Errors of the alerting crate.

use thiserror::Error;

/// An error that stops alerting as a whole (configuration, bus).
#[derive(Debug, Error)]
pub enum AlertingError {
    /// The configuration has problems; each is `(key, message)`.
    #[error("alerting configuration: {}", format_problems(.0))]
    Config(Vec<(String, String)>),
    /// A notifier could not be built from its configuration.
    #[error("receiver {receiver:?}, {integration}: {message}")]
    Notifier {
        /// Receiver name.
        receiver: String,
        /// Integration (`webhook`, `email`).
        integration: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The persisted silences could not be read.
    #[error("silences: {0}")]
    Silences(String),
    /// The saved notification log and acknowledgements could not be read.
    #[error("alerting state: {0}")]
    State(String),
    /// The outbox directory could not be created or read.
    #[error("outbox: {0}")]
    Outbox(String),
    /// The `alertmanager_config` file cannot be used.
    #[error("alertmanager_config: {0}")]
    Alertmanager(#[from] crate::alertmanager::AlertmanagerError),
    /// The bus failed in a way that cannot be retried.
    #[error("bus: {0}")]
    Bus(#[from] vigie_bus::BusError),
}

fn format_problems(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(k, m)| format!("{k}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An error while sending one notification.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The receiving server answered with a non-2xx status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The request could not be sent or the answer not read
    /// (connection refused, timeout, ...).
    #[error("transport: {0}")]
    Transport(String),
    /// The SMTP server refused the message or the conversation failed.
    #[error("smtp: {message}")]
    Smtp {
        /// The server's or the client's message.
        message: String,
        /// False for permanent (5xx) SMTP errors.
        retriable: bool,
    },
    /// The notification could not be built (bad address, header, ...).
    #[error("building the notification: {0}")]
    Build(String),
    /// The TLS handshake failed (untrusted or expired certificate, wrong
    /// name, no STARTTLS although `require_tls`, ...).
    #[error("TLS: {message}")]
    Tls {
        /// What failed, e.g. `invalid peer certificate: UnknownIssuer`.
        message: String,
        /// False when the server's certificate was refused or STARTTLS is
        /// missing: only a configuration change helps.
        retriable: bool,
    },
    /// The SMTP server refused to authenticate (wrong user or password, no
    /// common mechanism).
    #[error("smtp auth: {message}")]
    Auth {
        /// The server's answer.
        message: String,
        /// True only for temporary refusals (4xx).
        retriable: bool,
    },
}

impl NotifyError {
    /// Whether trying again later may succeed: 5xx/429 answers, transport
    /// failures and transient SMTP errors are retriable; 4xx answers,
    /// permanent SMTP errors and build errors are not.
    pub fn retriable(&self) -> bool {
        match self {
            NotifyError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            NotifyError::Transport(_) => true,
            NotifyError::Smtp { retriable, .. }
            | NotifyError::Tls { retriable, .. }
            | NotifyError::Auth { retriable, .. } => *retriable,
            NotifyError::Build(_) => false,
        }
    }

    /// A short label for the `reason` label of the failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            NotifyError::Http { status, .. } if *status >= 500 => "http_5xx",
            NotifyError::Http { .. } => "http_4xx",
            NotifyError::Transport(_) => "transport",
            NotifyError::Smtp { .. } => "smtp",
            NotifyError::Build(_) => "build",
            NotifyError::Tls { .. } => "tls",
            NotifyError::Auth { .. } => "auth",
        }
    }
}
