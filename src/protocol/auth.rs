//! mysql_native_password: the stored hash, scramble verification and the
//! credential the proxy keeps to log in to backends.
//!
//! Protocol page: <https://mariadb.com/kb/en/connection/#mysql_native_password-plugin>.
//! The client sends `SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))`; the
//! server stores `SHA1(SHA1(pw))`. Verifying a response therefore recovers
//! `SHA1(pw)` (the "stage 1" hash), which is exactly what the proxy needs to
//! answer a backend's scramble for the same user: the proxy never needs, and
//! never learns, the password itself.

use std::fmt;

use sha1::{Digest, Sha1};
use smallvec::SmallVec;

/// The name of the only authentication plugin the proxy speaks.
pub const NATIVE_PASSWORD: &[u8] = b"mysql_native_password";

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Compares without an early exit, so timing does not tell how many leading
/// bytes of a guess were right.
fn ct_eq(a: &[u8; 20], b: &[u8; 20]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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

    /// The hash the server's `PASSWORD()` gives; "" gives [`PasswordHash::Empty`]
    /// like the server.
    pub fn from_password(password: &str) -> PasswordHash {
        match Credential::from_password(password) {
            Credential::Empty => PasswordHash::Empty,
            Credential::Stage1(s1) => PasswordHash::Native(sha1(&[&s1])),
        }
    }

    /// Checks a client's auth response to `scramble`. On success returns the
    /// credential the proxy can use to log in to a backend as this user.
    pub fn verify(&self, scramble: &[u8; 20], response: &[u8]) -> Option<Credential> {
        match self {
            PasswordHash::Empty => response.is_empty().then_some(Credential::Empty),
            PasswordHash::Native(stage2) => {
                let response: &[u8; 20] = response.try_into().ok()?;
                let mask = sha1(&[scramble, stage2]);
                let mut stage1 = [0u8; 20];
                for ((s, r), m) in stage1.iter_mut().zip(response).zip(&mask) {
                    *s = r ^ m;
                }
                ct_eq(&sha1(&[&stage1]), stage2).then_some(Credential::Stage1(stage1))
            }
        }
    }
}

impl fmt::Display for PasswordHash {
    /// The server's text form, which [`PasswordHash::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Empty => Ok(()),
            PasswordHash::Native(h) => {
                f.write_str("*")?;
                h.iter().try_for_each(|b| write!(f, "{b:02X}"))
            }
        }
    }
}

/// What the proxy holds to log in to a backend as a user.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The account has no password: the auth response is empty.
    Empty,
    /// SHA1(password).
    Stage1([u8; 20]),
}

impl fmt::Debug for Credential {
    /// Never prints the hash: it is as good as the password to a server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Empty => f.write_str("Empty"),
            Credential::Stage1(_) => f.write_str("Stage1(..)"),
        }
    }
}

impl Credential {
    /// The credential of a clear-text password ("" is [`Credential::Empty`]).
    pub fn from_password(password: &str) -> Credential {
        if password.is_empty() {
            Credential::Empty
        } else {
            Credential::Stage1(sha1(&[password.as_bytes()]))
        }
    }

    /// The auth response to a server's scramble. Only the first 20 bytes of
    /// `scramble` count: servers send a trailing NUL in an auth switch.
    pub fn scramble_response(&self, scramble: &[u8]) -> SmallVec<[u8; 20]> {
        match self {
            Credential::Empty => SmallVec::new(),
            Credential::Stage1(stage1) => {
                let scramble = &scramble[..scramble.len().min(20)];
                let mask = sha1(&[scramble, &sha1(&[stage1])]);
                stage1.iter().zip(&mask).map(|(s, m)| s ^ m).collect()
            }
        }
    }
}

/// The 20-byte challenge of a greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scramble(pub [u8; 20]);

impl Scramble {
    /// A fresh random scramble of printable ASCII (0x21..=0x7e), like the
    /// server's: never a NUL, which clients treat as the end of it.
    pub fn try_generate() -> Result<Scramble, getrandom::Error> {
        let mut b = [0u8; 20];
        getrandom::fill(&mut b)?;
        // 94 printable values; the modulo bias (256 = 2*94 + 68) is
        // harmless for a challenge that only has to be unpredictable.
        for x in &mut b {
            *x = 0x21 + *x % 94;
        }
        Ok(Scramble(b))
    }

    /// Like [`Scramble::try_generate`].
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give: logging users in
    /// with a predictable challenge would be worse than stopping.
    pub fn generate() -> Scramble {
        Scramble::try_generate().expect("the OS random number generator failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_hashes_match_the_server() {
        // SELECT PASSWORD('password'), PASSWORD('123456') on MariaDB 10.11.
        assert_eq!(
            PasswordHash::from_password("password").to_string(),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
        assert_eq!(
            PasswordHash::from_password("123456").to_string(),
            "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9"
        );
        assert_eq!(PasswordHash::from_password(""), PasswordHash::Empty);
        let h = PasswordHash::parse("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19").unwrap();
        assert_eq!(h, PasswordHash::from_password("password"));
        assert_eq!(PasswordHash::parse(&h.to_string()), Some(h));
        assert_eq!(
            PasswordHash::parse("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E1"),
            None
        );
        assert_eq!(
            PasswordHash::parse("2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"),
            None
        );
        assert_eq!(
            PasswordHash::parse("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E1G"),
            None
        );
    }

    #[test]
    fn a_clients_response_verifies_and_yields_the_backend_credential() {
        let scramble = Scramble::generate();
        let client = Credential::from_password("s3cret");
        let response = client.scramble_response(&scramble.0);
        assert_eq!(response.len(), 20);
        let hash = PasswordHash::from_password("s3cret");
        let cred = hash.verify(&scramble.0, &response).unwrap();
        assert_eq!(cred, client);
        // The recovered credential answers another scramble as the client would.
        let other = Scramble::generate();
        assert_eq!(
            cred.scramble_response(&other.0),
            client.scramble_response(&other.0)
        );
        // A trailing NUL (auth switch data) does not change the response.
        let mut with_nul = other.0.to_vec();
        with_nul.push(0);
        assert_eq!(
            cred.scramble_response(&with_nul),
            client.scramble_response(&other.0)
        );
    }

    #[test]
    fn wrong_responses_are_refused() {
        let scramble = Scramble([b'a'; 20]);
        let hash = PasswordHash::from_password("right");
        let wrong = Credential::from_password("wrong").scramble_response(&scramble.0);
        assert_eq!(hash.verify(&scramble.0, &wrong), None);
        assert_eq!(hash.verify(&scramble.0, b""), None);
        let right = Credential::from_password("right").scramble_response(&scramble.0);
        assert_eq!(hash.verify(&scramble.0, &right[..19]), None);
        assert_eq!(hash.verify(&Scramble([b'b'; 20]).0, &right), None);
        // An account without password takes only an empty response.
        assert_eq!(
            PasswordHash::Empty.verify(&scramble.0, b""),
            Some(Credential::Empty)
        );
        assert_eq!(PasswordHash::Empty.verify(&scramble.0, &right), None);
        assert!(Credential::Empty.scramble_response(&scramble.0).is_empty());
    }

    #[test]
    fn scrambles_are_printable_and_differ() {
        let a = Scramble::generate();
        let b = Scramble::generate();
        assert_ne!(a, b);
        assert!(a.0.iter().chain(&b.0).all(|c| (0x21..=0x7e).contains(c)));
    }

    #[test]
    fn credentials_do_not_print_their_hash() {
        assert_eq!(
            format!("{:?}", Credential::from_password("x")),
            "Stage1(..)"
        );
    }
}
