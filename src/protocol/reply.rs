//! The reply tracker: follows a server's reply to one command packet by
//! packet, so the proxy can stream it to the client as it arrives and know
//! exactly where it ends.
//!
//! Protocol pages: <https://mariadb.com/kb/en/result-set-packets/>,
//! <https://mariadb.com/kb/en/com_stmt_prepare/>,
//! <https://mariadb.com/kb/en/com_stmt_execute/>,
//! <https://mariadb.com/kb/en/com_stmt_fetch/>,
//! <https://mariadb.com/kb/en/com_field_list/>,
//! <https://mariadb.com/kb/en/com_statistics/>,
//! <https://mariadb.com/kb/en/com_set_option/>,
//! <https://mariadb.com/kb/en/load-data-infile/> (LOCAL INFILE).
//!
//! Only the first [`PEEK`] bytes of each logical packet are decoded; the rest
//! of its body, and every continuation frame of a packet of 16 MiB or more,
//! is passed without a look. A row is told from an OK packet by its position
//! in the reply, never by its first byte (binary rows start with 0x00 too).
//!
//! ```text
//!  Query / Execute / InfileResult          Prepare
//!  ------------------------------          -------
//!        +---------------+                 PrepareOk --ERR--> Done
//!  +---->|  ResultStart  |--ERR--> Done        | OK: ids, #params, #columns
//!  |     +---------------+--0xFB--> LocalInfile (Query only)
//!  |      |OK         |column count         Params (#params defs)
//!  |      |           v                        | !DEPRECATE_EOF && #params>0
//!  |      |     Columns (count defs)         ParamsEof
//!  |      |           | !DEPRECATE_EOF         |
//!  |      |           v                      Columns (#columns defs)
//!  |      |     ColumnsEof --CURSOR_EXISTS-->  | !DEPRECATE_EOF && #columns>0
//!  |      |           |     Done (Execute)   ColumnsEof
//!  |      |           v                        |
//!  |      |     Rows <----+ row                Done
//!  |      |      |  |-----+
//!  |      |      |  +--ERR--> Done         Fetch: Rows until terminator/ERR
//!  |      |      | terminator (EOF, or OK  FieldList: column defs until
//!  |      |      | with 0xFE header)          terminator/ERR
//!  |      v      v                         Statistics: one packet, any bytes
//!  +--MORE_RESULTS_EXISTS?--no--> Done     Simple: one OK, EOF or ERR
//! ```
//!
//! InfileResult starts at ResultStart but takes only OK or ERR there first:
//! it follows the file content of a LOCAL INFILE request, and its OK may
//! announce more results of a multi-statement query.
//!
//! Under MariaDB's metadata caching (`MARIADB_CLIENT_CACHE_METADATA`) the
//! column count carries a flag byte: 1, the definitions follow; 0, they are
//! left out (an execute whose columns the client already has) and the
//! result goes on at ColumnsEof, or at Rows under DEPRECATE_EOF. The
//! tracker then fingerprints the column definitions of prepare and execute
//! replies, so the session can tell whether the definitions a client holds
//! are the ones the server believes it has (see
//! [`ReplyTracker::caching_metadata`]).

use std::fmt;
use std::hash::{DefaultHasher, Hasher};

use super::consts::caps::CLIENT_DEPRECATE_EOF;
use super::consts::status::{SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_CURSOR_EXISTS};
use super::frame::{parse_header, HEADER_LEN, MAX_FRAME_PAYLOAD};
use super::reader::{lenenc_int_len, Reader};

/// Bytes of a packet's start the tracker decodes: enough for an OK packet's
/// status flags (1 + 9 + 9 + 2) and a prepare OK.
pub const PEEK: usize = 32;

/// The most columns a result set may announce before the tracker calls the
/// reply corrupt. COM_STMT_PREPARE counts columns in a u16; no server builds
/// a wider result.
pub const MAX_COLUMNS: u64 = u16::MAX as u64;

/// The shape of reply a command gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// COM_QUERY: OK, ERR, LOCAL INFILE request, or result sets.
    Query,
    /// COM_STMT_PREPARE.
    Prepare,
    /// COM_STMT_EXECUTE: like Query with binary rows; no LOCAL INFILE; a
    /// cursor ends the reply after the column definitions.
    Execute,
    /// COM_STMT_FETCH: binary rows until a terminator or ERR.
    Fetch,
    /// COM_FIELD_LIST: column definitions until a terminator or ERR.
    FieldList,
    /// COM_STATISTICS: one packet of any content.
    Statistics,
    /// One OK, EOF or ERR packet: COM_PING, COM_INIT_DB,
    /// COM_RESET_CONNECTION, COM_STMT_RESET, COM_SET_OPTION, the final packet
    /// of COM_CHANGE_USER.
    Simple,
    /// The OK or ERR after the client sent a LOCAL INFILE file; an OK with
    /// SERVER_MORE_RESULTS_EXISTS continues like Query.
    InfileResult,
}

/// Where a reply stands after a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyState {
    /// More packets belong to the reply.
    InProgress,
    /// The reply ended with the last forwardable byte. `status` is the
    /// server status of its last OK or EOF; after an ERR it is the last
    /// status seen before (see [`ReplyTracker::with_status`]).
    Done {
        /// Server status flags.
        status: u16,
    },
    /// The server asked for a LOCAL INFILE file (the request is the last
    /// forwardable packet): relay the client's file with
    /// [`crate::protocol::frame::InfileRelay`], then track
    /// [`Expect::InfileResult`].
    LocalInfile,
}

/// What a scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyScan {
    /// Leading bytes of the scanned buffer that belong to the reply and may
    /// be forwarded now.
    pub forwardable: usize,
    /// Where the reply stands after them.
    pub state: ReplyState,
}

/// A reply that cannot be a valid answer to the command: the backend
/// connection is out of step and must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// An empty packet where a packet start had to be decoded.
    EmptyPacket {
        /// What was expected.
        expected: &'static str,
    },
    /// A packet that cannot start here.
    Unexpected {
        /// What was expected.
        expected: &'static str,
        /// The packet's first byte.
        first_byte: u8,
    },
    /// A result set announcing 0 or more than [`MAX_COLUMNS`] columns.
    BadColumnCount {
        /// The count.
        count: u64,
    },
    /// A packet too short for its own header's fields.
    Malformed {
        /// The packet kind.
        packet: &'static str,
    },
    /// Column definitions left out (metadata caching) from a later result
    /// of a reply whose client holds other ones: the result cannot be
    /// dropped on its own.
    MetadataSkipped,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::EmptyPacket { expected } => {
                write!(f, "backend sent an empty packet, expected {expected}")
            }
            ReplyError::Unexpected {
                expected,
                first_byte,
            } => {
                write!(
                    f,
                    "backend sent a packet starting {first_byte:#04x}, expected {expected}"
                )
            }
            ReplyError::BadColumnCount { count } => write!(f, "backend announced {count} columns"),
            ReplyError::Malformed { packet } => {
                write!(f, "backend sent a malformed {packet} packet")
            }
            ReplyError::MetadataSkipped => write!(
                f,
                "backend left out column definitions the client does not have"
            ),
        }
    }
}

impl std::error::Error for ReplyError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    ResultStart,
    Columns {
        left: u64,
    },
    ColumnsEof,
    Rows,
    PrepareOk,
    Params {
        left: u16,
        columns: u16,
    },
    ParamsEof {
        columns: u16,
    },
    PrepColumns {
        left: u16,
    },
    PrepColumnsEof,
    FieldDefs,
    Single,
    /// The packet being passed ends the reply.
    Ending(ReplyState),
    Ended(ReplyState),
}

