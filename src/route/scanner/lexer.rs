//! The token layer of the shard-key scanner: MariaDB's lexical rules, as
//! `sql/sql_lex.cc` applies them, over raw statement bytes.
//!
//! Tokens are ranges into the statement; nothing is copied. The lexer never
//! panics and never looks back more than one token; every byte is examined a
//! bounded number of times, and the long runs (string bodies, comments) are
//! skipped with `memchr`.
//!
//! What it must get exactly right, because the server does and a
//! difference would route a statement by a value the server never sees:
//!
//! - `-- ` starts a comment only when the second dash is followed by a space
//!   or a control character (or the end): `42 --1` is `42 - -1`.
//! - `/*! ... */` and `/*M! ... */` are code. With a version (5 or 6 digits
//!   right after the marker) they are code only when the version is at most
//!   the server's; MariaDB also skips `/*!` (not `/*M!`) comments whose
//!   version is a MySQL 5.7+ one (50700..=99999). A skipped versioned comment
//!   may hold one level of `/* */` inside; a plain comment ends at the first
//!   `*/`.
//! - Strings: `'..'` and `".."` (unless ANSI_QUOTES), backslash escapes
//!   (unless NO_BACKSLASH_ESCAPES), the delimiter doubled.
//! - A `.` right after an unquoted identifier separates qualified names, and
//!   what follows it is an identifier even if it starts with a digit or is a
//!   keyword (`t.5`, `t.end`).
//!
//! The lexer assumes an ASCII-compatible connection character set in which
//! no multi-byte character contains the bytes `\`, `'`, `"` or `` ` ``
//! (utf8mb4, utf8mb3, latin1, ascii, binary). Under gbk, big5, sjis or cp932
//! a trail byte may be 0x5C and the server would end a string where this
//! lexer does not: the session must not scan statements in those charsets.

use memchr::{memchr, memchr2, memmem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An unquoted identifier or keyword (also `12abc`, an identifier).
    Word,
    /// A backquoted identifier (or `"x"` under ANSI_QUOTES).
    Quoted,
    /// A `'..'` or `".."` string literal.
    Str,
    /// `N'..'`: a national-charset string literal.
    NStr,
    /// `X'..'` hex string.
    Hex,
    /// `B'..'` bit string.
    Bit,
    /// A number as written: `42`, `4.2e1`, `.5`, `0x2A`, `0b101` (no sign).
    Number,
    /// `?`
    Placeholder,
    /// `@var`, `@'var'`, `@@session.var`, a bare `@`.
    Var,
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    /// `=`
    Eq,
    /// `<=>`
    NullSafeEq,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    Minus,
    Plus,
    /// Any other operator or punctuation.
    Op,
    /// Unterminated string, identifier or comment, or a versioned comment
    /// opened inside another one: the server rejects the statement.
    Error,
    End,
}

/// Packs a word of up to 16 bytes, uppercased, into one integer, so that a
/// keyword is recognised with one `match` on an integer.
const fn pack(s: &[u8]) -> u128 {
    let mut v = 0u128;
    let mut i = 0;
    while i < s.len() {
        v = (v << 8) | s[i].to_ascii_uppercase() as u128;
        i += 1;
    }
    v
}

/// A word's bit (0..1024) in the keywords' Bloom filter, from its length
/// and its first and last bytes' low five bits: the same for a word in any
/// ASCII case (bit 5 is dropped), and different for most names (about 8%
/// of random identifiers share a keyword's bit). A word of 1 to 16 bytes.
const fn keyword_filter_bit(word: &[u8]) -> usize {
    let first = (word[0] & 31) as usize;
    let last = (word[word.len() - 1] & 31) as usize;
    ((first << 5) | last) ^ (word.len() * 0x2f)
}

macro_rules! keywords {
    ($($name:ident = $text:literal,)*) => {
        /// The keywords the scanner acts on, recognised once per word by the
        /// lexer (so the parser compares small integers, not strings).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Kw {
            None,
            $($name,)*
        }

        /// The keywords and their packed spellings (for tests).
        #[cfg(test)]
        const KEYWORDS: [(u128, Kw); [$(Kw::$name,)*].len()] = [$((pack($text), Kw::$name),)*];

        /// [`keyword_filter_bit`] of every keyword, set.
        static KEYWORD_FILTER: [u64; 16] = {
            let mut f = [0u64; 16];
            $(
                let b = keyword_filter_bit($text);
                f[b / 64] |= 1 << (b % 64);
            )*
            f
        };

        /// The keyword a word spells (any case), or `Kw::None`.
        pub(crate) fn keyword(word: &[u8]) -> Kw {
            if word.is_empty() || word.len() > 16 {
                return Kw::None;
            }
            // Most words that reach here are names, not keywords: the
            // filter tells most of them so in a few instructions, before
            // the `match` on a 128-bit integer (~90 instructions).
            let b = keyword_filter_bit(word);
            if KEYWORD_FILTER[b / 64] & (1 << (b % 64)) == 0 {
                return Kw::None;
            }
            keyword_by_match(word)
        }

        /// `keyword` without the filter: the answer itself.
        fn keyword_by_match(word: &[u8]) -> Kw {
            let v = pack(word);
            #[allow(non_upper_case_globals)]
            mod k {
                $(pub(super) const $name: u128 = super::pack($text);)*
            }
            match v {
                $(k::$name => Kw::$name,)*
                _ => Kw::None,
            }
        }
    };
}

