//! The `Host` part of a backend account (`user@host`), matched against a
//! client's address the way MariaDB matches it.
//!
//! MariaDB (`sql_acl.cc`, `compare_hostname` and `get_sort`) accepts a client
//! for a row when the row's host pattern
//!
//! - is empty: any client, least specific of all;
//! - has the netmask form `a.b.c.d/m.m.m.m`: the client's IPv4 address, masked,
//!   equals `a.b.c.d`;
//! - otherwise is a `LIKE`-style pattern (`%` any run, `_` one character, `\`
//!   escapes the next one) that matches the client's host name without regard
//!   to case, or its IP address text exactly.
//!
//! The proxy does not resolve names: the only host name a client has here is
//! `localhost`, for loopback addresses (the server names a TCP client from a
//! loopback address `localhost` without asking DNS). A row whose pattern can
//! only match a name from DNS (`app1.example.com`, `%.example.com`) therefore
//! never matches, as on a server run with `skip_name_resolve`; such rows are
//! left out when the accounts are loaded, with a debug log line.
//!
//! When several rows of one user match, the server takes the most specific
//! one only and checks the password against it alone; [`HostPattern::priority`]
//! reproduces its sort order.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

/// A parsed `Host` column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    kind: Kind,
    /// MariaDB's `get_sort` value of the host: 128 without wildcards, the
    /// 1-based position of the first wildcard (at most 127) otherwise, 0 when
    /// empty. Higher sorts first.
    sort: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Empty host: every client.
    Any,
    /// `a.b.c.d/m.m.m.m`.
    Netmask { network: u32, mask: u32 },
    /// A wildcard pattern, tokenised once.
    Wild(Vec<Token>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `%`: any run of characters, also none.
    Many,
    /// `_`: exactly one character.
    One,
    /// A literal byte (an escaped wildcard is a literal too).
    Byte(u8),
}

const WILD_MANY: u8 = b'%';
const WILD_ONE: u8 = b'_';
const WILD_ESCAPE: u8 = b'\\';

impl HostPattern {
    /// Parses a `Host` column value. Every text is a valid pattern.
    pub fn parse(text: &str) -> HostPattern {
        let bytes = text.as_bytes();
        let kind = if bytes.is_empty() {
            Kind::Any
        } else if let Some((network, mask)) = parse_netmask(text) {
            Kind::Netmask { network, mask }
        } else {
            Kind::Wild(tokenise(bytes))
        };
        HostPattern {
            text: text.to_owned(),
            kind,
            sort: sort_value(bytes),
        }
    }

    /// The column text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a client connecting from `client` matches this row.
    pub fn matches(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        match &self.kind {
            Kind::Any => true,
            Kind::Netmask { network, mask } => match client {
                IpAddr::V4(v4) => u32::from(v4) & mask == *network,
                // MariaDB's netmask form is IPv4 only; for an IPv6 client the
                // server falls back to comparing the text, which cannot match.
                IpAddr::V6(_) => false,
            },
            Kind::Wild(tokens) => {
                (is_loopback(client) && wild_match(tokens, b"localhost", true))
                    || wild_match(tokens, client.to_string().as_bytes(), false)
            }
        }
    }

    /// Whether the pattern can match some client without DNS: the empty host,
    /// a netmask, or a pattern that can match `localhost` or the text of some
    /// IP address. A pattern holding a character that never occurs in an IP
    /// address text (a letter beyond the hex digits, say) and not matching
    /// `localhost` needs a name from DNS.
    pub fn matches_without_dns(&self) -> bool {
        match &self.kind {
            Kind::Any | Kind::Netmask { .. } => true,
            Kind::Wild(tokens) => {
                wild_match(tokens, b"localhost", true)
                    || tokens.iter().all(|t| match t {
                        Token::Many | Token::One => true,
                        Token::Byte(b) => b.is_ascii_hexdigit() || *b == b'.' || *b == b':',
                    })
            }
        }
    }