/// Follows one reply. Feed it the bytes received from the backend and not
/// yet scanned; drop the `forwardable` prefix it reports and call again with
/// the rest plus newly read bytes.
///
/// ```
/// use dbrouter::protocol::frame::write_packet;
/// use dbrouter::protocol::packet::write_ok;
/// use dbrouter::protocol::reply::{Expect, ReplyState, ReplyTracker};
///
/// let mut buf = Vec::new();
/// write_ok(&mut buf, 1, 0, 0, 2, 0);
/// write_packet(&mut buf, 0, b"\x0e"); // not part of the reply
/// let mut t = ReplyTracker::new(Expect::Query, 0);
/// let s = t.scan(&buf).unwrap();
/// assert_eq!(s.forwardable, 11);
/// assert_eq!(s.state, ReplyState::Done { status: 2 });
/// ```
#[derive(Clone, Debug)]
pub struct ReplyTracker {
    expect: Expect,
    deprecate_eof: bool,
    phase: Phase,
    status: u16,
    error: bool,
    /// Payload bytes of the current frame not yet passed.
    body_left: usize,
    /// Inside a logical packet whose first header was seen.
    in_packet: bool,
    /// The current frame is MAX_FRAME_PAYLOAD long: a continuation follows.
    continued: bool,
    /// The reply's first packet has been decoded.
    started: bool,
    /// The last insert id of the reply's last OK result (0: none).
    insert_id: u64,
    /// What the reply leaves in ROW_COUNT() (None: nothing seen yet).
    row_count: Option<i64>,
    /// What it leaves in FOUND_ROWS(): the rows of its last result set.
    found_rows: Option<u64>,
    /// Rows of the result set being read.
    rows: u64,
    /// The sequence id the next frame from the server should carry: where a
    /// proxy-made ERR goes if the server is lost mid-reply.
    next_seq: u8,
    /// MariaDB metadata caching: column counts carry a flag byte.
    metadata_cache: bool,
    /// The client's definitions may not be the server's: a result without
    /// them must not reach the client.
    metadata_required: bool,
    /// The reply left out definitions the client lacks: it is dropped whole,
    /// and the session answers with an error in its place.
    discard: bool,
    /// The sequence id of the reply's first packet.
    first_seq: u8,
    /// Fingerprints column definitions (metadata caching, prepare and
    /// execute replies).
    hasher: Option<DefaultHasher>,
    /// The packet being passed is a column definition being fingerprinted.
    hashing: bool,
    /// An execute reply carried column definitions.
    metadata_seen: bool,
}

/// Whether `scan` takes the rows shortcut (`skip_rows`): always, but in the
/// tests that check it against the general path.
mod shortcut {
    #[cfg(not(test))]
    pub fn on() -> bool {
        true
    }

    #[cfg(test)]
    thread_local! {
        pub static OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[cfg(test)]
    pub fn on() -> bool {
        !OFF.with(std::cell::Cell::get)
    }
}

/// The affected-rows and last-insert-id fields of an OK packet's head (0
/// if malformed).
fn ok_counts(head: &[u8]) -> (u64, u64) {
    let mut r = Reader::new(head);
    r.skip(1);
    let affected = r.lenenc_int().unwrap_or(0);
    (affected, r.lenenc_int().unwrap_or(0))
}

impl ReplyTracker {
    /// A tracker for a reply of shape `expect`, under the session's
    /// negotiated `capabilities`.
    pub fn new(expect: Expect, capabilities: u32) -> ReplyTracker {
        let phase = match expect {
            Expect::Query | Expect::Execute | Expect::InfileResult => Phase::ResultStart,
            Expect::Prepare => Phase::PrepareOk,
            Expect::Fetch => Phase::Rows,
            Expect::FieldList => Phase::FieldDefs,
            Expect::Statistics | Expect::Simple => Phase::Single,
        };
        ReplyTracker {
            expect,
            deprecate_eof: capabilities & CLIENT_DEPRECATE_EOF != 0,
            phase,
            status: 0,
            error: false,
            body_left: 0,
            in_packet: false,
            continued: false,
            started: false,
            insert_id: 0,
            row_count: None,
            found_rows: None,
            rows: 0,
            next_seq: 1,
            metadata_cache: false,
            metadata_required: false,
            discard: false,
            first_seq: 0,
            hasher: None,
            hashing: false,
            metadata_seen: false,
        }
    }

    /// The session negotiated MariaDB's metadata caching: column counts
    /// carry a flag byte, and the column definitions of a prepare or an
    /// execute reply are fingerprinted ([`Self::metadata`]).
    /// `client_may_differ`: the definitions the client holds for this
    /// statement may not be the ones the server last sent it (the proxy
    /// prepared it there itself, or another backend sent the client newer
    /// ones); then a result without definitions is dropped
    /// ([`Self::discarded`]) instead of being misread by the client.
    pub fn caching_metadata(mut self, client_may_differ: bool) -> ReplyTracker {
        self.metadata_cache = true;
        self.metadata_required = client_may_differ;
        if matches!(self.expect, Expect::Prepare | Expect::Execute) {
            self.hasher = Some(DefaultHasher::new());
        }
        self
    }

    /// The fingerprint of the column definitions this reply carried, under
    /// metadata caching: a prepare reply's (once it ended well), or an
    /// execute reply's when it sent any. Equal fingerprints, equal
    /// definitions.
    pub fn metadata(&self) -> Option<u64> {
        let hasher = self.hasher.as_ref()?;
        let carried = match self.expect {
            Expect::Prepare => self.is_done() && !self.error,
            _ => self.metadata_seen && !self.discard,
        };
        carried.then(|| hasher.finish())
    }

    /// The reply is being dropped: it left out column definitions the
    /// client may not have (see [`Self::caching_metadata`]). Its bytes must
    /// not be forwarded; once it is done, the client gets an error instead,
    /// with the sequence id returned (that of the reply's first packet).
    pub fn discarded(&self) -> Option<u8> {
        self.discard.then_some(self.first_seq)
    }

    /// Sets the sequence id the reply starts at (1 after a one-packet
    /// command; after a LOCAL INFILE upload, the one after the client's
    /// empty packet).
    pub fn starting_at(mut self, seq: u8) -> ReplyTracker {
        self.next_seq = seq;
        self
    }

    /// The sequence id of the next frame the server would send; after the
    /// reply ended, of the packet after its last one.
    pub fn next_seq(&self) -> u8 {
        self.next_seq
    }

    /// The sequence id of an ERR the proxy sends in place of the rest of
    /// the reply: [`Self::next_seq`], or for a discarded reply (of which
    /// the client got nothing) that of its first packet.
    pub fn err_seq(&self) -> u8 {
        self.discarded().unwrap_or(self.next_seq)
    }

    /// Seeds the status reported when the reply ends with an ERR (which
    /// carries none): pass the session's status from before the command.
    pub fn with_status(mut self, status: u16) -> ReplyTracker {
        self.status = status;
        self
    }

    /// The last server status seen (or seeded).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the reply ended, or is ending, with an ERR packet.
    /// The insert id of the reply's last OK result: non-zero when a
    /// statement generated an AUTO_INCREMENT value (what LAST_INSERT_ID()
    /// reads next on that connection).
    pub fn insert_id(&self) -> u64 {
        self.insert_id
    }

    /// What ROW_COUNT() returns after this reply, as the server counts
    /// it: the affected rows of an OK, -1 after a result set or an error
    /// (None: the reply has no result, e.g. a cursor opened).
    pub fn row_count(&self) -> Option<i64> {
        self.row_count
    }

    /// What FOUND_ROWS() returns after this reply: the rows of its last
    /// result set (None: it had none, and FOUND_ROWS() is left as it was).
    pub fn found_rows(&self) -> Option<u64> {
        self.found_rows
    }

    /// Whether the reply is to a statement (COM_QUERY, COM_STMT_EXECUTE, a
    /// LOAD DATA upload): what sets ROW_COUNT() and FOUND_ROWS().
    pub fn counts_statements(&self) -> bool {
        matches!(
            self.expect,
            Expect::Query | Expect::Execute | Expect::InfileResult
        )
    }

    pub fn ended_with_error(&self) -> bool {
        self.error
    }

    /// Whether the reply is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Ended(ReplyState::Done { .. }))
    }