keywords! {
    Alter = b"ALTER",
    And = b"AND",
    As = b"AS",
    Begin = b"BEGIN",
    Between = b"BETWEEN",
    Binary = b"BINARY",
    By = b"BY",
    Case = b"CASE",
    Collate = b"COLLATE",
    Commit = b"COMMIT",
    Create = b"CREATE",
    Cross = b"CROSS",
    Declare = b"DECLARE",
    Delayed = b"DELAYED",
    Delete = b"DELETE",
    Dual = b"DUAL",
    Duplicate = b"DUPLICATE",
    Else = b"ELSE",
    End = b"END",
    Except = b"EXCEPT",
    Execute = b"EXECUTE",
    Exists = b"EXISTS",
    Fetch = b"FETCH",
    For = b"FOR",
    Force = b"FORCE",
    From = b"FROM",
    Full = b"FULL",
    Group = b"GROUP",
    Having = b"HAVING",
    HighPriority = b"HIGH_PRIORITY",
    If = b"IF",
    Ignore = b"IGNORE",
    In = b"IN",
    Index = b"INDEX",
    Inner = b"INNER",
    Insert = b"INSERT",
    Intersect = b"INTERSECT",
    Interval = b"INTERVAL",
    Into = b"INTO",
    Is = b"IS",
    Join = b"JOIN",
    Key = b"KEY",
    Left = b"LEFT",
    Like = b"LIKE",
    Limit = b"LIMIT",
    Lock = b"LOCK",
    Loop = b"LOOP",
    LowPriority = b"LOW_PRIORITY",
    Minus = b"MINUS",
    Natural = b"NATURAL",
    Not = b"NOT",
    Null = b"NULL",
    Offset = b"OFFSET",
    On = b"ON",
    Or = b"OR",
    Order = b"ORDER",
    Outer = b"OUTER",
    Partition = b"PARTITION",
    Prepare = b"PREPARE",
    Procedure = b"PROCEDURE",
    Quick = b"QUICK",
    Repeat = b"REPEAT",
    Replace = b"REPLACE",
    Returning = b"RETURNING",
    Right = b"RIGHT",
    Rollback = b"ROLLBACK",
    Select = b"SELECT",
    Set = b"SET",
    Show = b"SHOW",
    Start = b"START",
    Statement = b"STATEMENT",
    StraightJoin = b"STRAIGHT_JOIN",
    Table = b"TABLE",
    Then = b"THEN",
    To = b"TO",
    Transaction = b"TRANSACTION",
    Union = b"UNION",
    Update = b"UPDATE",
    Use = b"USE",
    Using = b"USING",
    Value = b"VALUE",
    Values = b"VALUES",
    When = b"WHEN",
    Where = b"WHERE",
    While = b"WHILE",
    Window = b"WINDOW",
    With = b"WITH",
    Work = b"WORK",
    Xor = b"XOR",
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
    /// Str/NStr/Quoted: an escape or a doubled delimiter inside (the value
    /// must be resolved into a copy).
    pub escaped: bool,
    /// Word: it came right after a qualifying `.`, so it is a name even if it
    /// spells a keyword.
    pub after_dot: bool,
    /// Placeholder: its 0-based index in the statement.
    pub index: u16,
    /// Word (not after a `.`): the keyword it spells.
    pub kw: Kw,
}

/// A VALUES row read by [`Lexer::plain_row`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlainRow {
    /// The key value: a Number (its sign included), Str or Placeholder.
    pub key: Token,
    /// A `,` directly followed the row (and was consumed): another row
    /// comes. When false, nothing after the row's `)` was consumed.
    pub more: bool,
}

impl Token {
    fn new(kind: Tok, start: usize, end: usize) -> Token {
        Token {
            kind,
            start,
            end,
            escaped: false,
            after_dot: false,
            index: 0,
            kw: Kw::None,
        }
    }
}

/// Byte classes: the hot loops test a byte with one table load.
const SPACE: u8 = 1;
const IDENT: u8 = 2;
/// `0-9` and `.`: the bytes of a plain decimal number.
const DECIMAL: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        // `my_isspace`: the bytes the server skips between tokens.
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            t[i] |= SPACE;
        }
        // MariaDB's `ident_map` for ASCII-compatible character sets (every
        // byte >= 0x80 is a name byte).
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            t[i] |= IDENT;
        }
        if c.is_ascii_digit() || c == b'.' {
            t[i] |= DECIMAL;
        }
        i += 1;
    }
    t
};

/// Bytes that may appear in an unquoted identifier.
#[inline]
pub(crate) fn is_ident_byte(c: u8) -> bool {
    CLASS[c as usize] & IDENT != 0
}

/// The bytes the server skips between tokens.
#[inline]
pub(crate) fn is_space(c: u8) -> bool {
    CLASS[c as usize] & SPACE != 0
}

