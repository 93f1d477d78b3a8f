//! The topology snapshot: everything a reactor needs to route, in one
//! immutable value.
//!
//! Reactors share it through an `arc_swap::ArcSwap<Topology>` and `load()`
//! it once per command, so one command never sees two topologies. Nobody
//! edits a `Topology`: the control thread builds a whole new one and
//! `store()`s it. Without ZooKeeper the configuration file is the only
//! source and the epoch stays 1; failover, bucket moves and the ZooKeeper
//! watcher will publish new snapshots with `epoch + 1` each.

use smallvec::SmallVec;

use super::hash::bucket_of;
use super::key::{canonical_key, KeyError};
use super::schema::{KeyType, Schema};
use super::shardmap::{Shard, ShardMap};
use super::value::KeyValue;
use crate::config::Config;

/// The epoch of the topology read from the configuration file.
pub const FIRST_EPOCH: u64 = 1;

/// One immutable description of tables, buckets and shards.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Grows by one at every change; a peer or a session can tell an older
    /// snapshot from a newer one.
    pub epoch: u64,
    /// The sharded and global tables.
    pub schema: Schema,
    /// Buckets -> shards -> backends.
    pub shards: ShardMap,
}

impl Topology {
    /// The topology a validated configuration describes, at [`FIRST_EPOCH`].
    pub fn from_config(config: &Config) -> Topology {
        Topology {
            epoch: FIRST_EPOCH,
            schema: config.schema(),
            shards: ShardMap::from_config(config),
        }
    }

    /// The shard that holds rows whose key is `value`: canonical bytes ->
    /// CRC-32 bucket -> shard. The canonical bytes live on the stack for
    /// integer keys and strings up to 32 bytes: no heap allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// use dbrouter::config::Config;
    /// use dbrouter::route::{schema::KeyType, topology::Topology, value::KeyValue};
    ///
    /// let config = Config::from_toml(r#"
    ///     [proxy]
    ///     listen = "127.0.0.1:6033"
    ///     [[user]]
    ///     name = "app"
    ///     password_hash = ""
    ///     [[shard]]
    ///     id = 0
    ///     master = "127.0.0.1:3306"
    ///     [[shard]]
    ///     id = 1
    ///     master = "127.0.0.1:3316"
    ///     [sharding]
    ///     buckets = 1024
    /// "#).unwrap();
    /// let topology = Topology::from_config(&config);
    /// // crc32("42") % 1024 = 136, in shard 0's buckets 0-511.
    /// let shard = topology.route_key(&KeyValue::Int(42), KeyType::Int).unwrap();
    /// assert_eq!(shard.id.0, 0);
    /// ```
    pub fn route_key(&self, value: &KeyValue<'_>, key_type: KeyType) -> Result<&Shard, KeyError> {
        let mut canonical: SmallVec<[u8; 32]> = SmallVec::new();
        canonical_key(value, key_type, &mut canonical)?;
        let bucket = bucket_of(&canonical, self.shards.bucket_count());
        Ok(self.shards.shard_of(bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::schema::TableRule;
    use crate::route::shardmap::ShardId;
    use std::borrow::Cow;

    const TWO_SHARDS: &str = r#"
        [proxy]
        listen = "127.0.0.1:6033"
        [[user]]
        name = "app"
        password_hash = ""
        [[shard]]
        id = 0
        master = "127.0.0.1:3306"
        [[shard]]
        id = 1
        master = "127.0.0.1:3316"
        [sharding]
        buckets = 1024
        [[table]]
        name = "users"
        key = "userid"
        key_type = "int"
        [[table]]
        name = "accounts"
        key = "email"
        key_type = "string"
    "#;

    fn topology() -> Topology {
        Topology::from_config(&Config::from_toml(TWO_SHARDS).unwrap())
    }

    /// Golden routing: key -> shard, with buckets from `hash.rs`'s vectors
    /// (`python3 -c 'import zlib; print(zlib.crc32(b"...") % 1024)'`);
    /// shard 0 holds buckets 0-511, shard 1 holds 512-1023.
    #[test]
    fn golden_routes() {
        let t = topology();
        assert_eq!(t.epoch, FIRST_EPOCH);
        let num = |s: &'static str| KeyValue::Number(Cow::Borrowed(s.as_bytes()));
        let st = |s: &'static str| KeyValue::Str(Cow::Borrowed(s.as_bytes()));
        let cases: &[(KeyValue<'_>, KeyType, u32)] = &[
            (KeyValue::Int(42), KeyType::Int, 0),            // "42" -> 136
            (num("0x2A"), KeyType::Int, 0),                  // "42" -> 136
            (st("042"), KeyType::Int, 0),                    // "42" -> 136
            (KeyValue::Int(-42), KeyType::Int, 1),           // "-42" -> 726
            (KeyValue::UInt(0), KeyType::Int, 1),            // "0" -> 801
            (KeyValue::Int(1), KeyType::Int, 1),             // "1" -> 951
            (num("9223372036854775807"), KeyType::Int, 1),   // 734
            (num("-9223372036854775808"), KeyType::Int, 1),  // 779
            (KeyValue::UInt(u64::MAX), KeyType::Int, 0),     // 282
            (num("123456789"), KeyType::Int, 0),             // 294
            (st("acme"), KeyType::StringCaseInsensitive, 1), // "ACME" -> 906
            (st("Acme  "), KeyType::StringCaseInsensitive, 1),
            (st("acme"), KeyType::StringBinary { pad_space: false }, 1), // "acme" -> 574
            (st("user@example.com"), KeyType::StringCaseInsensitive, 1), // 697
        ];
        for (v, kt, want) in cases {
            assert_eq!(
                t.route_key(v, *kt).map(|s| s.id),
                Ok(ShardId(*want)),
                "{v:?}"
            );
        }
        assert_eq!(
            t.route_key(&num("42.0"), KeyType::Int),
            Err(KeyError::NotAnInteger)
        );
        assert_eq!(
            t.route_key(&KeyValue::Null, KeyType::Int),
            Err(KeyError::Null)
        );
    }

    #[test]
    fn schema_comes_from_the_config() {
        let t = topology();
        match t.schema.table(b"Users") {
            Some(TableRule::Sharded { key, key_type, .. }) => {
                assert_eq!(&**key, "userid");
                assert_eq!(*key_type, KeyType::Int);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.shards.default_shard().id, ShardId(0));
    }

    #[test]
    fn snapshots_swap_whole() {
        let swap = arc_swap::ArcSwap::from_pointee(topology());
        let before = swap.load_full();
        let mut next = (*before).clone();
        next.epoch += 1;
        swap.store(std::sync::Arc::new(next));
        assert_eq!(before.epoch, FIRST_EPOCH, "a loaded snapshot never changes");
        assert_eq!(swap.load().epoch, FIRST_EPOCH + 1);
    }
}
