//! The transform phase: response bodies rewritten for the client, each variant computed once
//! per object version and cached.

pub mod compress;
pub mod image;
mod phase;
mod variant;
mod vary;

pub use phase::Transforms;
