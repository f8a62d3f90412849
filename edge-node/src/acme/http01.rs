//! HTTP-01 (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` for a host with a live
//! challenge is answered by the node itself, in the accept phase, before any tenant logic: a
//! tenant's function, cache or origin never sees (or fakes) it. A request under the prefix that
//! matches no live challenge goes on as any other request (the tenant may run its own ACME).

use http::{HeaderValue, Method, Response, StatusCode, header};

use super::ChallengeSet;
use crate::body::{self, EdgeBody};
use outpost_config::Timestamp;

/// RFC 8555 §8.3: the path prefix of the validation request.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The token a request path asks for: the one segment after [`PREFIX`], no query.
pub fn token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(PREFIX)?;
    outpost_config::acme_token(token).then_some(token)
}

/// The answer to a GET or HEAD of a live challenge's path on its host: 200 with the key
/// authorization, `application/octet-stream` (RFC 8555 §8.3), never stored by anyone.
pub fn answer(
    set: &ChallengeSet,
    method: &Method,
    host: &str,
    path: &str,
    now: Timestamp,
) -> Option<Response<EdgeBody>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let key_authorization = set.http01(host, token(path)?, now)?;
    tracing::info!(%host, path, "ACME HTTP-01 challenge answered");
    let body = if method == Method::HEAD { body::empty() } else { body::full(key_authorization.as_bytes().to_vec()) };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(key_authorization.len()));
    Some(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http_body_util::BodyExt as _;
    use outpost_config::ChallengeKind;

    use super::*;

    #[tokio::test]
    async fn answers_the_path_of_a_live_challenge_on_its_host() {
        let set = ChallengeSet::build(&[super::super::tests::challenge("tok", "a.test", ChallengeKind::Http01, 10)]);
        let at = Timestamp(5);
        let path = "/.well-known/acme-challenge/tok";
        let resp = answer(&set, &Method::GET, "a.test", path, at).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "tok.thumbprint");
        let rows: [(&Method, &str, &str); 5] = [
            (&Method::POST, "a.test", path),
            (&Method::GET, "b.test", path),
            (&Method::GET, "a.test", "/.well-known/acme-challenge/tok?x=1"),
            (&Method::GET, "a.test", "/.well-known/acme-challenge/tok/x"),
            (&Method::GET, "a.test", "/.well-known/acme-challenge/other"),
        ];
        for (method, host, path) in rows {
            assert!(answer(&set, method, host, path, at).is_none(), "{method} {host}{path}");
        }
        assert!(answer(&set, &Method::HEAD, "a.test", path, at).is_some());
        assert!(answer(&set, &Method::GET, "a.test", path, Timestamp(10)).is_none());
    }
}
