//! The thin async driver: the registry operations on a Redis (or Valkey) server through the
//! `redis` crate's auto-reconnecting `ConnectionManager`, each bounded by an operation timeout.
//! It makes no decisions: [`crate::Lease`] decides when to renew and when a lease is lost; the
//! scripts in [`crate::keys`] make each check-then-write atomic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::continuity::Continuity;
use crate::error::ClusterError;
use crate::keys;
use crate::token::ClaimToken;

/// Who holds a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub token: ClaimToken,
    /// The owner's advertised HTTP base (empty if unknown).
    pub url: String,
}

/// What the registry knows about a stream's ownership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A node holds it.
    Owned(Owner),
    /// Nobody holds it, but it was live within the recent window (an owner crashed, a publisher
    /// left): the next owner is expected.
    Recent,
    /// Nobody holds it and it was not live recently.
    Unknown,
}

/// The answer to a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The claim was still ours; its expiry was reset.
    Renewed,
    /// The registry had lost its data (no claim, no epoch counter); the claim, its epoch and
    /// the numbers were written back.
    Reasserted,
    /// The claim expired or is another node's.
    NotOwner,
}

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Ours, with the continuity stored for the stream (if it was ever published).
    Granted {
        token: ClaimToken,
        continuity: Option<Continuity>,
    },
    /// Another node holds it (its token, if readable).
    Held { by: Option<ClaimToken> },
}

/// Registry settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub url: String,
    /// Bound on every operation (connect included).
    pub op_timeout: Duration,
    /// Expiry of a stream's epoch counter and continuity after its last claim, renewal or save.
    pub retention: Duration,
    /// How long a stream counts as recently live after its claim ran out or was released (the
    /// `live` tombstone, see [`crate::keys`]).
    pub recent: Duration,
}

struct Scripts {
    claim: Script,
    renew: Script,
    release: Script,
    owner: Script,
}