    /// Scans `buf`, the bytes after those already reported forwardable. Once
    /// the reply has ended, further scans report 0 bytes and the same state.
    pub fn scan(&mut self, buf: &[u8]) -> Result<ReplyScan, ReplyError> {
        let mut pos = 0;
        loop {
            if let Phase::Ended(state) = self.phase {
                return Ok(ReplyScan {
                    forwardable: pos,
                    state,
                });
            }
            if self.body_left > 0 {
                let n = self.body_left.min(buf.len() - pos);
                if self.hashing {
                    if let Some(h) = self.hasher.as_mut() {
                        h.write(&buf[pos..pos + n]);
                    }
                }
                pos += n;
                self.body_left -= n;
                if self.body_left > 0 {
                    break;
                }
            }
            if self.in_packet && !self.continued {
                self.in_packet = false;
                if let Phase::Ending(state) = self.phase {
                    self.phase = Phase::Ended(state);
                    continue;
                }
            }
            // At a packet start (nothing of a frame left to pass).
            if !self.in_packet && self.phase == Phase::Rows && shortcut::on() {
                pos = self.skip_rows(buf, pos);
            }
            let Some(h) = buf.get(pos..).and_then(parse_header) else {
                break;
            };
            if !self.in_packet {
                // A packet start: decode its first bytes before passing any.
                let peek = h.len.min(PEEK);
                let Some(head) = buf.get(pos + HEADER_LEN..pos + HEADER_LEN + peek) else {
                    break;
                };
                self.on_packet(head, h.len)?;
                if !self.started {
                    self.first_seq = h.seq;
                }
                self.started = true;
                self.in_packet = true;
            }
            pos += HEADER_LEN;
            self.body_left = h.len;
            self.continued = h.len == MAX_FRAME_PAYLOAD;
            self.next_seq = h.seq.wrapping_add(1);
        }
        Ok(ReplyScan {
            forwardable: pos,
            state: ReplyState::InProgress,
        })
    }

    /// Passes the whole rows at `buf[pos..]`, the bulk of most replies, with
    /// one look at each: a packet here in full, of less than a frame, whose
    /// first byte is not 0xFF (ERR) or 0xFE (a terminator, or a text row that
    /// `on_packet` tells apart), and 0x00 in binary rows, is one more row.
    /// Anything else, and a row not all here, is left to the general path
    /// (which does the same for rows, one field at a time). Returns where it
    /// stopped.
    fn skip_rows(&mut self, buf: &[u8], mut pos: usize) -> usize {
        let binary = self.binary_rows();
        while let (Some(h), Some(&first)) = (
            buf.get(pos..).and_then(parse_header),
            buf.get(pos + HEADER_LEN),
        ) {
            let end = pos + HEADER_LEN + h.len;
            if h.len == 0
                || h.len >= MAX_FRAME_PAYLOAD
                || end > buf.len()
                || first >= 0xfe
                || (binary && first != 0x00)
            {
                break;
            }
            if !self.started {
                self.first_seq = h.seq;
                self.started = true;
            }
            self.rows += 1;
            self.hashing = false;
            self.next_seq = h.seq.wrapping_add(1);
            pos = end;
        }
        pos
    }

    fn binary_rows(&self) -> bool {
        matches!(self.expect, Expect::Execute | Expect::Fetch)
    }

    /// Whether a 0xFE packet of `len` bytes ends a result set rather than
    /// being a row or column definition: an EOF is under 9 bytes; under
    /// DEPRECATE_EOF the OK that replaces it is anything shorter than a full
    /// frame (a text row starting 0xFE holds a string of 2^24 bytes or more).
    fn is_terminator(&self, len: usize) -> bool {
        if self.deprecate_eof {
            len < MAX_FRAME_PAYLOAD
        } else {
            len < 9
        }
    }

    /// The status of a terminator: an EOF (5 bytes), or under DEPRECATE_EOF
    /// an OK with the 0xFE header (7 bytes at least). The length tells them
    /// apart. It matters after a cursor's column definitions under
    /// DEPRECATE_EOF: MariaDB 10.11 sends a 7-byte OK there (captured in
    /// `testdata/mariadb/execute_cursor.execute.dep.bin`), while MySQL's
    /// `end_result_metadata` is said to keep a 5-byte EOF; both are read right.
    fn terminator_status(&self, head: &[u8]) -> Result<u16, ReplyError> {
        let mut r = Reader::new(head);
        r.skip(1);
        let status = if self.deprecate_eof && head.len() >= 7 {
            r.lenenc_int()
                .and_then(|_| r.lenenc_int())
                .and_then(|_| r.u16_le())
        } else {
            r.u16_le().and_then(|_| r.u16_le())
        };
        status.ok_or(ReplyError::Malformed { packet: "EOF" })
    }

    fn ok_status(head: &[u8]) -> Result<u16, ReplyError> {
        let mut r = Reader::new(head);
        r.skip(1);
        r.lenenc_int()
            .and_then(|_| r.lenenc_int())
            .and_then(|_| r.u16_le())
            .ok_or(ReplyError::Malformed { packet: "OK" })
    }

    fn done(&mut self) -> Phase {
        Phase::Ending(ReplyState::Done {
            status: self.status,
        })
    }

    /// The result ended with `status`: another follows or the reply ends.
    fn after_result(&mut self, status: u16) -> Phase {
        self.status = status;
        if status & SERVER_MORE_RESULTS_EXISTS != 0 {
            Phase::ResultStart
        } else {
            self.done()
        }
    }

    /// An ERR ends the reply, except MariaDB's progress reports (code
    /// 0xFFFF), which only come with a capability the proxy never sets but
    /// are harmless to pass.
    fn err(&mut self, head: &[u8]) -> Option<Phase> {
        if head.get(1..3) == Some(&[0xff, 0xff]) {
            return None;
        }
        self.error = true;
        self.row_count = Some(-1);
        Some(self.done())
    }

