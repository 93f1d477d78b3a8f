//! mysql_native_password: the stored hash, scramble verification and the
//! credential the proxy keeps to log in to backends.

/// A user's stored mysql_native_password hash, as the server keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordHash {
    /// The account has no password.
    Empty,
    /// SHA1(SHA1(password)), printed by the server as `*` + 40 hex digits.
    Native([u8; 20]),
}

impl PasswordHash {
    /// Parses the server's text form: "" or `*` followed by 40 hex digits.
    pub fn parse(text: &str) -> Option<PasswordHash> {
        if text.is_empty() {
            return Some(PasswordHash::Empty);
        }
        let hex = text.strip_prefix('*')?.as_bytes();
        if hex.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16);
            out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(PasswordHash::Native(out))
    }
}
