//! Networks: [`Cidr`], and the networks a tenant's upstream may not be in ([`tenant`]), shared
//! by the control plane (which judges what a tenant writes) and the nodes (which judge what a
//! name resolves to when they connect).

mod cidr;
pub mod tenant;

pub use cidr::{Cidr, mask};

/// Most entries one `trusted_networks` list may hold: the check runs per request.
pub const MAX_TRUSTED_NETWORKS: usize = 256;
