//! What the scanner bench and the profiling example (examples/scanner_loop.rs)
//! both scan: two sharded tables and a global one behind two shards, and a
//! typical ORM point select. One copy, so the profile is of what the bench
//! times. (Included with `#[path]`; not a bench of its own.)

use dbrouter::config::Config;
use dbrouter::route::topology::Topology;

/// About 100 bytes, as an ORM writes it.
pub const POINT: &[u8] =
    b"SELECT `users`.`userid`, `users`.`name`, `users`.`email` FROM `users` WHERE `users`.`userid` = 42";

pub fn topology() -> Topology {
    let config = Config::from_toml(
        r#"
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
        name = "orders"
        key = "userid"
        key_type = "int"
        [[table]]
        name = "countries"
        global = true
        "#,
    )
    .expect("the scanner inputs' configuration parses");
    Topology::from_config(&config)
}
