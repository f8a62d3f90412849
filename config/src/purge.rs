//! The purge request, shared by the node's admin API (`POST /purge`) and the control plane.
//!
//! JSON form: `{"service": "shop", "kind": "url"|"prefix"|"tag"|"all", "url": ..., "prefix": ...,
//! "tag": ..., "soft": false}`, flat. serde's `flatten` cannot be combined with
//! `deny_unknown_fields`, so the request goes through a flat wire struct that denies unknown
//! fields and is then checked against its `kind`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A purge: which service, what to remove, and whether to mark stale (soft) or remove (hard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    /// The service; optional for `url` and `prefix` (found from the host), required for `tag`
    /// and `all` (see [`PurgeRequest::check`]).
    pub service: Option<String>,
    /// What to purge; in JSON its fields sit beside `service` and `soft`.
    pub target: PurgeTarget,
    /// `true`: mark as stale, so the next request revalidates and stale-while-revalidate /
    /// stale-if-error still apply. `false` (default): remove.
    pub soft: bool,
}

/// What a purge removes. On its own it (de)serializes as `{"kind": "url", "url": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PurgeTarget {
    /// One URL, all its Vary variants: `"http://shop.example/a?x=1"` or `"shop.example/a?x=1"`
    /// (the scheme is ignored).
    Url { url: String },
    /// Every URL that starts with `"shop.example/images/"` (host and path prefix, scheme
    /// optional).
    Prefix { prefix: String },
    /// Every response tagged with this (`Surrogate-Key` / `Cache-Tag`).
    Tag { tag: String },
    /// Everything in the service.
    All,
}

impl PurgeRequest {
    /// Checks what the JSON shape cannot: `service` is given for `tag` and `all`, and no string
    /// is empty. Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.service.as_deref() == Some("") {
            return Err("\"service\" is empty; name a service or leave it out".to_owned());
        }
        let (kind, value) = match &self.target {
            PurgeTarget::Url { url } => ("url", Some(url)),
            PurgeTarget::Prefix { prefix } => ("prefix", Some(prefix)),
            PurgeTarget::Tag { tag } => ("tag", Some(tag)),
            PurgeTarget::All => ("all", None),
        };
        if value.is_some_and(|v| v.is_empty()) {
            return Err(format!("\"{kind}\" is empty"));
        }
        if matches!(self.target, PurgeTarget::Tag { .. } | PurgeTarget::All) && self.service.is_none() {
            return Err(format!("kind \"{kind}\" needs a \"service\""));
        }
        Ok(())
    }
}

/// The flat JSON form. Named `PurgeRequest` too, so that serde's messages name the type the
/// caller knows.
mod wire {
    use serde::{Deserialize, Serialize};

    use super::PurgeTarget;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct PurgeRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        kind: Kind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        #[serde(default)]
        soft: bool,
    }

    #[derive(Clone, Copy, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Url,
        Prefix,
        Tag,
        All,
    }

    impl PurgeRequest {
        pub(super) fn into_request(self) -> Result<super::PurgeRequest, String> {
            let (name, target) = match self.kind {
                Kind::Url => ("url", self.url.clone().map(|url| PurgeTarget::Url { url })),
                Kind::Prefix => ("prefix", self.prefix.clone().map(|prefix| PurgeTarget::Prefix { prefix })),
                Kind::Tag => ("tag", self.tag.clone().map(|tag| PurgeTarget::Tag { tag })),
                Kind::All => ("all", Some(PurgeTarget::All)),
            };
            let Some(target) = target else {
                return Err(format!("kind \"{name}\" needs a \"{name}\" field"));
            };
            let given = [("url", &self.url), ("prefix", &self.prefix), ("tag", &self.tag)];
            if let Some((field, _)) = given.iter().find(|(field, v)| *field != name && v.is_some()) {
                return Err(format!("\"{field}\" does not apply to kind \"{name}\""));
            }
            Ok(super::PurgeRequest { service: self.service, target, soft: self.soft })
        }

        pub(super) fn from_request(request: &super::PurgeRequest) -> Self {
            let mut wire = PurgeRequest {
                service: request.service.clone(),
                kind: Kind::All,
                url: None,
                prefix: None,
                tag: None,
                soft: request.soft,
            };
            match &request.target {
                PurgeTarget::Url { url } => (wire.kind, wire.url) = (Kind::Url, Some(url.clone())),
                PurgeTarget::Prefix { prefix } => (wire.kind, wire.prefix) = (Kind::Prefix, Some(prefix.clone())),
                PurgeTarget::Tag { tag } => (wire.kind, wire.tag) = (Kind::Tag, Some(tag.clone())),
                PurgeTarget::All => {}
            }
            wire
        }
    }
}

