//! The claim token: the unique value a holder writes to a stream's key, `node_id:epoch`, where the
//! epoch is a fencing token (M. Kleppmann, "How to do distributed locking", 2016) drawn from a
//! per-stream counter that only grows (Redis `INCR`).

use std::fmt;

/// `node_id:epoch`. Node ids may contain `:`; the epoch is after the last one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    pub node_id: String,
    pub epoch: u64,
}

impl ClaimToken {
    pub fn new(node_id: impl Into<String>, epoch: u64) -> Self {
        Self {
            node_id: node_id.into(),
            epoch,
        }
    }

    /// Parses a key's value; `None` if it is not `node_id:epoch`.
    pub fn parse(value: &str) -> Option<Self> {
        let (node, epoch) = value.rsplit_once(':')?;
        if node.is_empty() {
            return None;
        }
        Some(Self::new(node, epoch.parse().ok()?))
    }

    /// The value stored in the registry.
    pub fn value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node_id, self.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (v, ok) in [
            ("n1:1", true),
            ("http://10.0.0.1:8080:42", true),
            (":3", false),
            ("n1", false),
            ("n1:x", false),
        ] {
            let t = ClaimToken::parse(v);
            assert_eq!(t.is_some(), ok, "{v}");
            if let Some(t) = t {
                assert_eq!(t.value(), v);
            }
        }
    }
}