    /// The server's order among the rows of one user: sort rows by this,
    /// highest first, and the first matching row is the one that decides.
    /// Rows without wildcards come first, then by how late the first wildcard
    /// comes; ties are broken by the host text, in reverse byte order (so
    /// `localhost` comes before `127.0.0.1`), as MariaDB's `acl_user_compare`
    /// does.
    pub fn priority(&self) -> (u8, &[u8]) {
        (self.sort, self.text.as_bytes())
    }

    /// Compares two patterns by [`HostPattern::priority`], most specific
    /// first: the order to sort one user's rows in.
    pub fn most_specific_first(a: &HostPattern, b: &HostPattern) -> Ordering {
        b.priority().cmp(&a.priority())
    }
}

/// An IPv4 client seen through a dual-stack socket arrives as `::ffff:a.b.c.d`;
/// the server compares it as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Loopback addresses, which a server names `localhost`. The server itself
/// names only 127.0.0.1 and ::1 so without DNS; the rest of 127.0.0.0/8 is
/// taken as local too since no other host can connect from it.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// `a.b.c.d/m.m.m.m`, MariaDB's only netmask form (`calc_ip`): four decimal
/// parts on each side. A CIDR suffix (`/24`) is not understood by the server
/// either and stays a literal pattern that never matches an address.
fn parse_netmask(text: &str) -> Option<(u32, u32)> {
    let (network, mask) = text.split_once('/')?;
    let network: Ipv4Addr = network.parse().ok()?;
    let mask: Ipv4Addr = mask.parse().ok()?;
    Some((u32::from(network), u32::from(mask)))
}

fn tokenise(pattern: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        let b = pattern[i];
        match b {
            WILD_ESCAPE if i + 1 < pattern.len() => {
                tokens.push(Token::Byte(pattern[i + 1]));
                i += 1;
            }
            WILD_MANY => {
                // `%%` is the same as `%`; one keeps the matcher simple.
                if tokens.last() != Some(&Token::Many) {
                    tokens.push(Token::Many);
                }
            }
            WILD_ONE => tokens.push(Token::One),
            _ => tokens.push(Token::Byte(b)),
        }
        i += 1;
    }
    tokens
}

/// MariaDB's `get_sort` for one string.
fn sort_value(pattern: &[u8]) -> u8 {
    let mut chars = 0u8;
    let mut i = 0;
    while i < pattern.len() {
        let b = pattern[i];
        if b == WILD_ESCAPE && i + 1 < pattern.len() {
            i += 1;
        } else if b == WILD_MANY || b == WILD_ONE {
            return (i + 1).min(127) as u8;
        }
        chars = 128;
        i += 1;
    }
    chars
}

