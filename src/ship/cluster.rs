//! Where records and positions live when Redis is a cluster, or when one key is spread
//! over shards (`ship.shards = N`).
//!
//! Redis Cluster applies a transaction or a script only when every key it touches sits in
//! one hash slot. So a shard `s` is a hash tag: the records of a list (or stream) `K`
//! go to `K:{s}`, and this collector's position for that shard to
//! `pixelpipe:shipped:<id>:{s}` — same tag, same slot, so the batch and the position are
//! still written in one atomic step (see [`super::script`]). Batches go round-robin over
//! the shards; which shard a batch went to does not matter for exactly-once, because
//! batches are shipped one at a time: the highest position over all shards is this
//! collector's shipped position.
//!
//! With one shard on a single server nothing changes from the seed: records go to `K`
//! itself and the position to `pixelpipe:shipped:<id>`, the keys the list sink uses.
//!
//! **Replicated acknowledgements.** Replication is asynchronous: a master can answer a
//! batch and die before its replica has it, and the replica that takes over has neither
//! the batch nor the position that covers it. With `ship.wait_replicas = R`, the script
//! is followed by `WAIT R` on the same connection (same master), repeated until R replicas
//! have everything, before the batch counts as shipped and the local log may drop it. If
//! the master dies first, the new master's position is the old one, and the batch is sent
//! again to it: nothing answered 200 is lost, nothing is pushed twice.

/// How the keys of a shipped record are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// How many shards each key is spread over (≥ 1).
    pub shards: u32,
    /// Hash-tagged names even with one shard (a cluster needs them).
    pub tagged: bool,
}

impl Layout {
    pub fn new(shards: u32, cluster: bool) -> Layout {
        let shards = shards.max(1);
        Layout {
            shards,
            tagged: cluster || shards > 1,
        }
    }

    /// Where records for `key` go in shard `shard`.
    pub fn data_key(&self, key: &[u8], shard: u32) -> Vec<u8> {
        if !self.tagged {
            return key.to_vec();
        }
        let mut k = key.to_vec();
        k.extend_from_slice(format!(":{{{shard}}}").as_bytes());
        k
    }

    /// This collector's position key in shard `shard`.
    pub fn position_key(&self, instance: &str, shard: u32) -> String {
        if self.tagged {
            format!("pixelpipe:shipped:{instance}:{{{shard}}}")
        } else {
            format!("pixelpipe:shipped:{instance}")
        }
    }

    /// Every shard's name of `key`, for consumers (`tail` reads them all).
    pub fn all_keys(&self, key: &str) -> Vec<String> {
        (0..self.shards)
            .map(|s| String::from_utf8_lossy(&self.data_key(key.as_bytes(), s)).into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn one_shard_on_one_server_keeps_the_seeds_names() {
        let l = Layout::new(1, false);
        assert_eq!(l.data_key(b"pixel", 0), b"pixel");
        assert_eq!(l.position_key("abc", 0), "pixelpipe:shipped:abc");
        assert_eq!(l.all_keys("pixel"), ["pixel"]);
    }

    #[test]
    fn shards_and_their_position_share_a_hash_tag() {
        let l = Layout::new(3, true);
        assert_eq!(l.data_key(b"pixel", 2), b"pixel:{2}");
        assert_eq!(l.position_key("abc", 2), "pixelpipe:shipped:abc:{2}");
        assert_eq!(l.all_keys("pixel"), ["pixel:{0}", "pixel:{1}", "pixel:{2}"]);
        // Same slot: Redis hashes only what is between the first `{` and the next `}`.
        assert_eq!(
            Slot::for_key(l.data_key(b"pixel", 1)),
            Slot::for_key(l.position_key("abc", 1))
        );
        // A cluster with one shard is still tagged.
        assert_eq!(Layout::new(1, true).all_keys("pixel"), ["pixel:{0}"]);
    }
}
