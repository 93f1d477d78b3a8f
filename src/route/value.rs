//! A value a shard key is compared with, as the scanner found it in the
//! statement text or the executor found it in COM_STMT_EXECUTE parameters.
//! Turning it into the bytes that are hashed depends on the key column's
//! type and collation (`route::key`).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue<'a> {
    /// A numeric literal exactly as written, sign included: `42`, `-7`,
    /// `+042`, `0x2A`, `0b101`, `4.2e1`, `42.0`. Whether it is a usable
    /// integer key is decided later, not by the scanner.
    Number(Cow<'a, [u8]>),
    /// A quoted string literal's value: quotes removed, escapes resolved
    /// (borrowed when it had none). `x'2A'` / `b'1'` hex and bit strings are
    /// `Binary`, not `Str`: MariaDB compares them differently.
    Str(Cow<'a, [u8]>),
    /// `X'..'`, `x'..'`, `B'..'`, `b'..'` literals: binary strings (on
    /// MariaDB 10.11 `x'2A'` compared with an integer is 0, not 42).
    Binary(Cow<'a, [u8]>),
    /// A signed integer parameter bound by COM_STMT_EXECUTE.
    Int(i64),
    /// An unsigned integer parameter bound by COM_STMT_EXECUTE.
    UInt(u64),
    /// The `index`-th `?` of the statement (0-based), bound later by
    /// COM_STMT_EXECUTE.
    Placeholder(u16),
    /// SQL NULL: `key = NULL` matches no row; `key IN (NULL, 5)` only 5.
    Null,
}

impl KeyValue<'_> {
    /// An owned copy, for values kept past the statement buffer.
    pub fn into_owned(self) -> KeyValue<'static> {
        match self {
            KeyValue::Number(b) => KeyValue::Number(Cow::Owned(b.into_owned())),
            KeyValue::Str(b) => KeyValue::Str(Cow::Owned(b.into_owned())),
            KeyValue::Binary(b) => KeyValue::Binary(Cow::Owned(b.into_owned())),
            KeyValue::Int(v) => KeyValue::Int(v),
            KeyValue::UInt(v) => KeyValue::UInt(v),
            KeyValue::Placeholder(i) => KeyValue::Placeholder(i),
            KeyValue::Null => KeyValue::Null,
        }
    }
}
