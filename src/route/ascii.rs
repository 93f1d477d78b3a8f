//! ASCII case-insensitive search in SQL text.
//!
//! Keywords and the names the proxy looks for (sharded tables, words that
//! change session state) are ASCII, and MySQL folds their case, so matching
//! ignores ASCII case only; other bytes must be equal. `memchr2` finds the
//! candidates by the needle's first byte in either case, so the statement is
//! never lowercased (no copy, no allocation on the data path).

/// Whether `needle` occurs in `hay`, ignoring ASCII case. An empty needle
/// occurs nowhere (callers look for real words; an empty table name must not
/// match every statement).
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut at = 0;
    while let Some(i) = memchr::memchr2(lower, upper, &hay[at..]) {
        let start = at + i;
        match hay.get(start..start + needle.len()) {
            Some(w) if w.eq_ignore_ascii_case(needle) => return true,
            Some(_) => at = start + 1,
            // Too close to the end for any later start to fit.
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::contains_ci;

    #[test]
    fn matches_ignoring_ascii_case_anywhere() {
        assert!(contains_ci(b"SELECT * FROM Users", b"users"));
        assert!(contains_ci(b"select * from users", b"USERS"));
        assert!(contains_ci(b"users", b"uSeRs"));
        assert!(contains_ci(b"SET @a := 1", b":="));
        assert!(contains_ci(b"x@y", b"@"));
        assert!(contains_ci(b"uuuusers", b"users"));
    }

    #[test]
    fn does_not_match_what_is_not_there() {
        assert!(!contains_ci(b"SELECT 1", b"users"));
        assert!(!contains_ci(b"user", b"users"));
        assert!(!contains_ci(b"", b"x"));
        assert!(!contains_ci(b"anything", b""));
        // Only ASCII case folds: other bytes must be equal.
        assert!(!contains_ci("ÉTÉ".as_bytes(), "été".as_bytes()));
        assert!(!contains_ci(b"a:b", b"a;b"));
    }

    #[test]
    fn agrees_with_a_plain_window_search() {
        let mut rng = crate::test_rng::XorShift::new(7);
        let alphabet = b"aAbB:@ ";
        for _ in 0..5000 {
            let hay: Vec<u8> = (0..rng.below(12))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let needle: Vec<u8> = (0..rng.below(4))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let plain = !needle.is_empty()
                && hay
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(&needle));
            assert_eq!(contains_ci(&hay, &needle), plain, "{hay:?} {needle:?}");
        }
    }
}
