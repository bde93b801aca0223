//! Sluice's origin fleet registry: which node owns which stream, with leases that expire, fencing
//! epochs, and the numbers a stream's next owner continues from, kept in Redis (or Valkey).
//!
//! * [`lease`]: the sans-IO lease state machine (claim granted, renew due, renewed, lost), with
//!   time passed in; the single-instance lock pattern of the Redis `SET` documentation
//!   ("Patterns") plus fencing tokens (M. Kleppmann, "How to do distributed locking", 2016).
//! * [`token`]: the claim value `node_id:epoch`.
//! * [`continuity`]: media sequence, discontinuity sequence, init numbers, target duration and
//!   part target per stream (RFC 8216bis §6.2.1: numbers of a playlist URL never go back).
//! * [`keys`]: key names and the Lua scripts (claim = `INCR` epoch + `SET NX PX`; renew =
//!   compare-and-`PEXPIRE` with the numbers, written back if the registry lost its
//!   data; release = compare-and-`DEL`; lookup, with the recently-live tombstone).
//! * [`registry`]: the thin tokio driver on the `redis` crate.
//!
//! Knows nothing of RTMP, remuxing or HTTP.

pub mod continuity;
pub mod error;
pub mod keys;
pub mod lease;
pub mod registry;
pub mod token;

pub use continuity::{Continuity, RenditionNumbers};
pub use error::ClusterError;
pub use lease::{Lease, LeaseTiming, LossReason, RenewOutcome};
pub use registry::{ClaimOutcome, Lookup, Owner, Registry, RegistryConfig, Renewal};
pub use token::ClaimToken;
