//! Registry key names and the Lua scripts that change them (Redis `EVAL`: a script runs
//! atomically, so each check-then-write below is one step for every other client).
//!
//! Keys of one stream share the hash tag `{app/stream}` (Redis Cluster specification, "Hash
//! tags"), so every multi-key script touches one slot:
//!
//! | key | type | content | expiry |
//! |---|---|---|---|
//! | `sluice:stream:{app/stream}` | string | the claim token `node_id:epoch` | the lease (`PX`) |
//! | `sluice:epoch:{app/stream}` | string | fencing counter (`INCR`) | retention, refreshed |
//! | `sluice:cont:{app/stream}` | hash | owner, owner URL, [`crate::Continuity`] fields | retention, refreshed |
//! | `sluice:live:{app/stream}` | string | last claim token: the stream was live recently | lease + recent window, refreshed; the recent window after a release |
//!
//! The `live` key is the tombstone that tells "no owner right now, but one is expected" (a
//! crashed owner's lease ran out, a publisher is reconnecting) from "unknown stream": a request
//! for the first is held until the next owner answers, the second is a quick 404.

/// The claim key of `app/stream`.
pub fn stream_key(app: &str, stream: &str) -> String {
    format!("{STREAM_PREFIX}{{{app}/{stream}}}")
}

pub fn epoch_key(app: &str, stream: &str) -> String {
    format!("sluice:epoch:{{{app}/{stream}}}")
}

pub fn continuity_key(app: &str, stream: &str) -> String {
    format!("sluice:cont:{{{app}/{stream}}}")
}

pub fn live_key(app: &str, stream: &str) -> String {
    format!("sluice:live:{{{app}/{stream}}}")
}

pub const STREAM_PREFIX: &str = "sluice:stream:";

/// `app/stream` of a claim key.
pub fn parse_stream_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(STREAM_PREFIX)?
        .strip_prefix('{')?
        .strip_suffix('}')?
        .split_once('/')
}

/// Claim: KEYS stream, epoch, continuity, live; ARGV node_id, lease_ms, owner_url, retention_ms,
/// recent_ms.
/// Refuses (`{0, current}`) while another node's claim is live; takes the key when it is absent
/// or holds a stale claim of this same node (a restarted process, or a release still on its
/// way), with a new epoch. Returns `{1, token, continuity fields}`.
pub const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder = string.match(cur, '^(.*):%d+$')
  if holder ~= ARGV[1] then return {0, cur} end
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local token = ARGV[1] .. ':' .. epoch
if cur then
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
elseif not redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then
  return {0, ''}
end
redis.call('HSET', KEYS[3], 'owner', token, 'owner_url', ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], token, 'PX', ARGV[2] + ARGV[5])
return {1, token, redis.call('HGETALL', KEYS[3])}
"#;

/// Renew (and save): KEYS stream, epoch, continuity, live; ARGV token, lease_ms, retention_ms,
/// recent_ms, epoch, owner_url, field, value, ... Returns 1 if the key still held our token
/// (its expiry reset, the fields written), 0 if it is gone or another node's (nothing changes),
/// 2 if the registry lost its data (no claim *and* no epoch counter: `FLUSHALL`, a restart
/// without persistence) and the claim, the epoch counter and the numbers were written back. A
/// claim that merely expired leaves its epoch counter (kept for the retention), so a renewal
/// after expiry still fails; a counter that was lost cannot have been advanced by anyone since.
pub const RENEW: &str = r#"
local cur = redis.call('GET', KEYS[1])
local status = 1
if cur ~= ARGV[1] then
  if cur or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[5])
  redis.call('HSET', KEYS[3], 'owner', ARGV[1], 'owner_url', ARGV[6])
  status = 2
end
if #ARGV > 6 then redis.call('HSET', KEYS[3], unpack(ARGV, 7)) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2] + ARGV[4])
return status
"#;

/// Release: KEYS stream, continuity, live; ARGV token, retention_ms, recent_ms, field, value,
/// ... Fenced: writes the exact numbers (marked clean), compare-and-`DEL`s the claim and leaves
/// the `live` tombstone for `recent_ms` (a publisher that reconnects finds its viewers waiting).
pub const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if #ARGV > 3 then redis.call('HSET', KEYS[2], unpack(ARGV, 4)) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
return 1
"#;

/// Owner: KEYS stream, continuity, live. `{token, owner_url}`, or `{'', ''}` when nobody holds
/// the stream but it was live recently (the `live` tombstone), or nil when it is unknown. The URL
/// is the one written with this very token (empty if the hash says otherwise).
pub const OWNER: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'', ''} end
  return false
end
local owner = redis.call('HGET', KEYS[2], 'owner')
local url = ''
if owner == cur then url = redis.call('HGET', KEYS[2], 'owner_url') or '' end
return {cur, url}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_round_trip() {
        let k = stream_key("live", "cam.1");
        assert_eq!(k, "sluice:stream:{live/cam.1}");
        assert_eq!(parse_stream_key(&k), Some(("live", "cam.1")));
        assert_eq!(parse_stream_key("sluice:stream:live"), None);
        assert_eq!(epoch_key("a", "b"), "sluice:epoch:{a/b}");
        assert_eq!(continuity_key("a", "b"), "sluice:cont:{a/b}");
        assert_eq!(live_key("a", "b"), "sluice:live:{a/b}");
    }
}
