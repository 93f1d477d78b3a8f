//! A small word scanner over SQL text: names, user variables, `:=` and
//! `;`, with strings and comments skipped (but `/*! ... */` and
//! `/*M! ... */` read as code). Enough to spot the words that change
//! session state (`pins.rs`) or read it (`counters.rs`), never a parser.

pub(super) enum Word<'a> {
    Name(&'a [u8]),
    UserVariable,
    Assign,
    Semicolon,
    /// A single punctuation byte: `(`, `)`, `,`, `=`, ...
    Punct(u8),
    /// A quoted string or name, a system variable.
    Other,
}

/// Words of SQL text, strings and comments skipped.
pub(super) struct Words<'a> {
    sql: &'a [u8],
    at: usize,
    /// A user variable was seen so far (`:=` after one assigns it).
    pub(super) saw_user_variable: bool,
    /// `\` escapes the next character in strings (not under sql_mode
    /// NO_BACKSLASH_ESCAPES).
    backslash_escapes: bool,
}

impl<'a> Words<'a> {
    pub(super) fn new(sql: &'a [u8]) -> Words<'a> {
        Words {
            sql,
            at: 0,
            saw_user_variable: false,
            backslash_escapes: true,
        }
    }

    /// Strings as sql_mode NO_BACKSLASH_ESCAPES reads them.
    pub(super) fn without_backslash_escapes(mut self) -> Words<'a> {
        self.backslash_escapes = false;
        self
    }

    /// Where the next word starts looking: the end of the last one.
    pub(super) fn at(&self) -> usize {
        self.at
    }

    /// Goes on scanning from byte `at` (a word boundary found earlier).
    pub(super) fn seek(&mut self, at: usize) {
        self.at = at;
    }

    fn peek_byte(&self, off: usize) -> Option<u8> {
        self.sql.get(self.at + off).copied()
    }

    fn skip_quoted(&mut self, quote: u8) {
        self.at += 1;
        while let Some(&b) = self.sql.get(self.at) {
            self.at += 1;
            if b == b'\\' && quote != b'`' && self.backslash_escapes {
                self.at += 1;
            } else if b == quote {
                if self.sql.get(self.at) == Some(&quote) {
                    self.at += 1; // doubled quote
                } else {
                    return;
                }
            }
        }
    }

    /// After a user variable: is it assigned with `:=` or `=` in SET?
    pub(super) fn assignment_follows(&self) -> bool {
        let rest = &self.sql[self.at.min(self.sql.len())..];
        let rest = rest.trim_ascii_start();
        rest.starts_with(b":=")
    }

    /// Commas from here to the end of the statement (DROP TEMPORARY TABLE
    /// a, b, c drops three).
    pub(super) fn commas_to_end(&self) -> usize {
        let rest = &self.sql[self.at.min(self.sql.len())..];
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        rest[..end].iter().filter(|&&b| b == b',').count()
    }

    pub(super) fn next(&mut self) -> Option<Word<'a>> {
        loop {
            let b = *self.sql.get(self.at)?;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' => self.at += 1,
                b'\'' | b'"' | b'`' => {
                    // A backquoted name is a name, but never a trigger word.
                    self.skip_quoted(b);
                    return Some(Word::Other);
                }
                b'#' => self.skip_line(),
                b'-' if self.peek_byte(1) == Some(b'-')
                    && self.peek_byte(2).is_none_or(|c| c.is_ascii_whitespace()) =>
                {
                    self.skip_line()
                }
                b'/' if self.peek_byte(1) == Some(b'*') => {
                    if matches!(self.peek_byte(2), Some(b'!') | Some(b'M')) {
                        // Executable comment: its body is code.
                        self.at += 3;
                        while self
                            .peek_byte(0)
                            .is_some_and(|c| c.is_ascii_digit() || c == b'!')
                        {
                            self.at += 1;
                        }
                    } else {
                        let rest = &self.sql[self.at + 2..];
                        self.at = match memchr::memmem::find(rest, b"*/") {
                            Some(i) => self.at + 2 + i + 2,
                            None => self.sql.len(),
                        };
                    }
                }
                b'*' if self.peek_byte(1) == Some(b'/') => self.at += 2,
                b';' => {
                    self.at += 1;
                    return Some(Word::Semicolon);
                }
                b':' if self.peek_byte(1) == Some(b'=') => {
                    self.at += 2;
                    return Some(Word::Assign);
                }
                b'@' if self.peek_byte(1) == Some(b'@') => {
                    // A system variable: @@x, @@session.x.
                    self.at += 2;
                    while self
                        .peek_byte(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
                    {
                        self.at += 1;
                    }
                    return Some(Word::Other);
                }
                b'@' => {
                    self.at += 1;
                    match self.peek_byte(0) {
                        Some(q @ (b'\'' | b'"' | b'`')) => self.skip_quoted(q),
                        _ => {
                            while self.peek_byte(0).is_some_and(|c| {
                                c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'
                            }) {
                                self.at += 1;
                            }
                        }
                    }
                    self.saw_user_variable = true;
                    return Some(Word::UserVariable);
                }
                c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                    let start = self.at;
                    while self.peek_byte(0).is_some_and(|c| {
                        c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
                    }) {
                        self.at += 1;
                    }
                    return Some(Word::Name(&self.sql[start..self.at]));
                }
                _ => {
                    self.at += 1;
                    return Some(Word::Punct(b));
                }
            }
        }
    }

    fn skip_line(&mut self) {
        self.at = match memchr::memchr(b'\n', &self.sql[self.at..]) {
            Some(i) => self.at + i + 1,
            None => self.sql.len(),
        };
    }
}
