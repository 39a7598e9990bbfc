//! Who may read what (SPEC §7): API keys (`keys`) and a member's plants, enforced in the
//! tables of their session (`scope`).

pub mod keys;
pub mod scope;
