//! Bucket -> shard: the immutable map a topology snapshot carries.
//!
//! A [`ShardMap`] is built once from a validated configuration (later: from
//! the topology znode) and never changed: a bucket move or a failover builds
//! a new one inside a new [`Topology`](super::topology::Topology).
//!
//! Lookups are one array index: `table[bucket]` is the dense index of the
//! shard in [`ShardMap::shards`], so a bucket count up to
//! [`MAX_BUCKETS`](crate::config::MAX_BUCKETS) costs at most 128 KiB.

use std::fmt;
use std::net::SocketAddr;

use super::hash::Bucket;
use crate::config::Config;

/// A shard's configured id (`[[shard]] id`), stable across restarts and
/// topology changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One shard: its id, where its master and standbys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: ShardId,
    /// Dense position in [`ShardMap::shards`] (`0..n`, in id order), for
    /// per-session arrays such as one backend connection slot per shard.
    pub index: usize,
    pub master: SocketAddr,
    pub standbys: Vec<SocketAddr>,
}

/// Buckets and shards: which shard holds each bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Shards in id order; `shards[i].index == i`.
    shards: Vec<Shard>,
    /// `table[bucket]` = index into `shards`. Its length is the bucket count.
    table: Vec<u16>,
    /// Index into `shards` of the default shard.
    default: usize,
}

impl ShardMap {
    /// The map a validated configuration describes: its shards in id order,
    /// its explicit `[[sharding.range]]`s or the default equal ranges
    /// ([`Config::bucket_ranges`]), its default shard.
    ///
    /// The configuration must have passed [`Config::validate`] (every
    /// constructor of `Config` does): every bucket in exactly one range,
    /// every range and the default naming a shard. If it did not, buckets no
    /// range covers go to the default shard rather than panicking.
    pub fn from_config(config: &Config) -> ShardMap {
        let mut configured: Vec<_> = config.shards.iter().collect();
        configured.sort_by_key(|s| s.id);
        let shards: Vec<Shard> = configured
            .iter()
            .enumerate()
            .map(|(index, s)| Shard {
                id: ShardId(s.id),
                index,
                master: s.master,
                standbys: s.standbys.clone(),
            })
            .collect();
        let index_of = |id: u32| shards.iter().position(|s| s.id.0 == id);
        let default = index_of(config.default_shard_id()).unwrap_or(0);
        debug_assert!(shards.len() <= usize::from(u16::MAX) + 1);
        let mut table = vec![default as u16; config.buckets() as usize];
        for range in config.bucket_ranges() {
            let Some(index) = index_of(range.shard) else {
                debug_assert!(false, "validated: range names shard {}", range.shard);
                continue;
            };
            let last = (range.buckets.last as usize).min(table.len().saturating_sub(1));
            for slot in table
                .iter_mut()
                .take(last + 1)
                .skip(range.buckets.first as usize)
            {
                *slot = index as u16;
            }
        }
        ShardMap {
            shards,
            table,
            default,
        }
    }

    /// How many buckets keys hash to: pass it to
    /// [`bucket_of`](super::hash::bucket_of).
    pub fn bucket_count(&self) -> u32 {
        self.table.len() as u32
    }

    /// The shard holding `bucket`.
    ///
    /// # Panics
    ///
    /// If `bucket` is not below [`bucket_count`](Self::bucket_count): buckets
    /// come from `bucket_of(key, map.bucket_count())` of the same map.
    pub fn shard_of(&self, bucket: Bucket) -> &Shard {
        &self.shards[usize::from(self.table[bucket.0 as usize])]
    }

    /// A shard by id.
    pub fn shard(&self, id: ShardId) -> Option<&Shard> {
        self.shards
            .binary_search_by_key(&id, |s| s.id)
            .ok()
            .map(|i| &self.shards[i])
    }

    /// Where unsharded statements and global tables go.
    pub fn default_shard(&self) -> &Shard {
        &self.shards[self.default]
    }

    /// Every shard, in id order (`shards()[i].index == i`).
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(shards: &[(u32, u16)], sharding: &str) -> Config {
        let mut text = String::from(
            "[proxy]\nlisten = \"127.0.0.1:3307\"\n[[user]]\nname = \"a\"\npassword_hash = \"\"\n",
        );
        for (id, port) in shards {
            text.push_str(&format!(
                "[[shard]]\nid = {id}\nmaster = \"127.0.0.1:{port}\"\n"
            ));
        }
        text.push_str(sharding);
        Config::from_toml(&text).unwrap()
    }

    /// For every bucket, the id of its shard.
    fn owners(map: &ShardMap) -> Vec<u32> {
        (0..map.bucket_count())
            .map(|b| map.shard_of(Bucket(b)).id.0)
            .collect()
    }