/// A connection to the registry. Cheap to share (`Arc`); operations may run concurrently.
pub struct Registry {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    config: RegistryConfig,
    scripts: Scripts,
    ops: AtomicU64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Registry {
    /// Checks the URL; connects lazily (a node starts while the registry is down).
    pub fn new(config: RegistryConfig) -> Result<Self, ClusterError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| ClusterError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            config,
            scripts: Scripts {
                claim: Script::new(keys::CLAIM),
                renew: Script::new(keys::RENEW),
                release: Script::new(keys::RELEASE),
                owner: Script::new(keys::OWNER),
            },
            ops: AtomicU64::new(0),
        })
    }

    /// Registry operations attempted so far (for the benchmark and the API).
    pub fn ops_total(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    async fn conn(&self, op: &'static str) -> Result<ConnectionManager, ClusterError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let t = self.config.op_timeout;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(t)
            .set_response_timeout(t)
            .set_number_of_retries(1)
            .set_max_delay(ms(t));
        let made = tokio::time::timeout(
            t,
            ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| ClusterError::Timeout {
            op,
            timeout_ms: ms(t),
        })?
        .map_err(|source| ClusterError::Redis { op, source })?;
        *guard = Some(made.clone());
        Ok(made)
    }

    /// Runs one script invocation under the operation timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.conn(op).await?;
        let t = self.config.op_timeout;
        tokio::time::timeout(t, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| ClusterError::Timeout {
                op,
                timeout_ms: ms(t),
            })?
            .map_err(|source| ClusterError::Redis { op, source })
    }

    /// Claims `app/stream` for `node_id` with a lease of `lease`, advertising `owner_url`.
    pub async fn claim(
        &self,
        app: &str,
        stream: &str,
        node_id: &str,
        owner_url: &str,
        lease: Duration,
    ) -> Result<ClaimOutcome, ClusterError> {
        let mut inv = self.scripts.claim.prepare_invoke();
        inv.key(keys::stream_key(app, stream))
            .key(keys::epoch_key(app, stream))
            .key(keys::continuity_key(app, stream))
            .key(keys::live_key(app, stream))
            .arg(node_id)
            .arg(ms(lease).max(1))
            .arg(owner_url)
            .arg(ms(self.config.retention).max(1))
            .arg(ms(self.config.recent).max(1));
        let v: redis::Value = self.run("claim", inv).await?;
        let malformed = |detail: &str| ClusterError::Malformed {
            op: "claim",
            detail: detail.to_string(),
        };
        let redis::Value::Array(items) = v else {
            return Err(malformed("not an array"));
        };
        let granted: i64 = items
            .first()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|_| malformed("status"))?
            .ok_or_else(|| malformed("empty"))?;
        let token: String = items
            .get(1)
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|_| malformed("token"))?
            .unwrap_or_default();
        if granted != 1 {
            return Ok(ClaimOutcome::Held {
                by: ClaimToken::parse(&token),
            });
        }
        let token = ClaimToken::parse(&token).ok_or_else(|| malformed("token"))?;
        let fields: HashMap<String, String> = items
            .get(2)
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|_| malformed("continuity"))?
            .unwrap_or_default();
        Ok(ClaimOutcome::Granted {
            token,
            continuity: Continuity::from_fields(&fields),
        })
    }

    /// Compare-and-`PEXPIRE`, writing `continuity` (the latest numbers, if any) with it; after a
    /// loss of the registry's data the claim is written back (see [`keys::RENEW`]).
    pub async fn renew(
        &self,
        app: &str,
        stream: &str,
        token: &ClaimToken,
        owner_url: &str,
        lease: Duration,
        continuity: Option<&Continuity>,
    ) -> Result<Renewal, ClusterError> {
        let mut inv = self.scripts.renew.prepare_invoke();
        inv.key(keys::stream_key(app, stream))
            .key(keys::epoch_key(app, stream))
            .key(keys::continuity_key(app, stream))
            .key(keys::live_key(app, stream))
            .arg(token.value())
            .arg(ms(lease).max(1))
            .arg(ms(self.config.retention).max(1))
            .arg(ms(self.config.recent).max(1))
            .arg(token.epoch)
            .arg(owner_url);
        for (k, v) in continuity.map(Continuity::to_fields).unwrap_or_default() {
            inv.arg(k).arg(v);
        }
        let n: i64 = self.run("renew", inv).await?;
        Ok(match n {
            1 => Renewal::Renewed,
            2 => Renewal::Reasserted,
            _ => Renewal::NotOwner,
        })
    }

    /// Compare-and-`DEL`, writing `continuity` (marked clean) first: true if the claim was ours.
    /// A stale owner's release never deletes another node's claim.
    pub async fn release(
        &self,
        app: &str,
        stream: &str,
        token: &ClaimToken,
        continuity: Option<&Continuity>,
    ) -> Result<bool, ClusterError> {
        let clean = continuity.map(|c| Continuity {
            clean: true,
            ..c.clone()
        });
        let mut inv = self.scripts.release.prepare_invoke();
        inv.key(keys::stream_key(app, stream))
            .key(keys::continuity_key(app, stream))
            .key(keys::live_key(app, stream))
            .arg(token.value())
            .arg(ms(self.config.retention).max(1))
            .arg(ms(self.config.recent).max(1));
        for (k, v) in clean
            .as_ref()
            .map(Continuity::to_fields)
            .unwrap_or_default()
        {
            inv.arg(k).arg(v);
        }
        let n: i64 = self.run("release", inv).await?;
        Ok(n == 1)
    }

    /// Who holds `app/stream` now, if anyone.
    pub async fn owner(&self, app: &str, stream: &str) -> Result<Option<Owner>, ClusterError> {
        Ok(match self.lookup(app, stream).await? {
            Lookup::Owned(o) => Some(o),
            Lookup::Recent | Lookup::Unknown => None,
        })
    }

    /// Who holds `app/stream` now, or whether it was live recently.
    pub async fn lookup(&self, app: &str, stream: &str) -> Result<Lookup, ClusterError> {
        let mut inv = self.scripts.owner.prepare_invoke();
        inv.key(keys::stream_key(app, stream))
            .key(keys::continuity_key(app, stream))
            .key(keys::live_key(app, stream));
        let v: Option<(String, String)> = self.run("owner", inv).await?;
        Ok(match v {
            None => Lookup::Unknown,
            Some((token, url)) => match ClaimToken::parse(&token) {
                Some(token) => Lookup::Owned(Owner { token, url }),
                None => Lookup::Recent,
            },
        })
    }

    /// Every claimed stream with its owner, at most `limit` (SCAN, then one lookup each).
    pub async fn streams(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, Owner)>, ClusterError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let op = "scan";
        let mut conn = self.conn(op).await?;
        let t = self.config.op_timeout;
        let mut names = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = tokio::time::timeout(
                t,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}*", keys::STREAM_PREFIX))
                    .arg("COUNT")
                    .arg(256)
                    .query_async(&mut conn),
            )
            .await
            .map_err(|_| ClusterError::Timeout {
                op,
                timeout_ms: ms(t),
            })?
            .map_err(|source| ClusterError::Redis { op, source })?;
            names.extend(batch);
            cursor = next;
            if cursor == 0 || names.len() >= limit {
                break;
            }
        }
        names.sort();
        names.dedup();
        names.truncate(limit);
        let mut out = Vec::with_capacity(names.len());
        for key in names {
            let Some((app, stream)) = keys::parse_stream_key(&key) else {
                continue;
            };
            if let Some(owner) = self.owner(app, stream).await? {
                out.push((app.to_string(), stream.to_string(), owner));
            }
        }
        Ok(out)
    }
}
