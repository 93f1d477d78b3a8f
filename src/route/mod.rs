//! Routing: which shard a statement goes to.
//!
//! key -> bucket -> shard: the scanner finds the shard-key values that bind
//! every row a statement can touch; each value hashes to one of a fixed
//! number of buckets; a table of bucket ranges names the shard. A statement
//! the scanner cannot route with certainty is refused, never guessed.

pub mod ascii;
pub mod hash;
pub mod key;
pub mod params;
pub mod router;
pub mod scanner;
pub mod schema;
pub mod shardmap;
pub mod topology;
pub mod value;
