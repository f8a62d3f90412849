//! The one way into the transform · cache · upstream · store phases. A client's request enters
//! here once it is accepted and routed ([`crate::pipeline`]); an edge function's backend fetch
//! enters here too ([`crate::function`]), so a function's fetches are transformed, cached,
//! collapsed and routed through the shields exactly as a client's request for the same object.
//!
//! [`Delivery`] is the small handle the function host holds instead of the whole node state:
//! the node's name (for `Via` and forwarding fields), its cache and its transform budgets.

use std::sync::Arc;

use http::Request;

use crate::body::EdgeBody;
use crate::cache::Cache;
use crate::cache::serve::Served;
use crate::ctx::RequestCtx;
use crate::error::EdgeError;
use crate::service::CompiledService;
use crate::transform::Transforms;
use crate::transform::compress::budget::Codecs;
use crate::transform::image::Transcoder;
use crate::upstream::ForwardInfo;

/// What every delivery on this node shares: built once at start.
pub struct Delivery {
    node: Arc<str>,
    cache: Arc<Cache>,
    /// The node's image transcoding slots, shared by every service.
    transcoder: Arc<Transcoder>,
    /// Compression and decompression slots and memory (`limits.max_concurrent_encodes`,
    /// `limits.max_codec_memory`), node-wide, and the bases known to decode past their bound.
    encodes: Arc<Codecs>,
}

impl Delivery {
    pub fn new(node: Arc<str>, cache: Arc<Cache>, transcoder: Arc<Transcoder>, encodes: Arc<Codecs>) -> Self {
        Self { node, cache, transcoder, encodes }
    }

    /// This node's name, as `Cache-Status` and `Via` carry it.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// `req`, routed to `svc` under `host`, through transform, cache, upstream and store.
    /// The forwarding facts come from the request's connection (`ctx.conn`).
    pub async fn serve(
        &self,
        svc: &Arc<CompiledService>,
        host: &str,
        req: Request<EdgeBody>,
        ctx: &mut RequestCtx,
    ) -> Result<Served, EdgeError> {
        let peer = ctx.conn.peer.ip();
        let fwd = ForwardInfo { client_ip: peer, host, tls: ctx.conn.tls, node: &self.node, trusted: svc.trusts(peer) };
        let transforms = Transforms {
            cache: &self.cache,
            transcoder: &self.transcoder,
            encodes: &self.encodes,
            svc,
            host,
            fwd: &fwd,
        };
        transforms.serve(req, ctx).await
    }
}