    /// Decides what a packet is from its first `head` bytes (`len` in all)
    /// and moves to the next phase.
    fn on_packet(&mut self, head: &[u8], len: usize) -> Result<(), ReplyError> {
        let expected = self.expected();
        let Some(&first) = head.first() else {
            if self.expect == Expect::Statistics {
                self.phase = self.done();
                return Ok(());
            }
            return Err(ReplyError::EmptyPacket { expected });
        };
        let unexpected = ReplyError::Unexpected {
            expected,
            first_byte: first,
        };
        self.hashing = matches!(
            self.phase,
            Phase::Columns { .. } | Phase::PrepColumns { .. }
        );
        self.phase = match self.phase {
            Phase::ResultStart => match first {
                0x00 => {
                    let status = Self::ok_status(head)?;
                    let (affected, insert_id) = ok_counts(head);
                    self.insert_id = insert_id;
                    self.row_count = Some(affected as i64);
                    self.after_result(status)
                }
                0xff => match self.err(head) {
                    Some(p) => p,
                    None => return Ok(()),
                },
                // InfileResult's first packet is OK or ERR only; a later
                // result of the same query may ask for a file again.
                0xfb if self.expect == Expect::Query
                    || (self.expect == Expect::InfileResult && self.started) =>
                {
                    Phase::Ending(ReplyState::LocalInfile)
                }
                _ if self.expect == Expect::InfileResult && !self.started => {
                    return Err(unexpected)
                }
                _ => {
                    let mut r = Reader::new(head);
                    let count = r.lenenc_int().ok_or(unexpected)?;
                    // The packet holds the count and nothing else, but for
                    // the metadata caching flag.
                    let count_len = lenenc_int_len(count);
                    let flag_len = usize::from(self.metadata_cache);
                    if count_len + flag_len != len {
                        return Err(unexpected);
                    }
                    if count == 0 || count > MAX_COLUMNS {
                        return Err(ReplyError::BadColumnCount { count });
                    }
                    self.rows = 0;
                    let definitions = match self.metadata_cache.then(|| head.get(count_len)) {
                        None | Some(Some(1)) => true,
                        Some(Some(0)) => false,
                        Some(_) => {
                            return Err(ReplyError::Malformed {
                                packet: "column count",
                            })
                        }
                    };
                    if definitions {
                        self.metadata_seen |= self.expect == Expect::Execute;
                        Phase::Columns { left: count }
                    } else {
                        if self.metadata_required {
                            // Only the first result can be dropped whole
                            // (CALL results, the only later ones, always
                            // carry their definitions).
                            if self.started {
                                return Err(ReplyError::MetadataSkipped);
                            }
                            self.discard = true;
                            self.error = true;
                            self.row_count = Some(-1);
                        }
                        self.columns_end()
                    }
                }
            },
            Phase::Columns { left } => {
                if left > 1 {
                    Phase::Columns { left: left - 1 }
                } else {
                    self.columns_end()
                }
            }
            Phase::ColumnsEof => {
                if first != 0xfe || len >= 9 {
                    return Err(unexpected);
                }
                self.status = self.terminator_status(head)?;
                if self.expect == Expect::Execute && self.status & SERVER_STATUS_CURSOR_EXISTS != 0
                {
                    self.done()
                } else {
                    Phase::Rows
                }
            }
            Phase::Rows => match first {
                0xff => match self.err(head) {
                    Some(p) => p,
                    None => return Ok(()),
                },
                0xfe if self.is_terminator(len) => {
                    let status = self.terminator_status(head)?;
                    if self.expect == Expect::Fetch {
                        self.status = status;
                        self.done()
                    } else {
                        // Under DEPRECATE_EOF a cursor's columns end here
                        // too: no rows were read, nothing to count.
                        if status & SERVER_STATUS_CURSOR_EXISTS == 0 {
                            self.row_count = Some(-1);
                            self.found_rows = Some(self.rows);
                        }
                        self.after_result(status)
                    }
                }
                _ if first != 0x00 && self.binary_rows() => return Err(unexpected),
                _ => {
                    self.rows += 1;
                    Phase::Rows
                }
            },
            Phase::PrepareOk => match first {
                0x00 => {
                    let mut r = Reader::new(head);
                    r.skip(5);
                    let (columns, params) =
                        r.u16_le().zip(r.u16_le()).ok_or(ReplyError::Malformed {
                            packet: "prepare OK",
                        })?;
                    if params > 0 {
                        Phase::Params {
                            left: params,
                            columns,
                        }
                    } else {
                        self.prepare_columns(columns)
                    }
                }
                0xff => {
                    self.error = true;
                    self.done()
                }
                _ => return Err(unexpected),
            },
            Phase::Params { left, columns } => {
                if left > 1 {
                    Phase::Params {
                        left: left - 1,
                        columns,
                    }
                } else if self.deprecate_eof {
                    self.prepare_columns(columns)
                } else {
                    Phase::ParamsEof { columns }
                }
            }
            Phase::ParamsEof { columns } => {
                if first != 0xfe || len >= 9 {
                    return Err(unexpected);
                }
                self.status = self.terminator_status(head)?;
                self.prepare_columns(columns)
            }
            Phase::PrepColumns { left } => {
                if left > 1 {
                    Phase::PrepColumns { left: left - 1 }
                } else if self.deprecate_eof {
                    self.done()
                } else {
                    Phase::PrepColumnsEof
                }
            }
            Phase::PrepColumnsEof => {
                if first != 0xfe || len >= 9 {
                    return Err(unexpected);
                }
                self.status = self.terminator_status(head)?;
                self.done()
            }
            Phase::FieldDefs => match first {
                0xff => {
                    self.error = true;
                    self.done()
                }
                0xfe if self.is_terminator(len) => {
                    self.status = self.terminator_status(head)?;
                    self.done()
                }
                _ => Phase::FieldDefs,
            },
            Phase::Single => match (self.expect, first) {
                (Expect::Statistics, _) => self.done(),
                (_, 0x00) => {
                    self.status = Self::ok_status(head)?;
                    self.done()
                }
                (_, 0xfe) if len < 9 || self.deprecate_eof => {
                    self.status = self.terminator_status(head)?;
                    self.done()
                }
                (_, 0xff) => {
                    self.error = true;
                    self.done()
                }
                _ => return Err(unexpected),
            },
            // The scan loop never decodes a packet start in these.
            Phase::Ending(_) | Phase::Ended(_) => return Err(unexpected),
        };
        Ok(())
    }

    /// After a result's column definitions (or where they were left out).
    fn columns_end(&self) -> Phase {
        if self.deprecate_eof {
            Phase::Rows
        } else {
            Phase::ColumnsEof
        }
    }

    fn prepare_columns(&mut self, columns: u16) -> Phase {
        if columns > 0 {
            Phase::PrepColumns { left: columns }
        } else {
            self.done()
        }
    }

    /// What the current phase expects, for error messages.
    fn expected(&self) -> &'static str {
        match self.phase {
            Phase::ResultStart if self.expect == Expect::InfileResult && !self.started => {
                "OK or ERR after LOCAL INFILE data"
            }
            Phase::ResultStart => "OK, ERR or a column count",
            Phase::Columns { .. } | Phase::PrepColumns { .. } => "a column definition",
            Phase::Params { .. } => "a parameter definition",
            Phase::ColumnsEof | Phase::ParamsEof { .. } | Phase::PrepColumnsEof => {
                "EOF after the column definitions"
            }
            Phase::Rows if self.binary_rows() => "a binary row, EOF/OK or ERR",
            Phase::Rows => "a row, EOF/OK or ERR",
            Phase::PrepareOk => "a prepare OK or ERR",
            Phase::FieldDefs => "a column definition, EOF or ERR",
            Phase::Single => "OK, EOF or ERR",
            Phase::Ending(_) | Phase::Ended(_) => "nothing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::consts::caps::CLIENT_PROTOCOL_41;
    use crate::protocol::consts::status::*;
    use crate::protocol::frame::write_packet;
    use crate::protocol::packet::{write_text_row, ColumnDefinition};

    const DEP: u32 = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF;
    const OLD: u32 = CLIENT_PROTOCOL_41;
    const AC: u16 = SERVER_STATUS_AUTOCOMMIT;
    const MORE: u16 = SERVER_MORE_RESULTS_EXISTS;

    /// Builds a reply the way a server frames it.
    struct B {
        out: Vec<u8>,
        seq: u8,
        dep: bool,
    }

    impl B {
        fn new(caps: u32) -> B {
            B {
                out: Vec::new(),
                seq: 1,
                dep: caps & CLIENT_DEPRECATE_EOF != 0,
            }
        }
        fn pkt(mut self, p: &[u8]) -> B {
            self.seq = write_packet(&mut self.out, self.seq, p);
            self
        }
        fn ok(self, status: u16) -> B {
            let mut p = vec![0, 1, 0];
            p.extend_from_slice(&status.to_le_bytes());
            p.extend_from_slice(&[0, 0]);
            self.pkt(&p)
        }
        fn err(self) -> B {
            self.pkt(b"\xff\x7a\x04#42S02Table 'x.t' doesn't exist")
        }
        fn eof(self, status: u16) -> B {
            let mut p = vec![0xfe, 0, 0];
            p.extend_from_slice(&status.to_le_bytes());
            self.pkt(&p)
        }
        /// The end of a result set under the builder's capabilities.
        fn end(self, status: u16) -> B {
            if self.dep {
                let mut p = vec![0xfe, 0, 0];
                p.extend_from_slice(&status.to_le_bytes());
                p.extend_from_slice(&[0, 0]);
                self.pkt(&p)
            } else {
                self.eof(status)
            }
        }
        fn defs(mut self, n: usize) -> B {
            for i in 0..n {
                let name = format!("c{i}");
                let mut p = Vec::new();
                ColumnDefinition {
                    schema: b"shop",
                    table: b"t",
                    org_table: b"t",
                    name: name.as_bytes(),
                    org_name: name.as_bytes(),
                    charset: 45,
                    length: 44,
                    column_type: 0xfd,
                    flags: 0,
                    decimals: 0,
                }
                .write(&mut p);
                self = self.pkt(&p);
            }
            self
        }
        /// Under metadata caching: the column count with its flag byte, the
        /// definitions if `definitions`, and (without DEPRECATE_EOF) the EOF
        /// that is sent either way.
        fn cached_cols(self, n: u64, definitions: bool) -> B {
            let mut p = Vec::new();
            crate::protocol::reader::put_lenenc_int(&mut p, n);
            p.push(u8::from(definitions));
            let b = self.pkt(&p).defs(if definitions { n as usize } else { 0 });
            if b.dep {
                b
            } else {
                b.eof(AC)
            }
        }
        /// Column count, definitions and (without DEPRECATE_EOF) their EOF.
        fn cols(self, n: u64) -> B {
            let mut p = Vec::new();
            crate::protocol::reader::put_lenenc_int(&mut p, n);
            let b = self.pkt(&p).defs(n as usize);
            if b.dep {
                b
            } else {
                b.eof(AC)
            }
        }
        fn row(self, vals: &[Option<&[u8]>]) -> B {
            let mut p = Vec::new();
            write_text_row(&mut p, vals);
            self.pkt(&p)
        }
        fn bin_row(self) -> B {
            self.pkt(b"\x00\x00\x01\x00\x00\x00")
        }
        fn prepare_ok(self, columns: u16, params: u16) -> B {
            let mut p = vec![0, 7, 0, 0, 0];
            p.extend_from_slice(&columns.to_le_bytes());
            p.extend_from_slice(&params.to_le_bytes());
            p.extend_from_slice(&[0, 0, 0]);
            self.pkt(&p)
        }
        fn bytes(self) -> Vec<u8> {
            self.out
        }
    }

    /// Scans `reply` followed by an unrelated packet: in one piece, split in
    /// two at every byte boundary, and byte by byte. Every run must end at
    /// exactly `reply.len()` with `want`, and no prefix may end it early.
    fn check(name: &str, expect: Expect, caps: u32, reply: &[u8], want: ReplyState) {
        check_with(name, &|| ReplyTracker::new(expect, caps), reply, want);
    }

    /// [`check`] with trackers made by `new`.
    fn check_with(name: &str, new: &dyn Fn() -> ReplyTracker, reply: &[u8], want: ReplyState) {
        let mut stream = reply.to_vec();
        write_packet(&mut stream, 0, b"\x03SELECT 'next command'");
        let mut t = new().with_status(AC);
        let s = t.scan(&stream).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            s,
            ReplyScan {
                forwardable: reply.len(),
                state: want
            },
            "{name}"
        );
        assert_eq!(
            t.scan(&stream[reply.len()..]).unwrap(),
            ReplyScan {
                forwardable: 0,
                state: want
            }
        );

        for split in 0..=stream.len() {
            let mut t = new().with_status(AC);
            let a = t.scan(&stream[..split]).unwrap();
            assert!(a.forwardable <= split, "{name} split {split}");
            if split < reply.len() {
                assert_eq!(
                    a.state,
                    ReplyState::InProgress,
                    "{name}: ended early at {split}"
                );
            }
            let b = t.scan(&stream[a.forwardable..]).unwrap();
            assert_eq!(
                a.forwardable + b.forwardable,
                reply.len(),
                "{name} split {split}"
            );
            assert_eq!(b.state, want, "{name} split {split}");
        }

        // Byte by byte, keeping the unscanned rest like the reactor does.
        let mut t = new().with_status(AC);
        let (mut start, mut fwd) = (0, 0);
        for end in 1..=stream.len() {
            let s = t.scan(&stream[start..end]).unwrap();
            start += s.forwardable;
            fwd += s.forwardable;
            if s.state != ReplyState::InProgress {
                assert_eq!((fwd, s.state), (reply.len(), want), "{name} byte by byte");
                return;
            }
        }
        panic!("{name}: byte by byte never ended");
    }

