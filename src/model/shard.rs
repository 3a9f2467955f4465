//! Shards: how executions are divided between the replicas sharing one PostgreSQL store.
//!
//! A database has a fixed number of shards, set once when its schema is created
//! ([`DEFAULT_SHARDS`]); an execution belongs to one shard by its id ([`shard_of`]), for its
//! whole life. A replica follows the executions of the shards it holds a lease on, and every
//! write it makes for an execution carries the [`Fence`] it was loaded under: the store
//! refuses the write when the shard has moved on since (another acquisition, a higher
//! `epoch`), so a replica that lost a shard can never overwrite what the new holder wrote.

/// Shards in a new PostgreSQL database (set once per database; the replicas read it).
pub const DEFAULT_SHARDS: u32 = 256;

/// The 128-bit key of an execution id: the UUID's bits, or a hash with the top bit set for
/// any other id. Used to place an execution in a shard and in the poll scheduler.
pub fn execution_key(execution_id: &str) -> u128 {
    match uuid::Uuid::parse_str(execution_id) {
        Ok(id) => id.as_u128(),
        Err(_) => {
            use std::hash::{BuildHasher, BuildHasherDefault};
            let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
            u128::from(h.hash_one(execution_id)) | (1 << 127)
        }
    }
}

/// The shard (0 ≤ shard < `shards`) of the execution with key `key` ([`execution_key`]): its
/// low 64 bits modulo the count (the random bits of a UUIDv7, so shards fill evenly).
pub fn shard_of_key(key: u128, shards: u32) -> u32 {
    (key as u64 % u64::from(shards.max(1))) as u32
}

/// The shard of `execution_id` among `shards`.
pub fn shard_of(execution_id: &str, shards: u32) -> u32 {
    shard_of_key(execution_key(execution_id), shards)
}

/// The lease an execution is followed under: its shard and the shard's `epoch` when this
/// replica acquired it. Never stored or serialized: it is this process's, for as long as it
/// holds the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The shard.
    pub shard: u32,
    /// The shard's epoch at acquisition (bumped by every acquisition).
    pub epoch: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_spread_over_every_shard_and_keep_theirs() {
        let mut seen = vec![0_u32; DEFAULT_SHARDS as usize];
        for _ in 0..25_600 {
            let id = uuid::Uuid::now_v7().to_string();
            let s = shard_of(&id, DEFAULT_SHARDS);
            assert_eq!(s, shard_of(&id, DEFAULT_SHARDS));
            seen[s as usize] += 1;
        }
        // 100 expected per shard; a shard below 40 would mean the ids do not spread.
        assert!(seen.iter().all(|&n| n > 40), "{seen:?}");
        assert!(shard_of("not-a-uuid", 7) < 7);
    }
}