    #[test]
    fn one_shard_holds_every_bucket() {
        let map = ShardMap::from_config(&config(&[(5, 3306)], ""));
        assert_eq!(map.bucket_count(), crate::config::DEFAULT_BUCKETS);
        assert!(owners(&map).iter().all(|&id| id == 5));
        assert_eq!(map.default_shard().id, ShardId(5));
        assert_eq!(map.shards().len(), 1);
        assert_eq!(map.shards()[0].index, 0);
    }

    #[test]
    fn equal_contiguous_ranges_in_id_order() {
        // Shard i of n gets [i*B/n, (i+1)*B/n): with B = 10, n = 3: 0-2, 3-5, 6-9.
        let map = ShardMap::from_config(&config(
            &[(9, 3309), (2, 3302), (4, 3304)],
            "[sharding]\nbuckets = 10\n",
        ));
        assert_eq!(owners(&map), [2, 2, 2, 4, 4, 4, 9, 9, 9, 9]);
        let ids: Vec<(u32, usize)> = map.shards().iter().map(|s| (s.id.0, s.index)).collect();
        assert_eq!(ids, [(2, 0), (4, 1), (9, 2)]);
        assert_eq!(map.default_shard().id, ShardId(2), "lowest id by default");
        assert_eq!(
            map.shard(ShardId(4)).unwrap().master,
            "127.0.0.1:3304".parse().unwrap()
        );
        assert!(map.shard(ShardId(3)).is_none());
    }

    #[test]
    fn default_ranges_for_many_shapes_cover_everything_in_order() {
        for n in 1..=9u32 {
            for buckets in [n, n + 1, 16, 1000, 1024] {
                let shards: Vec<(u32, u16)> = (0..n).map(|i| (i, 4000 + i as u16)).collect();
                let map = ShardMap::from_config(&config(
                    &shards,
                    &format!("[sharding]\nbuckets = {buckets}\n"),
                ));
                let o = owners(&map);
                assert_eq!(o.len(), buckets as usize);
                // Non-decreasing, every shard present, sizes differ by <= 1.
                assert!(o.windows(2).all(|w| w[0] <= w[1]), "{o:?}");
                let sizes: Vec<usize> = (0..n)
                    .map(|id| o.iter().filter(|&&x| x == id).count())
                    .collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(*min >= 1 && max - min <= 1, "{sizes:?}");
                for i in 0..n as u64 {
                    let first = (i * u64::from(buckets) / u64::from(n)) as u32;
                    assert_eq!(map.shard_of(Bucket(first)).id.0, i as u32);
                }
            }
        }
    }

    #[test]
    fn explicit_ranges_and_default_shard() {
        let map = ShardMap::from_config(&config(
            &[(0, 3306), (1, 3316)],
            "[sharding]\nbuckets = 8\ndefault_shard = 1\n\
             [[sharding.range]]\nbuckets = \"0-1\"\nshard = 1\n\
             [[sharding.range]]\nbuckets = \"2\"\nshard = 0\n\
             [[sharding.range]]\nbuckets = \"3-7\"\nshard = 1\n",
        ));
        assert_eq!(owners(&map), [1, 1, 0, 1, 1, 1, 1, 1]);
        assert_eq!(map.default_shard().id, ShardId(1));
        assert_eq!(map.default_shard().index, 1);
    }

    #[test]
    fn standbys_are_kept() {
        let text = "[proxy]\nlisten = \"127.0.0.1:3307\"\n[[user]]\nname = \"a\"\npassword_hash = \"\"\n\
                    [[shard]]\nid = 0\nmaster = \"127.0.0.1:3306\"\nstandbys = [\"127.0.0.1:3307\", \"10.0.0.2:3306\"]\n";
        let map = ShardMap::from_config(&Config::from_toml(text).unwrap());
        assert_eq!(
            map.shards()[0].standbys,
            [
                "127.0.0.1:3307".parse().unwrap(),
                "10.0.0.2:3306".parse().unwrap()
            ]
        );
    }

    #[test]
    fn largest_bucket_count() {
        let map = ShardMap::from_config(&config(
            &[(0, 3306), (1, 3316)],
            "[sharding]\nbuckets = 65536\n",
        ));
        assert_eq!(map.bucket_count(), 65536);
        assert_eq!(map.shard_of(Bucket(32767)).id, ShardId(0));
        assert_eq!(map.shard_of(Bucket(32768)).id, ShardId(1));
        assert_eq!(map.shard_of(Bucket(65535)).id, ShardId(1));
    }
}