    fn done(status: u16) -> ReplyState {
        ReplyState::Done { status }
    }

    #[test]
    fn every_reply_shape_with_and_without_deprecate_eof() {
        let st = AC | SERVER_STATUS_IN_TRANS;
        for caps in [OLD, DEP] {
            let b = || B::new(caps);
            let cases: Vec<(&str, Expect, Vec<u8>, ReplyState)> = vec![
                ("query ok", Expect::Query, b().ok(st).bytes(), done(st)),
                ("query err", Expect::Query, b().err().bytes(), done(AC)),
                (
                    "query result set",
                    Expect::Query,
                    b().cols(2)
                        .row(&[Some(b"1"), Some(b"")])
                        .row(&[Some(b""), None])
                        .row(&[None, Some(b"\xfe\xff")])
                        .end(st)
                        .bytes(),
                    done(st),
                ),
                (
                    "query empty result set",
                    Expect::Query,
                    b().cols(1).end(AC).bytes(),
                    done(AC),
                ),
                (
                    "query err mid rows",
                    Expect::Query,
                    b().cols(1).row(&[Some(b"1")]).err().bytes(),
                    done(AC),
                ),
                (
                    "query multi results",
                    Expect::Query,
                    b().cols(1)
                        .row(&[Some(b"1")])
                        .end(AC | MORE)
                        .ok(AC | MORE)
                        .cols(3)
                        .row(&[None, None, None])
                        .end(AC | MORE)
                        .ok(st)
                        .bytes(),
                    done(st),
                ),
                (
                    "query multi results err",
                    Expect::Query,
                    b().ok(AC | MORE).err().bytes(),
                    done(AC | MORE),
                ),
                (
                    "local infile",
                    Expect::Query,
                    b().pkt(b"\xfb/tmp/data.csv").bytes(),
                    ReplyState::LocalInfile,
                ),
                (
                    "local infile after a result",
                    Expect::Query,
                    b().ok(AC | MORE).pkt(b"\xfbdata.csv").bytes(),
                    ReplyState::LocalInfile,
                ),
                (
                    "infile result ok",
                    Expect::InfileResult,
                    b().ok(st).bytes(),
                    done(st),
                ),
                (
                    "infile result err",
                    Expect::InfileResult,
                    b().err().bytes(),
                    done(AC),
                ),
                (
                    "infile result then more",
                    Expect::InfileResult,
                    b().ok(AC | MORE).cols(1).row(&[Some(b"x")]).end(AC).bytes(),
                    done(AC),
                ),
                (
                    "prepare no params no columns",
                    Expect::Prepare,
                    b().prepare_ok(0, 0).bytes(),
                    done(AC),
                ),
                ("prepare err", Expect::Prepare, b().err().bytes(), done(AC)),
                (
                    "prepare params and columns",
                    Expect::Prepare,
                    {
                        let x = b().prepare_ok(3, 2).defs(2);
                        let x = if caps & CLIENT_DEPRECATE_EOF == 0 {
                            x.eof(AC)
                        } else {
                            x
                        };
                        let x = x.defs(3);
                        if caps & CLIENT_DEPRECATE_EOF == 0 {
                            x.eof(st)
                        } else {
                            x
                        }
                    }
                    .bytes(),
                    done(if caps & CLIENT_DEPRECATE_EOF == 0 {
                        st
                    } else {
                        AC
                    }),
                ),
                (
                    "prepare params only",
                    Expect::Prepare,
                    {
                        let x = b().prepare_ok(0, 1).defs(1);
                        if caps & CLIENT_DEPRECATE_EOF == 0 {
                            x.eof(AC)
                        } else {
                            x
                        }
                    }
                    .bytes(),
                    done(AC),
                ),
                (
                    "prepare columns only",
                    Expect::Prepare,
                    {
                        let x = b().prepare_ok(2, 0).defs(2);
                        if caps & CLIENT_DEPRECATE_EOF == 0 {
                            x.eof(AC)
                        } else {
                            x
                        }
                    }
                    .bytes(),
                    done(AC),
                ),
                ("execute ok", Expect::Execute, b().ok(st).bytes(), done(st)),
                ("execute err", Expect::Execute, b().err().bytes(), done(AC)),
                (
                    "execute binary rows",
                    Expect::Execute,
                    b().cols(2).bin_row().bin_row().end(st).bytes(),
                    done(st),
                ),
                (
                    "execute procedure results",
                    Expect::Execute,
                    b().cols(1)
                        .bin_row()
                        .end(AC | MORE | SERVER_PS_OUT_PARAMS)
                        .ok(st)
                        .bytes(),
                    done(st),
                ),
                (
                    "execute with a cursor",
                    Expect::Execute,
                    b().cols(2).eof(AC | SERVER_STATUS_CURSOR_EXISTS).bytes(),
                    done(AC | SERVER_STATUS_CURSOR_EXISTS),
                ),
                (
                    "fetch",
                    Expect::Fetch,
                    b().bin_row()
                        .bin_row()
                        .end(AC | SERVER_STATUS_CURSOR_EXISTS)
                        .bytes(),
                    done(AC | SERVER_STATUS_CURSOR_EXISTS),
                ),
                (
                    "fetch last rows",
                    Expect::Fetch,
                    b().bin_row().end(AC | SERVER_STATUS_LAST_ROW_SENT).bytes(),
                    done(AC | SERVER_STATUS_LAST_ROW_SENT),
                ),
                ("fetch err", Expect::Fetch, b().err().bytes(), done(AC)),
                (
                    "field list",
                    Expect::FieldList,
                    b().defs(3).end(st).bytes(),
                    done(st),
                ),
                (
                    "field list empty",
                    Expect::FieldList,
                    b().end(st).bytes(),
                    done(st),
                ),
                (
                    "field list err",
                    Expect::FieldList,
                    b().err().bytes(),
                    done(AC),
                ),
                (
                    "statistics",
                    Expect::Statistics,
                    b().pkt(b"Uptime: 5  Threads: 1  Questions: 2").bytes(),
                    done(AC),
                ),
                (
                    "statistics empty",
                    Expect::Statistics,
                    b().pkt(b"").bytes(),
                    done(AC),
                ),
                ("simple ok", Expect::Simple, b().ok(st).bytes(), done(st)),
                ("simple err", Expect::Simple, b().err().bytes(), done(AC)),
                (
                    "simple eof (set option)",
                    Expect::Simple,
                    b().eof(st).bytes(),
                    done(st),
                ),
            ];
            for (name, expect, bytes, want) in cases {
                check(
                    &format!("{name} caps={caps:#x}"),
                    expect,
                    caps,
                    &bytes,
                    want,
                );
            }
        }
    }

