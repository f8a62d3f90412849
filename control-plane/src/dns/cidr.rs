//! Networks (`192.0.2.0/24`, `2001:db8::/32`): the type lives in `outpost-config`, shared with
//! the nodes, which judge a tenant's upstream addresses against the same lists.

pub use outpost_config::net::{Cidr, mask};
