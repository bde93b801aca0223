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

pub const STREAM_PREFIX: &str = "sluice:stream:";

/// `app/stream` of a claim key.
pub fn parse_stream_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(STREAM_PREFIX)?
        .strip_prefix('{')?
        .strip_suffix('}')?
        .split_once('/')
}

/// Claim: KEYS stream, epoch, continuity; ARGV node_id, lease_ms, owner_url, retention_ms.
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
return {1, token, redis.call('HGETALL', KEYS[3])}
"#;

/// Renew: KEYS stream, epoch, continuity; ARGV token, lease_ms, retention_ms. Compare-and-
/// `PEXPIRE`: 1 if the key still held our token, else 0 and nothing changes.
pub const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"#;

/// Save continuity: KEYS stream, continuity; ARGV token, retention_ms, field, value, ...
/// Fenced: written only while the claim is ours.
pub const SAVE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"#;

/// Release: like [`SAVE`] (the exact numbers, marked clean), then compare-and-`DEL` of the claim.
pub const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"#;

/// Owner: KEYS stream, continuity. `{token, owner_url}` or nil when nobody holds the stream.
/// The URL is the one written with this very token (empty if the hash says otherwise).
pub const OWNER: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
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
    }
}