    #[test]
    fn execute_cursor_eof_under_deprecate_eof() {
        // A server that keeps the 5-byte EOF after a cursor's column
        // definitions under DEPRECATE_EOF (MySQL) is read as an EOF.
        let st = AC | SERVER_STATUS_CURSOR_EXISTS;
        let r = B::new(DEP).cols(2).eof(st).bytes();
        check("cursor eof", Expect::Execute, DEP, &r, done(st));
    }

    fn caching(expect: Expect, caps: u32, in_doubt: bool) -> ReplyTracker {
        ReplyTracker::new(expect, caps).caching_metadata(in_doubt)
    }

    #[test]
    fn metadata_caching_flag_byte() {
        let cursor = AC | SERVER_STATUS_CURSOR_EXISTS;
        for caps in [OLD, DEP] {
            let new = |expect| move || caching(expect, caps, false);
            let with = B::new(caps).cached_cols(2, true).bin_row().end(AC).bytes();
            check_with(
                "execute, definitions",
                &new(Expect::Execute),
                &with,
                done(AC),
            );
            let without = B::new(caps).cached_cols(2, false).bin_row().end(AC).bytes();
            check_with("execute, none", &new(Expect::Execute), &without, done(AC));
            // Text results always carry the flag, always 1.
            let text = B::new(caps)
                .cached_cols(1, true)
                .row(&[Some(b"x")])
                .end(AC)
                .bytes();
            check_with("query", &new(Expect::Query), &text, done(AC));
            // A cursor opened again: no definitions, only the status packet,
            // sent even under DEPRECATE_EOF.
            let reopened = B::new(caps).pkt(b"\x02\x00").eof(cursor).bytes();
            check_with("cursor", &new(Expect::Execute), &reopened, done(cursor));
        }
        // The flag is 0 or 1, and it must be there.
        let mut t = caching(Expect::Execute, DEP, false);
        assert_eq!(
            t.scan(&B::new(DEP).pkt(b"\x02\x02").bytes()),
            Err(ReplyError::Malformed {
                packet: "column count"
            })
        );
        let mut t = caching(Expect::Execute, DEP, false);
        assert!(matches!(
            t.scan(&B::new(DEP).pkt(b"\x02").bytes()),
            Err(ReplyError::Unexpected { .. })
        ));
        // Without caching a flag byte is one byte too many.
        let mut t = ReplyTracker::new(Expect::Execute, DEP);
        assert!(matches!(
            t.scan(&B::new(DEP).pkt(b"\x02\x01").bytes()),
            Err(ReplyError::Unexpected { .. })
        ));
    }

    #[test]
    fn metadata_fingerprints() {
        let scan = |mut t: ReplyTracker, r: &[u8]| {
            assert!(matches!(t.scan(r).unwrap().state, ReplyState::Done { .. }));
            t
        };
        let prepared = B::new(DEP).prepare_ok(2, 1).defs(1).defs(2).bytes();
        let prepare = scan(caching(Expect::Prepare, DEP, false), &prepared).metadata();
        let sent = B::new(DEP).cached_cols(2, true).bin_row().end(AC).bytes();
        let execute = scan(caching(Expect::Execute, DEP, false), &sent).metadata();
        assert!(prepare.is_some());
        assert_eq!(
            prepare, execute,
            "the same definitions, the same fingerprint"
        );
        // The parameter definitions are not part of it.
        let other_params = B::new(DEP).prepare_ok(2, 0).defs(2).bytes();
        let t = scan(caching(Expect::Prepare, DEP, false), &other_params);
        assert_eq!(t.metadata(), prepare);
        let wider = B::new(DEP).cached_cols(3, true).bin_row().end(AC).bytes();
        let t = scan(caching(Expect::Execute, DEP, false), &wider);
        assert!(t.metadata().is_some() && t.metadata() != prepare);
        // Left out: nothing carried. Not caching: nothing computed.
        let skipped = B::new(DEP).cached_cols(2, false).bin_row().end(AC).bytes();
        assert_eq!(
            scan(caching(Expect::Execute, DEP, false), &skipped).metadata(),
            None
        );
        let plain = B::new(DEP).cols(2).bin_row().end(AC).bytes();
        let t = scan(ReplyTracker::new(Expect::Execute, DEP), &plain);
        assert_eq!(t.metadata(), None);
        // A statement without columns has a fingerprint too.
        let insert = B::new(DEP).prepare_ok(0, 2).defs(2).bytes();
        assert!(scan(caching(Expect::Prepare, DEP, false), &insert)
            .metadata()
            .is_some());
        let failed = B::new(DEP).err().bytes();
        assert_eq!(
            scan(caching(Expect::Prepare, DEP, false), &failed).metadata(),
            None
        );
    }

    #[test]
    fn skipped_metadata_in_doubt_is_dropped() {
        for caps in [OLD, DEP] {
            let skipped = B::new(caps).cached_cols(2, false).bin_row().end(AC).bytes();
            let mut t = caching(Expect::Execute, caps, true);
            let s = t.scan(&skipped).unwrap();
            // The whole reply is passed (to be dropped), as usual.
            assert_eq!((s.forwardable, s.state), (skipped.len(), done(AC)));
            assert_eq!(t.discarded(), Some(1));
            assert_eq!(t.err_seq(), 1, "the client got none of it");
            assert!(t.ended_with_error());
            assert_eq!(t.metadata(), None);
            // With the definitions, the reply goes to the client.
            let sent = B::new(caps).cached_cols(2, true).bin_row().end(AC).bytes();
            let mut t = caching(Expect::Execute, caps, true);
            assert_eq!(t.scan(&sent).unwrap().state, done(AC));
            assert_eq!(t.discarded(), None);
            assert!(t.metadata().is_some());
        }
        // A later result cannot be dropped alone.
        let later = B::new(DEP)
            .ok(AC | MORE)
            .cached_cols(1, false)
            .bin_row()
            .end(AC)
            .bytes();
        let mut t = caching(Expect::Execute, DEP, true);
        assert_eq!(t.scan(&later), Err(ReplyError::MetadataSkipped));
    }

