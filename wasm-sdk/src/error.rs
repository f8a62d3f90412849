//! Errors a handler meets, each knowing the status it becomes when the handler returns it.
//!
//! A handler returns `Result<Response, Error>` and uses `?` freely: [`Error::status`] picks the
//! status (413 for a client body over its cap, 502 for a backend that failed, 504 for one that
//! timed out, ...) and the SDK answers with the node's error body, `"<code> <reason>\n<what>\n
//! request-id: <id>\n"`, and one line on stderr, which the node logs with the request id.

use std::fmt;

use http::StatusCode;

use crate::fetch::FetchError;

/// Who sent a body: decides whose fault a bad one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySource {
    /// The client's request body.
    Client,
    /// A backend's response body.
    Backend,
    /// A body the function made.
    Function,
}

/// Everything that can go wrong in a handler. See the [module docs](self).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// A body was longer than its cap ([`crate::Body::with_limit`]).
    BodyTooLarge { source: BodySource, limit: u64 },
    /// A body could not be read as asked (e.g. not UTF-8).
    InvalidBody { source: BodySource, reason: &'static str },
    /// Reading or writing a body failed (the peer went away, the host refused).
    Io { source: BodySource, message: String },
    /// A backend fetch failed.
    Fetch(FetchError),
    /// The handler's own answer: `status` with `message` as the error body's middle line.
    Status { status: StatusCode, message: String },
}

impl Error {
    /// An error that answers `status` with `message` (one line) in the body.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Status { status, message: message.into() }
    }

    /// The status the client gets for this error.
    pub fn to_status(&self) -> StatusCode {
        match self {
            Error::BodyTooLarge { source: BodySource::Client, .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::InvalidBody { source: BodySource::Client, .. } | Error::Io { source: BodySource::Client, .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::BodyTooLarge { source: BodySource::Backend, .. }
            | Error::InvalidBody { source: BodySource::Backend, .. }
            | Error::Io { source: BodySource::Backend, .. } => StatusCode::BAD_GATEWAY,
            Error::BodyTooLarge { source: BodySource::Function, .. }
            | Error::InvalidBody { source: BodySource::Function, .. }
            | Error::Io { source: BodySource::Function, .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Fetch(e) => e.to_status(),
            Error::Status { status, .. } => *status,
        }
    }
}

impl fmt::Display for BodySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodySource::Client => "request body",
            BodySource::Backend => "backend response body",
            BodySource::Function => "function's body",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BodyTooLarge { source, limit } => write!(f, "{source}: larger than the limit of {limit} bytes"),
            Error::InvalidBody { source, reason } => write!(f, "{source}: {reason}"),
            Error::Io { source, message } => write!(f, "{source}: {message}"),
            Error::Fetch(e) => e.fmt(f),
            Error::Status { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Fetch(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Self {
        Error::Fetch(e)
    }
}

/// Building a message the function wrote (a URI, a header) failed: the function's fault, 500.
macro_rules! building_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::status(StatusCode::INTERNAL_SERVER_ERROR, format!("building a message: {e}"))
            }
        }
    )*};
}
building_error!(
    http::Error,
    http::uri::InvalidUri,
    http::header::InvalidHeaderValue,
    http::header::InvalidHeaderName,
    crate::cache::InvalidSurrogateKey
);

/// The node's error body: status line, one line saying what (when there is something to say),
/// the request id (when the host sent one).
pub(crate) fn error_body(status: StatusCode, message: &str, request_id: Option<&str>) -> String {
    let mut body = format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    // One line only: the client sees it, so keep the host's body format intact.
    let line = message.lines().next().unwrap_or("").trim();
    if !line.is_empty() {
        body.push_str(line);
        body.push('\n');
    }
    if let Some(id) = request_id {
        body.push_str("request-id: ");
        body.push_str(id);
        body.push('\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_the_status_of_whose_fault_it_is() {
        let table: &[(Error, u16)] = &[
            (Error::BodyTooLarge { source: BodySource::Client, limit: 1 }, 413),
            (Error::BodyTooLarge { source: BodySource::Backend, limit: 1 }, 502),
            (Error::BodyTooLarge { source: BodySource::Function, limit: 1 }, 500),
            (Error::InvalidBody { source: BodySource::Client, reason: "not UTF-8" }, 400),
            (Error::InvalidBody { source: BodySource::Backend, reason: "not UTF-8" }, 502),
            (Error::Io { source: BodySource::Client, message: "reset".into() }, 400),
            (Error::Io { source: BodySource::Backend, message: "reset".into() }, 502),
            (Error::Io { source: BodySource::Function, message: "closed".into() }, 500),
            (Error::Fetch(FetchError::Denied { backend: "x".into() }), 502),
            (Error::Fetch(FetchError::Timeout { backend: "x".into(), code: "t".into() }), 504),
            (Error::Fetch(FetchError::Invalid { backend: "x".into(), reason: "r".into() }), 500),
            (Error::status(StatusCode::FORBIDDEN, "no"), 403),
        ];
        for (err, status) in table {
            assert_eq!(err.to_status().as_u16(), *status, "{err:?}");
        }
    }

    #[test]
    fn the_error_body_has_one_message_line_and_the_request_id() {
        assert_eq!(
            error_body(StatusCode::FORBIDDEN, "bad token\nsecret detail", Some("r-1")),
            "403 Forbidden\nbad token\nrequest-id: r-1\n"
        );
        assert_eq!(error_body(StatusCode::BAD_GATEWAY, "", None), "502 Bad Gateway\n");
    }
}
