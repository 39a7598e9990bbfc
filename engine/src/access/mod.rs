//! Who may read what (SPEC §7): API keys (`keys`), a member's plants, enforced in the
//! tables of their session (`scope`), and the append-only record of who did what
//! (`audit`).

pub mod audit;
pub mod keys;
pub mod scope;