    #[test]
    fn err_status_is_the_last_seen() {
        let r = B::new(OLD).ok(SERVER_STATUS_IN_TRANS | MORE).err().bytes();
        let mut t = ReplyTracker::new(Expect::Query, OLD);
        assert_eq!(
            t.scan(&r).unwrap().state,
            done(SERVER_STATUS_IN_TRANS | MORE)
        );
        assert!(t.ended_with_error() && t.is_done());
        assert_eq!(t.status(), SERVER_STATUS_IN_TRANS | MORE);
    }

    #[test]
    fn impossible_replies_are_errors() {
        let cases: Vec<(&str, Expect, u32, Vec<u8>)> = vec![
            (
                "empty packet start",
                Expect::Query,
                OLD,
                B::new(OLD).pkt(b"").bytes(),
            ),
            (
                "column count 0",
                Expect::Query,
                OLD,
                B::new(OLD).pkt(b"\x00").bytes(),
            ),
            (
                "huge column count",
                Expect::Query,
                OLD,
                B::new(OLD).pkt(b"\xfd\x00\x00\x01").bytes(),
            ),
            (
                "column count with trailing bytes",
                Expect::Query,
                OLD,
                B::new(OLD).pkt(b"\x02\x00").bytes(),
            ),
            (
                "eof where a count goes",
                Expect::Query,
                OLD,
                B::new(OLD).eof(AC).bytes(),
            ),
            (
                "truncated ok",
                Expect::Query,
                OLD,
                B::new(OLD).pkt(b"\x00\x00\x00\x02").bytes(),
            ),
            (
                "no infile for execute",
                Expect::Execute,
                OLD,
                B::new(OLD).pkt(b"\xfbfile").bytes(),
            ),
            (
                "binary row not 0x00",
                Expect::Execute,
                DEP,
                B::new(DEP).cols(1).pkt(b"\x01abc").bytes(),
            ),
            (
                "fetch row not 0x00",
                Expect::Fetch,
                OLD,
                B::new(OLD).pkt(b"\x05").bytes(),
            ),
            (
                "missing column eof",
                Expect::Query,
                OLD,
                B::new(OLD).pkt(b"\x01").defs(1).row(&[Some(b"x")]).bytes(),
            ),
            (
                "infile result not ok",
                Expect::InfileResult,
                OLD,
                B::new(OLD).cols(1).bytes(),
            ),
            (
                "simple garbage",
                Expect::Simple,
                OLD,
                B::new(OLD).pkt(b"\x03abc").bytes(),
            ),
            (
                "simple empty",
                Expect::Simple,
                OLD,
                B::new(OLD).pkt(b"").bytes(),
            ),
            (
                "prepare garbage",
                Expect::Prepare,
                OLD,
                B::new(OLD).pkt(b"\x01").bytes(),
            ),
            (
                "prepare ok short",
                Expect::Prepare,
                OLD,
                B::new(OLD).pkt(b"\x00\x01\x00\x00\x00\x01").bytes(),
            ),
            (
                "prepare missing eof",
                Expect::Prepare,
                OLD,
                B::new(OLD).prepare_ok(0, 1).defs(2).bytes(),
            ),
            (
                "empty row",
                Expect::Query,
                DEP,
                B::new(DEP).cols(1).pkt(b"").bytes(),
            ),
        ];
        for (name, expect, caps, bytes) in cases {
            let mut t = ReplyTracker::new(expect, caps);
            let e = t.scan(&bytes).expect_err(name);
            assert!(!e.to_string().contains('\n'));
            // Split anywhere, the error comes as soon as the packet start is in.
            for split in 0..bytes.len() {
                let mut t = ReplyTracker::new(expect, caps);
                let r = t
                    .scan(&bytes[..split])
                    .and_then(|a| t.scan(&bytes[a.forwardable..]));
                assert_eq!(r, Err(e), "{name} split {split}");
            }
        }
    }

    #[test]
    fn continuation_frames_are_never_decoded_as_packet_starts() {
        const MAX: usize = MAX_FRAME_PAYLOAD;
        for caps in [OLD, DEP] {
            // A row of MAX + 10 bytes whose second frame looks like an ERR,
            // one of exactly MAX bytes (an empty frame follows), and one of
            // 2 * MAX bytes whose second frame looks like an EOF.
            let mut big = vec![b'a'; MAX + 10];
            big[0] = 0xfc; // lenenc string header is irrelevant to the tracker
            big[MAX] = 0xff;
            let mut exact = vec![b'b'; MAX];
            exact[0] = 0x01;
            let mut double = vec![b'c'; 2 * MAX];
            double[0] = 0x01;
            double[MAX] = 0xfe;
            double[MAX + 1..MAX + 5].fill(0);
            let r = B::new(caps)
                .cols(1)
                .pkt(&big)
                .pkt(&exact)
                .pkt(&double)
                .end(AC)
                .bytes();
            let mut stream = r.clone();
            write_packet(&mut stream, 0, b"\x0e");
            let mut t = ReplyTracker::new(Expect::Query, caps);
            assert_eq!(
                t.scan(&stream).unwrap(),
                ReplyScan {
                    forwardable: r.len(),
                    state: done(AC)
                }
            );
            // In chunks that cut the big frames' headers and bodies.
            for chunk in [4093usize, MAX - 1, MAX + 4] {
                let mut t = ReplyTracker::new(Expect::Query, caps);
                let (mut start, mut end) = (0, 0);
                loop {
                    end = (end + chunk).min(stream.len());
                    let s = t.scan(&stream[start..end]).unwrap();
                    start += s.forwardable;
                    if s.state != ReplyState::InProgress {
                        assert_eq!((start, s.state), (r.len(), done(AC)), "chunk {chunk}");
                        break;
                    }
                    assert!(end < stream.len(), "chunk {chunk}: never ended");
                }
            }
            // Two pieces, cut anywhere near a frame header.
            let mut at = 0;
            while at < r.len() {
                for cut in at.saturating_sub(6)..(at + HEADER_LEN + PEEK + 2).min(stream.len()) {
                    let mut t = ReplyTracker::new(Expect::Query, caps);
                    let a = t.scan(&stream[..cut]).unwrap();
                    let b = t.scan(&stream[a.forwardable..]).unwrap();
                    assert_eq!(
                        (a.forwardable + b.forwardable, b.state),
                        (r.len(), done(AC)),
                        "cut {cut}"
                    );
                }
                at += HEADER_LEN + parse_header(&r[at..]).unwrap().len;
            }
        }
    }

    #[test]
    fn a_statistics_reply_may_span_frames() {
        let body = vec![b's'; MAX_FRAME_PAYLOAD];
        let r = B::new(OLD).pkt(&body).bytes();
        check_big(Expect::Statistics, &r);
    }

    fn check_big(expect: Expect, r: &[u8]) {
        let mut t = ReplyTracker::new(expect, OLD);
        let a = t.scan(&r[..r.len() - 1]).unwrap();
        assert_eq!(a.state, ReplyState::InProgress);
        let b = t.scan(&r[a.forwardable..]).unwrap();
        assert_eq!((a.forwardable + b.forwardable, b.state), (r.len(), done(0)));
    }

    #[test]
    fn only_the_head_of_a_packet_is_needed() {
        // The tracker reports a long row's head and body as forwardable
        // before the rest of the row arrived.
        let r = B::new(OLD)
            .cols(1)
            .row(&[Some(&[b'x'; 1000])])
            .end(AC)
            .bytes();
        let row_start = r.len() - 9 - 1007;
        let mut t = ReplyTracker::new(Expect::Query, OLD);
        let s = t.scan(&r[..row_start + HEADER_LEN + PEEK + 100]).unwrap();
        assert_eq!(s.forwardable, row_start + HEADER_LEN + PEEK + 100);
        // A row start without its first PEEK bytes is held back whole.
        for cut in 0..HEADER_LEN + PEEK {
            let mut t = ReplyTracker::new(Expect::Query, OLD);
            let s = t.scan(&r[..row_start + cut]).unwrap();
            assert_eq!(s.forwardable, row_start);
        }
    }
}