impl<'de> Deserialize<'de> for PurgeRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::PurgeRequest::deserialize(deserializer)?.into_request().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PurgeRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::PurgeRequest::from_request(self).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(service: Option<&str>, target: PurgeTarget, soft: bool) -> PurgeRequest {
        PurgeRequest { service: service.map(str::to_owned), target, soft }
    }

    #[test]
    fn requests_round_trip_through_json() {
        let url = || PurgeTarget::Url { url: "http://shop.example/a?x=1".to_owned() };
        let cases = [
            (
                r#"{"kind":"url","url":"http://shop.example/a?x=1"}"#,
                request(None, url(), false),
                r#"{"kind":"url","url":"http://shop.example/a?x=1","soft":false}"#,
            ),
            (
                r#"{"service":"shop","kind":"all","soft":true}"#,
                request(Some("shop"), PurgeTarget::All, true),
                r#"{"service":"shop","kind":"all","soft":true}"#,
            ),
            (
                r#"{"kind":"prefix","prefix":"shop.example/images/","service":"shop"}"#,
                request(Some("shop"), PurgeTarget::Prefix { prefix: "shop.example/images/".to_owned() }, false),
                r#"{"service":"shop","kind":"prefix","prefix":"shop.example/images/","soft":false}"#,
            ),
            (
                r#"{"service":"shop","kind":"tag","tag":"t","soft":false}"#,
                request(Some("shop"), PurgeTarget::Tag { tag: "t".to_owned() }, false),
                r#"{"service":"shop","kind":"tag","tag":"t","soft":false}"#,
            ),
        ];
        for (input, expected, written) in cases {
            let parsed: PurgeRequest = serde_json::from_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed, expected, "{input}");
            let json = serde_json::to_string(&parsed).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(json, written);
            let again: PurgeRequest = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(again, expected);
        }
    }

    #[test]
    fn malformed_requests_fail_with_a_reason() {
        let cases = [
            (r#"{"kind":"everything"}"#, "unknown variant `everything`"),
            (r#"{"url":"shop.example/a"}"#, "missing field `kind`"),
            (r#"{"kind":"url"}"#, "kind \"url\" needs a \"url\" field"),
            (r#"{"kind":"tag","service":"shop"}"#, "kind \"tag\" needs a \"tag\" field"),
            (r#"{"kind":"url","url":"a","tag":"t"}"#, "\"tag\" does not apply to kind \"url\""),
            (r#"{"kind":"all","prefix":"p"}"#, "\"prefix\" does not apply to kind \"all\""),
            (r#"{"kind":"all","service":"s","hard":true}"#, "unknown field `hard`"),
            (r#"{"kind":"all","soft":"yes"}"#, "invalid type"),
            (r#"{"kind":"url","url":7}"#, "invalid type"),
            (r#"[]"#, "invalid length"),
            (r#""all""#, "expected struct PurgeRequest"),
        ];
        for (input, fragment) in cases {
            match serde_json::from_str::<PurgeRequest>(input) {
                Ok(parsed) => panic!("{input}: accepted as {parsed:?}"),
                Err(e) => assert!(e.to_string().contains(fragment), "{input}: {e}"),
            }
        }
    }

    #[test]
    fn targets_alone_use_the_kind_tag() {
        let target = PurgeTarget::Tag { tag: "t".to_owned() };
        let json = serde_json::to_string(&target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json, r#"{"kind":"tag","tag":"t"}"#);
        let all: PurgeTarget = serde_json::from_str(r#"{"kind":"all"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all, PurgeTarget::All);
        assert!(serde_json::from_str::<PurgeTarget>(r#"{"kind":"bogus"}"#).is_err());
    }

    #[test]
    fn check_requires_a_service_for_tag_and_all() {
        let tag = || PurgeTarget::Tag { tag: "t".to_owned() };
        let url = |u: &str| PurgeTarget::Url { url: u.to_owned() };
        let cases = [
            (request(None, url("shop.example/a"), false), Ok(())),
            (request(Some("shop"), tag(), true), Ok(())),
            (request(Some("shop"), PurgeTarget::All, false), Ok(())),
            (request(None, tag(), false), Err("kind \"tag\" needs a \"service\"")),
            (request(None, PurgeTarget::All, false), Err("kind \"all\" needs a \"service\"")),
            (request(None, url(""), false), Err("\"url\" is empty")),
            (request(Some(""), url("a/b"), false), Err("\"service\" is empty")),
        ];
        for (request, expected) in cases {
            match (request.check(), expected) {
                (Ok(()), Ok(())) => {}
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{request:?}: {message}")
                }
                (got, _) => panic!("{request:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