/// The first byte at or after `i` that [`is_space`] does not skip.
#[inline]
pub(crate) fn skip_space(sql: &[u8], mut i: usize) -> usize {
    while i < sql.len() && is_space(sql[i]) {
        i += 1;
    }
    i
}

/// The end of the run of `class` bytes starting at `i`.
#[inline]
fn run(sql: &[u8], mut i: usize, class: u8) -> usize {
    while i < sql.len() && CLASS[sql[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

/// The end of the unquoted identifier bytes starting at `i`.
#[inline]
pub(crate) fn ident_run(sql: &[u8], i: usize) -> usize {
    run(sql, i, IDENT)
}

/// The end of the ASCII digits starting at `i`.
#[inline]
pub(crate) fn digit_run(sql: &[u8], mut i: usize) -> usize {
    while i < sql.len() && sql[i].is_ascii_digit() {
        i += 1;
    }
    i
}

pub(crate) struct Lexer<'a> {
    sql: &'a [u8],
    pos: usize,
    no_backslash_escapes: bool,
    ansi_quotes: bool,
    server_version: u32,
    /// Inside `/*! ... */` code: the next `*/` closes it.
    in_code_comment: bool,
    /// The previous token was a `.` directly followed by a name byte: the
    /// next token is a name whatever it looks like.
    name_next: bool,
    /// End of the previous unquoted identifier, to tell `t.5` (a column)
    /// from `t .5` (a number).
    word_end: usize,
    placeholders: u32,
    pub(crate) errored: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(
        sql: &'a [u8],
        no_backslash_escapes: bool,
        ansi_quotes: bool,
        server_version: u32,
    ) -> Lexer<'a> {
        Lexer {
            sql,
            pos: 0,
            no_backslash_escapes,
            ansi_quotes,
            server_version,
            in_code_comment: false,
            name_next: false,
            word_end: usize::MAX,
            placeholders: 0,
            errored: false,
        }
    }

    /// `?` placeholders seen so far (saturating at `u16::MAX`).
    pub(crate) fn placeholders(&self) -> u16 {
        self.placeholders.min(u16::MAX as u32) as u16
    }

    /// Whether the lexer is inside an executable comment (a `;` there does
    /// not end the statement as far as this lexer can tell).
    pub(crate) fn in_code_comment(&self) -> bool {
        self.in_code_comment
    }

    #[inline]
    fn at(&self, i: usize) -> u8 {
        // 0 past the end, as the server's lexer sees the terminating NUL.
        self.sql.get(i).copied().unwrap_or(0)
    }

    fn error(&mut self) -> Token {
        self.errored = true;
        self.pos = self.sql.len();
        Token::new(Tok::Error, self.sql.len(), self.sql.len())
    }

    /// The next token; after the end, `End` (or `Error`) forever.
    pub(crate) fn next_token(&mut self) -> Token {
        if self.errored {
            return Token::new(Tok::Error, self.sql.len(), self.sql.len());
        }
        let name_next = std::mem::take(&mut self.name_next);
        loop {
            let len = self.sql.len();
            while self.pos < len && is_space(self.sql[self.pos]) {
                self.pos += 1;
            }
            if self.pos >= len {
                if self.in_code_comment {
                    // An unclosed `/*!`: the server says syntax error.
                    return self.error();
                }
                return Token::new(Tok::End, len, len);
            }
            let start = self.pos;
            let c = self.sql[start];
            match c {
                b'#' => self.skip_line(),
                b'-' if self.at(start + 1) == b'-' && {
                    let d = self.at(start + 2);
                    d <= b' ' || d == 0x7f
                } =>
                {
                    self.skip_line()
                }
                b'/' if self.at(start + 1) == b'*' => {
                    if !self.comment() {
                        return self.error();
                    }
                }
                b'*' if self.in_code_comment && self.at(start + 1) == b'/' => {
                    self.in_code_comment = false;
                    self.pos += 2;
                }
                _ => return self.token(start, c, name_next),
            }
        }
    }

    /// Skips one plain value of a VALUES row (see [`Lexer::plain_value_end`])
    /// with the whitespace after it, when a `,` or `)` follows; consumes
    /// and returns that delimiter. For anything else (comments, names,
    /// expressions) None, and nothing is consumed: the caller takes the
    /// token path.
    pub(crate) fn skip_plain_value(&mut self, null_plain: bool) -> Option<u8> {
        if self.name_next || self.errored || self.in_code_comment {
            return None;
        }
        let sql = self.sql;
        let mut placeholders = self.placeholders;
        let i = self.plain_value_end(skip_space(sql, self.pos), null_plain, &mut placeholders)?;
        let i = skip_space(sql, i);
        match sql.get(i) {
            Some(&d @ (b',' | b')')) => {
                self.pos = i + 1;
                self.word_end = usize::MAX;
                self.placeholders = placeholders;
                Some(d)
            }
            _ => None,
        }
    }

    /// Reads one VALUES row `(v, v, ...)` whose values are all plain (see
    /// [`Lexer::plain_value_end`]), and the `,` after it if there is one,
    /// without making tokens: the hot loop of a bulk INSERT. The
    /// `key_at`-th value is the key: an integer (with an adjacent sign), a
    /// string or `?`, returned as the token the lexer would make of it.
    /// For anything else None, and nothing is consumed: the caller reads
    /// the row token by token, and whatever it makes of it stands.
    pub(crate) fn plain_row(&mut self, key_at: usize, null_plain: bool) -> Option<PlainRow> {
        if self.name_next || self.errored || self.in_code_comment {
            return None;
        }
        let sql = self.sql;
        let mut i = skip_space(sql, self.pos);
        if sql.get(i) != Some(&b'(') {
            return None;
        }
        i += 1;
        let mut placeholders = self.placeholders;
        let mut key = None;
        let mut n = 0usize;
        loop {
            i = skip_space(sql, i);
            if n == key_at {
                let t = self.plain_key(i, &mut placeholders)?;
                i = t.end;
                key = Some(t);
            } else {
                i = self.plain_value_end(i, null_plain, &mut placeholders)?;
            }
            n += 1;
            // `, ` is the usual separator: look for the delimiter first.
            let mut d = *sql.get(i)?;
            if is_space(d) {
                i = skip_space(sql, i);
                d = *sql.get(i)?;
            }
            match d {
                b',' => i += 1,
                b')' => break,
                _ => return None,
            }
        }
        // A row too short to hold the key: the token path's to judge.
        let key = key?;
        // A `,` right after the row means another one; anything else (the
        // end, ON DUPLICATE KEY, a comment that may hide a `,`) is left to
        // the token path.
        let after = skip_space(sql, i + 1);
        let more = sql.get(after) == Some(&b',');
        self.pos = if more { after + 1 } else { i + 1 };
        self.word_end = usize::MAX;
        self.placeholders = placeholders;
        Some(PlainRow { key, more })
    }

    /// The key of a plain row at `i`, as the token the lexer makes of it:
    /// `?`, an integer (a sign right before it included, as
    /// `Parser::literal` takes it) or a string.
    #[inline]
    fn plain_key(&self, i: usize, placeholders: &mut u32) -> Option<Token> {
        let sql = self.sql;
        let c = *sql.get(i)?;
        match c {
            b'?' => {
                let mut t = Token::new(Tok::Placeholder, i, i + 1);
                t.index = (*placeholders).min(u16::MAX as u32) as u16;
                *placeholders = placeholders.saturating_add(1);
                Some(t)
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let digits = i + usize::from(!c.is_ascii_digit());
                let end = digit_run(sql, digits);
                // No digits (`--`, `- 5`), or more than an integer (`4.2`,
                // `4e2`, `0x2A`, `12abc`): the token path's.
                if end == digits || sql.get(end).is_some_and(|&d| d == b'.' || is_ident_byte(d)) {
                    return None;
                }
                Some(Token::new(Tok::Number, i, end))
            }
            b'\'' | b'"' if c == b'\'' || !self.ansi_quotes => {
                let (end, escaped) = self.quote_end(i + 1, c, !self.no_backslash_escapes)?;
                let mut t = Token::new(Tok::Str, i, end);
                t.escaped = escaped;
                Some(t)
            }
            _ => None,
        }
    }

    /// The end of a plain value at `i`: a number (`42`, `-4.2`, with no
    /// exponent or name bytes), a string literal, `?` (counted in
    /// `placeholders`), or NULL when `null_plain` (the caller says no
    /// sharded table is named `null`, which the token path would count as a
    /// stray). Each reads as tokens that change no parser state but the
    /// placeholder count.
    #[inline(always)]
    fn plain_value_end(&self, i: usize, null_plain: bool, placeholders: &mut u32) -> Option<usize> {
        let sql = self.sql;
        let c = *sql.get(i)?;
        match c {
            b'0'..=b'9' | b'-' | b'+' => {
                let digits = i + usize::from(!c.is_ascii_digit());
                if !sql.get(digits)?.is_ascii_digit() {
                    // `--` may start a comment, `-x` is an expression.
                    return None;
                }
                let j = run(sql, digits + 1, DECIMAL);
                if j < sql.len() && is_ident_byte(sql[j]) {
                    // An exponent, a hex number, a name: the token path.
                    return None;
                }
                Some(j)
            }
            b'\'' | b'"' if c == b'\'' || !self.ansi_quotes => {
                // Most strings hold no quote or backslash: the first one
                // found closes them. Escapes take the general loop.
                let body = i + 1;
                let backslash = !self.no_backslash_escapes;
                let j = body
                    + if backslash {
                        memchr2(c, b'\\', &sql[body..])?
                    } else {
                        memchr(c, &sql[body..])?
                    };
                if sql[j] == c && sql.get(j + 1) != Some(&c) {
                    Some(j + 1)
                } else {
                    Some(self.quote_end(body, c, backslash)?.0)
                }
            }
            b'?' => {
                *placeholders = placeholders.saturating_add(1);
                Some(i + 1)
            }
            b'n' | b'N'
                if null_plain
                    && sql.len() >= i + 4
                    && sql[i..i + 4].eq_ignore_ascii_case(b"NULL")
                    && !sql.get(i + 4).copied().is_some_and(is_ident_byte) =>
            {
                Some(i + 4)
            }
            _ => None,
        }
    }

    fn skip_line(&mut self) {
        self.pos = match memchr(b'\n', &self.sql[self.pos..]) {
            Some(i) => self.pos + i + 1,
            None => self.sql.len(),
        };
    }

    /// At `/*`: skips a comment or enters an executable one. False when the
    /// comment is unterminated or an executable comment opens inside one.
    fn comment(&mut self) -> bool {
        let start = self.pos;
        let (marker, maria) = match (self.at(start + 2), self.at(start + 3)) {
            (b'!', _) => (3, false),
            (b'M', b'!') => (4, true),
            _ => {
                // A plain comment: no nesting, the first `*/` ends it.
                return match memmem::find(&self.sql[start + 2..], b"*/") {
                    Some(i) => {
                        self.pos = start + 2 + i + 2;
                        true
                    }
                    None => false,
                };
            }
        };
        let body = start + marker;
        let digits = self.sql[body.min(self.sql.len())..]
            .iter()
            .take(6)
            .take_while(|c| c.is_ascii_digit())
            .count();
        let code = if digits >= 5 {
            let version = self.sql[body..body + digits]
                .iter()
                .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
            let code =
                version <= self.server_version && (maria || !(50700..=99999).contains(&version));
            if code {
                self.pos = body + digits;
            }
            code
        } else {
            // `/*!` without a version: always code.
            self.pos = body;
            true
        };
        if code {
            if self.in_code_comment {
                // The server would close both at the first `*/` and then
                // choke on the second: not worth imitating.
                return false;
            }
            self.in_code_comment = true;
            return true;
        }
        // A versioned comment for another server: skipped, with one level of
        // plain comments allowed inside it.
        let mut i = body;
        loop {
            match memchr2(b'*', b'/', &self.sql[i..]) {
                None => return false,
                Some(off) => {
                    let j = i + off;
                    if self.sql[j] == b'/' {
                        if self.at(j + 1) == b'*' {
                            match memmem::find(&self.sql[j + 2..], b"*/") {
                                Some(k) => i = j + 2 + k + 2,
                                None => return false,
                            }
                        } else {
                            i = j + 1;
                        }
                    } else if self.at(j + 1) == b'/' {
                        self.pos = j + 2;
                        return true;
                    } else {
                        i = j + 1;
                    }
                }
            }
        }
    }

    fn token(&mut self, start: usize, c: u8, name_next: bool) -> Token {
        let sql = self.sql;
        let one = |kind| (kind, start + 1);
        let (kind, end) = match c {
            _ if name_next && is_ident_byte(c) => {
                let end = self.ident_end(start);
                let mut t = Token::new(Tok::Word, start, end);
                t.after_dot = true;
                self.pos = end;
                self.word_end = end;
                return t;
            }
            b'0'..=b'9' => return self.number_or_word(start),
            b'\'' => return self.string(start, start + 1, b'\'', Tok::Str),
            b'"' if self.ansi_quotes => return self.quoted(start, b'"'),
            b'"' => return self.string(start, start + 1, b'"', Tok::Str),
            b'`' => return self.quoted(start, b'`'),
            b'x' | b'X' if self.at(start + 1) == b'\'' => {
                return self.string(start, start + 2, b'\'', Tok::Hex)
            }
            b'b' | b'B' if self.at(start + 1) == b'\'' => {
                return self.string(start, start + 2, b'\'', Tok::Bit)
            }
            b'n' | b'N' if self.at(start + 1) == b'\'' => {
                return self.string(start, start + 2, b'\'', Tok::NStr)
            }
            _ if is_ident_byte(c) => {
                let end = self.ident_end(start);
                self.pos = end;
                self.word_end = end;
                let mut t = Token::new(Tok::Word, start, end);
                t.kw = keyword(&self.sql[start..end]);
                return t;
            }
            b'.' => {
                let after_word = self.word_end == start;
                let d = self.at(start + 1);
                if !after_word && d.is_ascii_digit() {
                    return self.number_or_word(start);
                }
                if d == b'.' {
                    (Tok::Op, start + 2)
                } else {
                    // `t.col`: what follows is a name.
                    self.name_next = is_ident_byte(d);
                    one(Tok::Dot)
                }
            }
            b'?' => {
                let mut t = Token::new(Tok::Placeholder, start, start + 1);
                t.index = self.placeholders.min(u16::MAX as u32) as u16;
                self.placeholders = self.placeholders.saturating_add(1);
                self.pos = start + 1;
                return t;
            }
            b'@' => return self.variable(start),
            b'(' => one(Tok::LParen),
            b')' => one(Tok::RParen),
            b',' => one(Tok::Comma),
            b';' => one(Tok::Semi),
            b'=' => one(Tok::Eq),
            b'<' => match (self.at(start + 1), self.at(start + 2)) {
                (b'=', b'>') => (Tok::NullSafeEq, start + 3),
                (b'=' | b'>' | b'<', _) => (Tok::Op, start + 2),
                _ => one(Tok::Op),
            },
            b'>' => match self.at(start + 1) {
                b'=' | b'>' => (Tok::Op, start + 2),
                _ => one(Tok::Op),
            },
            b'!' if self.at(start + 1) == b'=' => (Tok::Op, start + 2),
            b'&' if self.at(start + 1) == b'&' => (Tok::AndAnd, start + 2),
            b'|' if self.at(start + 1) == b'|' => (Tok::OrOr, start + 2),
            b':' if self.at(start + 1) == b'=' => (Tok::Op, start + 2),
            b'-' => one(Tok::Minus),
            b'+' => one(Tok::Plus),
            _ => one(Tok::Op),
        };
        debug_assert!(end <= sql.len());
        self.pos = end;
        Token::new(kind, start, end)
    }

    fn ident_end(&self, i: usize) -> usize {
        ident_run(self.sql, i)
    }

    /// A token starting with a digit or `.digit`: a number, or an identifier
    /// when name bytes follow the digits (`123abc`, `0xfoo`), as the server
    /// decides.
    fn number_or_word(&mut self, start: usize) -> Token {
        let sql = self.sql;
        let at = |i: usize| sql.get(i).copied().unwrap_or(0);
        let word = |lexer: &mut Lexer<'a>| {
            let end = lexer.ident_end(start);
            lexer.pos = end;
            lexer.word_end = end;
            Token::new(Tok::Word, start, end)
        };
        if at(start) == b'0' && (at(start + 1) == b'x' || at(start + 1) == b'b') {
            let hex = at(start + 1) == b'x';
            let mut i = start + 2;
            while if hex {
                at(i).is_ascii_hexdigit()
            } else {
                matches!(at(i), b'0' | b'1')
            } {
                i += 1;
            }
            if i > start + 2 && !is_ident_byte(at(i)) {
                self.pos = i;
                return Token::new(Tok::Number, start, i);
            }
            return word(self);
        }
        let mut i = start;
        while at(i).is_ascii_digit() {
            i += 1;
        }
        let exponent = |i: usize| -> Option<usize> {
            if !matches!(at(i), b'e' | b'E') {
                return None;
            }
            let mut j = i + 1;
            if matches!(at(j), b'+' | b'-') {
                j += 1;
            }
            if !at(j).is_ascii_digit() {
                return None;
            }
            while at(j).is_ascii_digit() {
                j += 1;
            }
            Some(j)
        };
        if at(i) == b'.' {
            i += 1;
            while at(i).is_ascii_digit() {
                i += 1;
            }
            if let Some(j) = exponent(i) {
                i = j;
            }
        } else if is_ident_byte(at(i)) {
            match exponent(i) {
                Some(j) => i = j,
                None => return word(self),
            }
        }
        self.pos = i;
        Token::new(Tok::Number, start, i)
    }

    /// A string from `body` (after the opening quote) to its closing quote.
    fn string(&mut self, start: usize, body: usize, q: u8, kind: Tok) -> Token {
        // Hex and bit strings and identifiers take no backslash escapes.
        let backslash = !self.no_backslash_escapes && matches!(kind, Tok::Str | Tok::NStr);
        self.delimited(start, body, q, kind, backslash)
    }

    fn delimited(&mut self, start: usize, body: usize, q: u8, kind: Tok, backslash: bool) -> Token {
        match self.quote_end(body, q, backslash) {
            Some((end, escaped)) => {
                self.pos = end;
                let mut t = Token::new(kind, start, end);
                t.escaped = escaped;
                t
            }
            None => self.error(),
        }
    }

    /// The end (past the closing quote) of a quoted body starting at
    /// `body`, and whether it holds escapes or doubled quotes; None when
    /// unterminated.
    #[inline]
    fn quote_end(&self, body: usize, q: u8, backslash: bool) -> Option<(usize, bool)> {
        let sql = self.sql;
        let mut i = body;
        let mut escaped = false;
        loop {
            if i >= sql.len() {
                // Unterminated (maybe a `\\` as the last byte).
                return None;
            }
            let j = i + if backslash {
                memchr2(q, b'\\', &sql[i..])?
            } else {
                memchr(q, &sql[i..])?
            };
            if sql[j] == b'\\' {
                escaped = true;
                i = j + 2;
                continue;
            }
            if sql.get(j + 1) == Some(&q) {
                escaped = true;
                i = j + 2;
                continue;
            }
            return Some((j + 1, escaped));
        }
    }

    /// A backquoted (or ANSI double-quoted) identifier.
    fn quoted(&mut self, start: usize, q: u8) -> Token {
        // `t`.col is a qualified name too (but `t`.5 is not: the server
        // lexes a number there, and so does the `.` rule in `token`).
        self.delimited(start, start + 1, q, Tok::Quoted, false)
    }

    fn variable(&mut self, start: usize) -> Token {
        let mut i = start + 1;
        if self.at(i) == b'@' {
            i += 1;
        }
        match self.at(i) {
            q @ (b'\'' | b'"' | b'`') => {
                let t = if q == b'`' {
                    self.delimited(start, i + 1, q, Tok::Quoted, false)
                } else {
                    self.string(start, i + 1, q, Tok::Str)
                };
                if t.kind == Tok::Error {
                    return t;
                }
                self.pos = t.end;
                return Token::new(Tok::Var, start, t.end);
            }
            _ => {
                while is_ident_byte(self.at(i)) || (self.at(i) == b'.' && i < self.sql.len()) {
                    i += 1;
                }
            }
        }
        self.pos = i;
        Token::new(Tok::Var, start, i)
    }
}

