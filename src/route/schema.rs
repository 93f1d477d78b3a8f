//! Which tables are sharded, by which key, and which are global.
//!
//! Table names are matched ASCII case-insensitively whatever the server's
//! `lower_case_table_names`: treating `Users` as the sharded `users` can only
//! make the proxy refuse more, never route a statement to the wrong shard.

/// How the key column's values compare on the server, which decides the
/// bytes that are hashed (values the server considers equal must hash alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// An integer column: `42`, `'42'` and `042` are one key.
    Int,
    /// A string column compared byte for byte (VARBINARY, or a `_bin`
    /// collation: trailing spaces are ignored by PAD SPACE collations).
    StringBinary { pad_space: bool },
    /// A string column under a case-insensitive PAD SPACE collation
    /// (`utf8mb4_general_ci`, MariaDB's default): ASCII case and trailing
    /// spaces are folded; keys with non-ASCII bytes are refused, since
    /// folding them needs the collation's tables.
    StringCaseInsensitive,
}

/// What happens to a statement on a sharded table without a usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Refused with an ERR that names the table and the key column.
    #[default]
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRule {
    Sharded {
        /// The key column, lowercase.
        key: Box<str>,
        key_type: KeyType,
        missing_key: MissingKey,
    },
    /// Not sharded: lives on the designated shard.
    Global,
}

/// The tables the proxy knows. Tables not listed are unsharded and go to the
/// designated shard like global ones.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// (lowercase name, rule). A short list scanned with
    /// `eq_ignore_ascii_case` beats hashing a lowercased copy of the name on
    /// the hot path for the handful of tables a deployment shards.
    tables: Vec<(Box<str>, TableRule)>,
    /// A one-word Bloom filter of the sharded table names (by length and
    /// first letter): most names in a statement are no sharded table, and
    /// this tells so without a lookup.
    sharded_filter: u64,
}

/// The bit of a table name in `Schema::sharded_filter`.
#[inline]
fn name_bit(name: &[u8]) -> u64 {
    let first = name.first().map_or(0, |c| c.to_ascii_lowercase() as usize);
    1 << ((name.len().wrapping_mul(31) ^ first) % 64)
}

impl Schema {
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds a table (name matched case-insensitively).
    pub fn with_table(mut self, name: &str, rule: TableRule) -> Schema {
        if matches!(rule, TableRule::Sharded { .. }) {
            self.sharded_filter |= name_bit(name.as_bytes());
        }
        self.tables.push((name.to_ascii_lowercase().into(), rule));
        self
    }

    /// False when no sharded table is named `name` (ASCII case-insensitively);
    /// true when one may be.
    #[inline]
    pub fn may_be_sharded(&self, name: &[u8]) -> bool {
        self.sharded_filter & name_bit(name) != 0
    }

    /// The rule of a table, by its bare name (no database qualifier).
    pub fn table(&self, name: &[u8]) -> Option<&TableRule> {
        self.tables
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, rule)| rule)
    }

    /// The sharded tables' rules, for error messages and config checks.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableRule)> {
        self.tables.iter().map(|(n, r)| (&**n, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_ascii_case() {
        let s = Schema::new().with_table(
            "Users",
            TableRule::Sharded {
                key: "userid".into(),
                key_type: KeyType::Int,
                missing_key: MissingKey::Error,
            },
        );
        assert!(s.table(b"USERS").is_some());
        assert!(s.table(b"users").is_some());
        assert!(s.table(b"orders").is_none());
    }
}
