//! What ends a session with the control plane. Each error names the step it happened in
//! (`register`, `stream`, `ack`, `apply`), so a log line reads like the route the agent took:
//! `stream: no line for 15s (heartbeat timeout)`.

use std::time::Duration;

use http::StatusCode;

use super::apply::ProtocolError;
use super::state_file::StateFileError;
use crate::cache::purge::PurgeLogError;
use crate::reload::ReloadError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control plane cannot be reached (refused, DNS, TLS, reset).
    #[error("{step}: {message}")]
    Unreachable { step: &'static str, message: String },
    #[error("{step}: no answer within {after:?}")]
    Timeout { step: &'static str, after: Duration },
    /// The control plane answered with an error status; `message` is its error message.
    #[error("{step}: {status}: {message}")]
    Refused { step: &'static str, status: StatusCode, message: String },
    /// An answer or a stream line that is not what the protocol says.
    #[error("{step}: {message}")]
    Protocol { step: &'static str, message: String },
    #[error("stream: no line for {0:?} (heartbeat timeout)")]
    Silent(Duration),
    #[error("stream: the control plane closed it")]
    Ended,
    #[error("stream: {0}")]
    Order(#[from] ProtocolError),
    #[error("control.token_file: {0}")]
    Token(String),
    #[error("state file {0}")]
    State(#[from] StateFileError),
    #[error("apply: {0}")]
    Purge(#[from] PurgeLogError),
    #[error("apply: {0}")]
    Reload(#[from] ReloadError),
}

impl AgentError {
    /// A token or permission problem: the operator must fix the config, so it is logged as an
    /// error rather than a warning (the agent still retries, with backoff).
    pub fn is_auth(&self) -> bool {
        matches!(self, AgentError::Refused { status, .. } if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
            || matches!(self, AgentError::Token(_))
    }
}
