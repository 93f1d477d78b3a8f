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

use std::fmt;

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
        }
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
                self.started = true;
                self.in_packet = true;
            }
            pos += HEADER_LEN;
            self.body_left = h.len;
            self.continued = h.len == MAX_FRAME_PAYLOAD;
        }
        Ok(ReplyScan {
            forwardable: pos,
            state: ReplyState::InProgress,
        })
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
    /// apart, which matters because MySQL still sends an EOF after the
    /// column definitions of a cursor under DEPRECATE_EOF.
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
        self.phase = match self.phase {
            Phase::ResultStart => match first {
                0x00 => {
                    let status = Self::ok_status(head)?;
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
                    // The packet holds the count and nothing else.
                    if lenenc_int_len(count) != len {
                        return Err(unexpected);
                    }
                    if count == 0 || count > MAX_COLUMNS {
                        return Err(ReplyError::BadColumnCount { count });
                    }
                    Phase::Columns { left: count }
                }
            },
            Phase::Columns { left } => {
                if left > 1 {
                    Phase::Columns { left: left - 1 }
                } else if self.deprecate_eof {
                    Phase::Rows
                } else {
                    Phase::ColumnsEof
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
                        self.after_result(status)
                    }
                }
                0x00 => Phase::Rows,
                _ if self.binary_rows() => return Err(unexpected),
                _ => Phase::Rows,
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