/// Matches `text` against a tokenised `LIKE` pattern: the classic two-cursor
/// match that remembers the last `%` to backtrack to, linear in practice and
/// never recursive.
fn wild_match(tokens: &[Token], text: &[u8], ignore_case: bool) -> bool {
    let same = |p: u8, t: u8| {
        if ignore_case {
            p.eq_ignore_ascii_case(&t)
        } else {
            p == t
        }
    };
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `%`: (token after it, text position).
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Many) => {
                resume = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Token::Byte(b)) if same(*b, text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match resume {
            // Let the last `%` swallow one more character and retry.
            Some((after, from)) => {
                resume = Some((after, from + 1));
                p = after;
                t = from + 1;
            }
            None => return false,
        }
    }
    tokens[p..].iter().all(|tok| *tok == Token::Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn host_patterns_match_like_mariadb() {
        // (pattern, client address, matches)
        let table: &[(&str, &str, bool)] = &[
            ("", "10.1.2.3", true),
            ("", "::1", true),
            ("%", "10.1.2.3", true),
            ("%", "2001:db8::5", true),
            ("%", "127.0.0.1", true),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("10.1.2.%", "10.1.2.200", true),
            ("10.1.2.%", "10.1.3.2", false),
            ("10.1.2._", "10.1.2.7", true),
            ("10.1.2._", "10.1.2.77", false),
            ("10.1.%.3", "10.1.99.3", true),
            ("10.1.%.3", "10.1.99.4", false),
            ("%.3", "10.1.2.3", true),
            ("%2.3", "10.1.2.3", true),
            ("%%", "10.1.2.3", true),
            // `_` must not match nothing, `%` may.
            ("10.1.2.3_", "10.1.2.3", false),
            ("10.1.2.3%", "10.1.2.3", true),
            // Escaped wildcards are literal.
            ("10.1.2.\\%", "10.1.2.3", false),
            ("10\\_1.2.3", "10.1.2.3", false),
            // localhost is every loopback address, in any letter case.
            ("localhost", "127.0.0.1", true),
            ("localhost", "127.0.0.2", true),
            ("localhost", "::1", true),
            ("LocalHost", "127.0.0.1", true),
            ("local%", "127.0.0.1", true),
            ("localhost", "10.1.2.3", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "::1", false),
            ("::1", "::1", true),
            // IPv4 seen through a dual-stack socket is compared as IPv4.
            ("10.1.2.3", "::ffff:10.1.2.3", true),
            ("localhost", "::ffff:127.0.0.1", true),
            // IP text is compared exactly, as the server prints it.
            ("2001:db8::5", "2001:db8::5", true),
            ("2001:DB8::5", "2001:db8::5", false),
            ("2001:db8::%", "2001:db8::5", true),
            // Netmask form, IPv4 only.
            ("10.1.2.0/255.255.255.0", "10.1.2.77", true),
            ("10.1.2.0/255.255.255.0", "10.1.3.77", false),
            ("10.0.0.0/255.0.0.0", "10.200.1.1", true),
            ("10.1.2.0/255.255.255.0", "::1", false),
            // Not the server's netmask form: a literal that matches nothing.
            ("10.1.2.0/24", "10.1.2.77", false),
            // Names need DNS: the proxy never matches them.
            ("app1.example.com", "10.1.2.3", false),
            ("%.example.com", "10.1.2.3", false),
        ];
        for (pattern, client, expected) in table {
            assert_eq!(
                HostPattern::parse(pattern).matches(ip(client)),
                *expected,
                "{pattern:?} against {client}"
            );
        }
    }

    #[test]
    fn patterns_that_need_dns_are_recognised() {
        for p in [
            "",
            "%",
            "10.1.%",
            "10.0.0.0/255.0.0.0",
            "localhost",
            "::1",
            "fe80::%",
        ] {
            assert!(HostPattern::parse(p).matches_without_dns(), "{p:?}");
        }
        for p in ["app1.example.com", "%.example.com", "web%", "example"] {
            assert!(!HostPattern::parse(p).matches_without_dns(), "{p:?}");
        }
    }

    #[test]
    fn rows_sort_most_specific_first() {
        let mut rows: Vec<HostPattern> = [
            "",
            "%",
            "10.%",
            "10.1.2.%",
            "10.1.2.3",
            "localhost",
            "127.0.0.1",
            "10.1.%.3",
        ]
        .iter()
        .map(|h| HostPattern::parse(h))
        .collect();
        rows.sort_by(HostPattern::most_specific_first);
        let order: Vec<&str> = rows.iter().map(HostPattern::as_str).collect();
        assert_eq!(
            order,
            [
                "localhost",
                "127.0.0.1",
                "10.1.2.3",
                "10.1.2.%",
                "10.1.%.3",
                "10.%",
                "%",
                ""
            ]
        );
    }

    #[test]
    fn sort_values_follow_get_sort() {
        assert_eq!(sort_value(b""), 0);
        assert_eq!(sort_value(b"%"), 1);
        assert_eq!(sort_value(b"10.%"), 4);
        assert_eq!(sort_value(b"host"), 128);
        assert_eq!(sort_value(b"a\\%b"), 128);
        assert_eq!(sort_value(&[b'a'; 300]), 128);
        let mut long = vec![b'a'; 200];
        long.push(b'%');
        assert_eq!(sort_value(&long), 127);
    }
}