/// The value of a quoted identifier or string body with its escapes
/// resolved, as the server reads it: the doubled delimiter is one, and with
/// backslash escapes `\n` `\t` `\r` `\b` `\0` `\Z` are control bytes, `\%`
/// and `\_` keep their backslash (for LIKE), any other `\x` is `x`.
pub(crate) fn unescape(body: &[u8], q: u8, backslash: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if backslash && c == b'\\' && i + 1 < body.len() {
            let e = body[i + 1];
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(0x08),
                b'0' => out.push(0),
                b'Z' => out.push(0x1a),
                b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                _ => out.push(e),
            }
            i += 2;
        } else if c == q && body.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Tok, String)> {
        kinds_with(sql, false, false, 101119)
    }

    fn kinds_with(sql: &str, nbe: bool, ansi: bool, v: u32) -> Vec<(Tok, String)> {
        let mut l = Lexer::new(sql.as_bytes(), nbe, ansi, v);
        let mut out = Vec::new();
        loop {
            let t = l.next_token();
            if matches!(t.kind, Tok::End | Tok::Error) {
                out.push((t.kind, String::new()));
                return out;
            }
            out.push((t.kind, sql[t.start..t.end].to_string()));
        }
    }

    fn texts(sql: &str) -> Vec<String> {
        kinds(sql).into_iter().map(|(_, s)| s).collect()
    }

    #[test]
    fn the_keyword_filter_passes_every_keyword_and_changes_no_answer() {
        let mut rng = crate::test_rng::XorShift::new(0x5851_f42d_4c95_7f2d);
        let mut next = |n: usize| rng.below(n);
        let mut passed = 0;
        for _ in 0..100_000 {
            let len = 1 + next(17);
            let word: Vec<u8> = (0..len)
                .map(|_| b"abeilnorstuwxyzAEINORSTU_019$\x80\xc1"[next(31)])
                .collect();
            assert_eq!(keyword(&word), keyword_by_match(&word), "{word:?}");
            let b = keyword_filter_bit(&word);
            passed += usize::from(KEYWORD_FILTER[b / 64] & (1 << (b % 64)) != 0);
        }
        // It filters: most random words never reach the match.
        assert!(passed < 30_000, "{passed}");
        for (k, kw) in KEYWORDS {
            let text: Vec<u8> = k
                .to_be_bytes()
                .into_iter()
                .skip_while(|&c| c == 0)
                .collect();
            assert_eq!(keyword(&text), kw);
            assert_eq!(keyword(&text.to_ascii_lowercase()), kw);
            for _ in 0..8 {
                let mixed: Vec<u8> = text
                    .iter()
                    .map(|&c| match next(2) {
                        0 => c.to_ascii_lowercase(),
                        _ => c,
                    })
                    .collect();
                assert_eq!(keyword(&mixed), kw, "{mixed:?}");
            }
        }
    }

    #[test]
    fn keywords_in_any_case_and_nothing_else() {
        assert_eq!(keyword(b"select"), Kw::Select);
        assert_eq!(keyword(b"SeLeCt"), Kw::Select);
        assert_eq!(keyword(b"STRAIGHT_JOIN"), Kw::StraightJoin);
        assert_eq!(keyword(b"low_priority"), Kw::LowPriority);
        assert_eq!(keyword(b"selects"), Kw::None);
        assert_eq!(keyword(b"users"), Kw::None);
        assert_eq!(keyword(b""), Kw::None);
        assert_eq!(keyword(b"a_name_longer_than_sixteen_bytes"), Kw::None);
        for (k, kw) in KEYWORDS {
            assert_ne!(kw, Kw::None);
            assert_eq!(KEYWORDS.iter().filter(|e| e.0 == k).count(), 1);
        }
    }

    #[test]
    fn dash_dash_needs_a_space_or_control_after_it() {
        assert_eq!(texts("42 --1"), ["42", "-", "-", "1", ""]);
        assert_eq!(texts("42 -- 1"), ["42", ""]);
        assert_eq!(texts("42 --\t1\n7"), ["42", "7", ""]);
        assert_eq!(texts("42 --"), ["42", ""]);
        assert_eq!(texts("42 --\x01x"), ["42", ""]);
        assert_eq!(texts("42 # x\n7"), ["42", "7", ""]);
    }

    #[test]
    fn plain_comments_do_not_nest() {
        assert_eq!(texts("1 /* a /* b */ 2 */"), ["1", "2", "*", "/", ""]);
        assert_eq!(texts("1 /*/ 2 */ 3"), ["1", "3", ""]);
        assert_eq!(kinds("1 /* open").last().unwrap().0, Tok::Error);
    }

    #[test]
    fn versioned_comments_follow_the_server_version() {
        assert_eq!(texts("1 /*!50000 +1 */"), ["1", "+", "1", ""]);
        assert_eq!(texts("1 /*! +1 */"), ["1", "+", "1", ""]);
        assert_eq!(texts("1 /*M! +1 */"), ["1", "+", "1", ""]);
        assert_eq!(texts("1 /*!99999 +1 */"), ["1", ""]);
        assert_eq!(texts("1 /*M!101119 +1 */"), ["1", "+", "1", ""]);
        assert_eq!(texts("1 /*M!101120 +1 */"), ["1", ""]);
        // MySQL 5.7+ versions are skipped by MariaDB, unless M-marked.
        assert_eq!(texts("1 /*!50700 +1 */"), ["1", ""]);
        assert_eq!(texts("1 /*M!50700 +1 */"), ["1", "+", "1", ""]);
        // The version runs into the code without a space.
        assert_eq!(texts("/*!40101SET x=1*/"), ["SET", "x", "=", "1", ""]);
        // A sixth digit belongs to the version, a seventh to the code.
        assert_eq!(texts("/*!1000001 */"), ["1", ""]);
        // Skipped versioned comments may hold one plain comment level.
        assert_eq!(texts("1 /*!99999 a /* b */ c */ 2"), ["1", "2", ""]);
        // Plain comments inside code comments end at their first `*/`.
        assert_eq!(texts("/*!50000 1 /* x */ 2 */ 3"), ["1", "2", "3", ""]);
        assert_eq!(kinds("/*!50000 1").last().unwrap().0, Tok::Error);
        assert_eq!(kinds("/*! /*! 1 */ */").last().unwrap().0, Tok::Error);
        // Outside a code comment `*/` is two operators.
        assert_eq!(texts("1 */"), ["1", "*", "/", ""]);
        // With an older server the comment is skipped.
        assert_eq!(kinds_with("/*!50000 1 */", false, false, 40000).len(), 1);
    }

    #[test]
    fn strings_escapes_and_quotes() {
        assert_eq!(texts(r"'a\'b' 'c''d' x"), [r"'a\'b'", "'c''d'", "x", ""]);
        assert_eq!(kinds(r"'a\'")[0].0, Tok::Error);
        // NO_BACKSLASH_ESCAPES: `\` is a character, the quote ends the string.
        assert_eq!(
            kinds_with(r"'a\' x", true, false, 0)
                .iter()
                .map(|t| t.1.as_str())
                .collect::<Vec<_>>(),
            [r"'a\'", "x", ""]
        );
        assert_eq!(kinds(r#""a" x"#)[0].0, Tok::Str);
        assert_eq!(kinds_with(r#""a" x"#, false, true, 0)[0].0, Tok::Quoted);
        assert_eq!(texts("`a``b`.c"), ["`a``b`", ".", "c", ""]);
        assert_eq!(
            unescape(br"a\nb\%\_\x''", b'\'', true),
            b"a\nb\\%\\_x'".to_vec()
        );
        assert_eq!(unescape(br"a\n''", b'\'', false), br"a\n'".to_vec());
    }

    #[test]
    fn numbers_and_names_that_start_with_digits() {
        assert_eq!(
            kinds("42 4.2e1 .5 1.e5 0x2A 0b101 12abc 0xfoo 1e 1e+5"),
            [
                (Tok::Number, "42".into()),
                (Tok::Number, "4.2e1".into()),
                (Tok::Number, ".5".into()),
                (Tok::Number, "1.e5".into()),
                (Tok::Number, "0x2A".into()),
                (Tok::Number, "0b101".into()),
                (Tok::Word, "12abc".into()),
                (Tok::Word, "0xfoo".into()),
                (Tok::Word, "1e".into()),
                (Tok::Number, "1e+5".into()),
                (Tok::End, "".into()),
            ]
        );
        // After a name, `.5` is a qualified name; after a space, a number.
        assert_eq!(
            kinds("t.5 t .5").iter().map(|t| t.0).collect::<Vec<_>>(),
            [
                Tok::Word,
                Tok::Dot,
                Tok::Word,
                Tok::Word,
                Tok::Number,
                Tok::End
            ]
        );
        assert_eq!(kinds("x'2A' b'1' N'z'")[0].0, Tok::Hex);
        assert_eq!(kinds("x'2A' b'1' N'z'")[1].0, Tok::Bit);
        assert_eq!(kinds("x'2A' b'1' N'z'")[2].0, Tok::NStr);
    }

    #[test]
    fn operators_and_placeholders() {
        let k: Vec<Tok> = kinds("a<=>? && || ? @x @@s.v @'q' := !=")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(
            k,
            [
                Tok::Word,
                Tok::NullSafeEq,
                Tok::Placeholder,
                Tok::AndAnd,
                Tok::OrOr,
                Tok::Placeholder,
                Tok::Var,
                Tok::Var,
                Tok::Var,
                Tok::Op,
                Tok::Op,
                Tok::End
            ]
        );
        let mut l = Lexer::new(b"? '?' /* ? */ ?", false, false, 0);
        let a = l.next_token();
        l.next_token();
        let b = l.next_token();
        assert_eq!((a.index, b.index, l.placeholders()), (0, 1, 2));
    }
}