/// Replies captured from MariaDB 10.11 (`fuzz/capture_mariadb.py`), logged in
/// like the proxy (bit 0 set), with and without CLIENT_DEPRECATE_EOF.
#[cfg(test)]
mod captured {
    use super::*;
    use crate::protocol::consts::caps::PROXY_SUPPORTED;
    use std::path::PathBuf;

    fn expect_named(name: &str) -> Option<Expect> {
        Some(match name {
            "query" => Expect::Query,
            "prepare" => Expect::Prepare,
            "execute" => Expect::Execute,
            "fetch" => Expect::Fetch,
            "fieldlist" => Expect::FieldList,
            "statistics" => Expect::Statistics,
            "simple" => Expect::Simple,
            "infileresult" => Expect::InfileResult,
            _ => return None,
        })
    }

    /// (file, expect, capabilities, bytes) for every captured reply.
    fn replies() -> Vec<(String, Expect, u32, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/protocol/testdata/mariadb");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let parts: Vec<&str> = name.split('.').collect();
            let [_, kind, eof, "bin"] = parts[..] else {
                continue;
            };
            let Some(expect) = expect_named(kind) else {
                continue;
            };
            let caps = match eof {
                "dep" => PROXY_SUPPORTED,
                _ => PROXY_SUPPORTED & !CLIENT_DEPRECATE_EOF,
            };
            out.push((name, expect, caps, std::fs::read(&path).unwrap()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn status_of(name: &str) -> u16 {
        let r = replies().into_iter().find(|r| r.0 == name).unwrap();
        let mut t = ReplyTracker::new(r.1, r.2);
        match t.scan(&r.3).unwrap().state {
            ReplyState::Done { status } => status,
            s => panic!("{name}: {s:?}"),
        }
    }

    #[test]
    fn every_captured_reply_ends_exactly_at_its_last_byte() {
        let all = replies();
        assert!(all.len() >= 50, "only {} captured replies", all.len());
        for (name, expect, caps, bytes) in all {
            let want_infile = name.starts_with("infile.");
            // In one piece, followed by the next command's reply.
            let mut stream = bytes.clone();
            stream.extend_from_slice(&[1, 0, 0, 1, 0]);
            let mut t = ReplyTracker::new(expect, caps);
            let s = t.scan(&stream).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.forwardable, bytes.len(), "{name}");
            assert_eq!(
                s.state == ReplyState::LocalInfile,
                want_infile,
                "{name}: {:?}",
                s.state
            );
            assert!(s.state != ReplyState::InProgress, "{name}");
            // Split in two at every byte.
            for split in 0..bytes.len() {
                let mut t = ReplyTracker::new(expect, caps);
                let a = t.scan(&bytes[..split]).unwrap();
                assert_eq!(a.state, ReplyState::InProgress, "{name} split {split}");
                let b = t.scan(&bytes[a.forwardable..]).unwrap();
                assert_eq!(
                    (a.forwardable + b.forwardable, b.state),
                    (bytes.len(), s.state),
                    "{name} split {split}"
                );
            }
        }
    }

    /// The tracker after scanning `bytes` as they arrive in `pieces`, with
    /// or without the rows shortcut; and how much it passed.
    fn scanned(
        expect: Expect,
        caps: u32,
        bytes: &[u8],
        pieces: &[usize],
        shortcut: bool,
    ) -> (String, usize) {
        shortcut::OFF.with(|off| off.set(!shortcut));
        let mut t = ReplyTracker::new(expect, caps);
        let mut passed = 0;
        for &arrived in pieces {
            passed += t.scan(&bytes[passed..arrived]).unwrap().forwardable;
        }
        shortcut::OFF.with(|off| off.set(false));
        (format!("{t:?}"), passed)
    }

    /// Rows take a shortcut (`skip_rows`) past the general per-packet path:
    /// at every byte of every captured reply, read in one piece or a byte at
    /// a time, the tracker must be where the general path alone leaves it.
    #[test]
    fn the_rows_shortcut_leaves_the_tracker_as_the_general_path_does() {
        for (name, expect, caps, bytes) in replies() {
            for arrived in 1..=bytes.len() {
                let trickle: Vec<usize> = (1..=arrived).collect();
                let general = scanned(expect, caps, &bytes, &[arrived], false);
                assert_eq!(
                    general,
                    scanned(expect, caps, &bytes, &trickle, false),
                    "{name} at {arrived}: general path, whole against a byte at a time"
                );
                for pieces in [&[arrived][..], &trickle] {
                    assert_eq!(
                        scanned(expect, caps, &bytes, pieces, true),
                        general,
                        "{name} at {arrived}, {} pieces: shortcut against general",
                        pieces.len()
                    );
                }
            }
        }
    }

    /// (ROW_COUNT(), FOUND_ROWS()) the captured reply `name` leaves.
    fn counts_of(name: &str) -> (Option<i64>, Option<u64>) {
        let r = replies().into_iter().find(|r| r.0 == name).unwrap();
        let mut t = ReplyTracker::new(r.1, r.2);
        assert!(t.scan(&r.3).unwrap().state != ReplyState::InProgress);
        (t.row_count(), t.found_rows())
    }

    #[test]
    fn captured_row_counts_and_found_rows() {
        for eof in ["old", "dep"] {
            let (row_count, rows) = counts_of(&format!("select_t.query.{eof}.bin"));
            assert_eq!(row_count, Some(-1), "{eof}");
            let rows = rows.unwrap();
            assert!(rows >= 2, "{eof}: {rows} rows");
            // SELECT 1; SELECT id FROM t; DO 1: DO's OK, the second
            // SELECT's rows.
            let multi = counts_of(&format!("multi.query.{eof}.bin"));
            assert_eq!(multi, (Some(0), Some(rows)), "{eof}");
            assert_eq!(
                counts_of(&format!("empty_result.query.{eof}.bin")),
                (Some(-1), Some(0))
            );
            // INSERT ... ON DUPLICATE KEY UPDATE: 1 inserted or 2 updated.
            let (insert, none) = counts_of(&format!("insert.query.{eof}.bin"));
            assert!(matches!(insert, Some(1 | 2)) && none.is_none(), "{eof}");
            assert_eq!(counts_of(&format!("err.query.{eof}.bin")), (Some(-1), None));
            // Binary rows count the same way.
            let (row_count, rows) = counts_of(&format!("execute.execute.{eof}.bin"));
            assert_eq!(row_count, Some(-1), "{eof}");
            assert!(rows.unwrap() >= 1, "{eof}");
            // A cursor opened: nothing read yet.
            assert_eq!(
                counts_of(&format!("execute_cursor.execute.{eof}.bin")),
                (None, None)
            );
        }
    }

    #[test]
    fn captured_statuses() {
        use crate::protocol::consts::status::*;
        // BEGIN opens a transaction, COMMIT closes it.
        assert_ne!(status_of("begin.query.old.bin") & SERVER_STATUS_IN_TRANS, 0);
        assert_eq!(
            status_of("commit.query.dep.bin") & SERVER_STATUS_IN_TRANS,
            0
        );
        // A cursor ends the execute reply, in both EOF styles; MariaDB sends
        // an OK with the 0xFE header after the columns under DEPRECATE_EOF.
        for f in [
            "execute_cursor.execute.old.bin",
            "execute_cursor.execute.dep.bin",
        ] {
            assert_ne!(status_of(f) & SERVER_STATUS_CURSOR_EXISTS, 0, "{f}");
        }
        assert_ne!(
            status_of("fetch_rest.fetch.old.bin") & SERVER_STATUS_LAST_ROW_SENT,
            0
        );
        // Multi-statement and CALL replies end on a status without MORE_RESULTS.
        for f in [
            "multi.query.old.bin",
            "call.query.dep.bin",
            "execute_proc.execute.old.bin",
        ] {
            assert_eq!(status_of(f) & SERVER_MORE_RESULTS_EXISTS, 0, "{f}");
        }
    }
}
