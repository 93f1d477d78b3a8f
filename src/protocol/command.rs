//! Client commands: the first packet of every exchange after the handshake,
//! dispatched on its first byte.
//!
//! Protocol pages: <https://mariadb.com/kb/en/1-connecting-connecting/> and
//! the `COM_*` pages linked from it. Commands borrow from the packet: nothing
//! is copied.

use std::fmt;

use super::consts::caps::*;
use super::consts::com::*;
use super::reader::Reader;
use super::reply::Expect;

/// A command the proxy never forwards, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedCommand {
    /// The command byte.
    pub code: u8,
    /// Its name, e.g. `COM_BINLOG_DUMP`.
    pub name: &'static str,
    /// Why the proxy refuses it, for the client's error message.
    pub why: &'static str,
}

const REPLICATION: &str =
    "replication protocol is not proxied; connect the replica to the server directly";
const ADMIN: &str =
    "administrative command would reach one arbitrary backend; run it on the server directly";

/// The refused commands, by byte. Each decision:
/// - replication (BINLOG_DUMP, BINLOG_DUMP_GTID, REGISTER_SLAVE,
///   TABLE_DUMP): turns the connection into an endless stream the reply
///   tracker cannot follow, and a replica must see one real server;
/// - COM_SHUTDOWN: a client must never be able to stop a backend through
///   the proxy;
/// - COM_CREATE_DB, COM_DROP_DB: obsolete (the SQL statements replaced
///   them), and would change one shard's schema only;
/// - COM_REFRESH, COM_DEBUG, COM_PROCESS_INFO: act on or report about
///   whichever backend the session happens to hold;
/// - COM_PROCESS_KILL: takes a backend thread id, which clients of the proxy
///   never see (their connection ids are the proxy's);
///
/// Not here: COM_SLEEP, COM_CONNECT, COM_TIME, COM_DELAYED_INSERT,
/// COM_CONNECT_OUT and COM_DAEMON are server-internal states the server
/// itself answers with ER_UNKNOWN_COM_ERROR; they decode as
/// [`Command::Unknown`] so the proxy answers exactly as the server does.
const REFUSED: &[RefusedCommand] = &[
    RefusedCommand {
        code: COM_CREATE_DB,
        name: "COM_CREATE_DB",
        why: "obsolete; use CREATE DATABASE on every shard",
    },
    RefusedCommand {
        code: COM_DROP_DB,
        name: "COM_DROP_DB",
        why: "obsolete; use DROP DATABASE on every shard",
    },
    RefusedCommand {
        code: COM_REFRESH,
        name: "COM_REFRESH",
        why: ADMIN,
    },
    RefusedCommand {
        code: COM_SHUTDOWN,
        name: "COM_SHUTDOWN",
        why: "shutting down a backend through the proxy is not allowed",
    },
    RefusedCommand {
        code: COM_PROCESS_INFO,
        name: "COM_PROCESS_INFO",
        why: ADMIN,
    },
    RefusedCommand {
        code: COM_PROCESS_KILL,
        name: "COM_PROCESS_KILL",
        why: "backend connection ids are not visible through the proxy",
    },
    RefusedCommand {
        code: COM_DEBUG,
        name: "COM_DEBUG",
        why: ADMIN,
    },
    RefusedCommand {
        code: COM_BINLOG_DUMP,
        name: "COM_BINLOG_DUMP",
        why: REPLICATION,
    },
    RefusedCommand {
        code: COM_TABLE_DUMP,
        name: "COM_TABLE_DUMP",
        why: REPLICATION,
    },
    RefusedCommand {
        code: COM_REGISTER_SLAVE,
        name: "COM_REGISTER_SLAVE",
        why: REPLICATION,
    },
    RefusedCommand {
        code: COM_BINLOG_DUMP_GTID,
        name: "COM_BINLOG_DUMP_GTID",
        why: REPLICATION,
    },
];

impl RefusedCommand {
    /// The refusal for a command byte, if the proxy refuses it.
    pub fn lookup(code: u8) -> Option<RefusedCommand> {
        REFUSED.iter().copied().find(|r| r.code == code)
    }
}

/// COM_CHANGE_USER (<https://mariadb.com/kb/en/com_change_user/>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeUser<'a> {
    /// The new user.
    pub username: &'a [u8],
    /// The auth response to the connection's scramble.
    pub auth_response: &'a [u8],
    /// The new default database (may be empty).
    pub database: &'a [u8],
    /// The new collation id, if sent.
    pub charset: Option<u16>,
    /// The auth plugin, if sent (`CLIENT_PLUGIN_AUTH`).
    pub auth_plugin: Option<&'a [u8]>,
    /// The raw attribute block without its length prefix (`CLIENT_CONNECT_ATTRS`).
    pub attributes: Option<&'a [u8]>,
}

/// A decoded client command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// COM_QUIT.
    Quit,
    /// COM_INIT_DB: the database name.
    InitDb(&'a [u8]),
    /// COM_QUERY: the statement text.
    Query(&'a [u8]),
    /// COM_FIELD_LIST.
    FieldList {
        /// The table.
        table: &'a [u8],
        /// A LIKE pattern for the columns (may be empty).
        wildcard: &'a [u8],
    },
    /// COM_STATISTICS.
    Statistics,
    /// COM_PING.
    Ping,
    /// COM_CHANGE_USER.
    ChangeUser(ChangeUser<'a>),
    /// COM_RESET_CONNECTION.
    ResetConnection,
    /// COM_SET_OPTION: see [`crate::protocol::consts::set_option`].
    SetOption(u16),
    /// COM_STMT_PREPARE: the statement text.
    StmtPrepare(&'a [u8]),
    /// COM_STMT_EXECUTE (parameters are not decoded here).
    StmtExecute {
        /// The statement id.
        stmt_id: u32,
        /// Cursor flags, see [`crate::protocol::consts::cursor`].
        flags: u8,
    },
    /// COM_STMT_SEND_LONG_DATA (no reply).
    StmtSendLongData {
        /// The statement id.
        stmt_id: u32,
        /// The parameter index.
        param_id: u16,
    },
    /// COM_STMT_CLOSE (no reply).
    StmtClose(u32),
    /// COM_STMT_RESET.
    StmtReset(u32),
    /// COM_STMT_FETCH.
    StmtFetch {
        /// The statement id.
        stmt_id: u32,
        /// How many rows.
        rows: u32,
    },
    /// A command the proxy never forwards.
    Refused(RefusedCommand),
    /// A byte that names no command the proxy knows.
    Unknown(u8),
}

/// Why a command packet cannot be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// A command packet must have at least the command byte.
    Empty,
    /// The packet ended inside the named command's arguments.
    Truncated {
        /// The command.
        command: &'static str,
    },
    /// COM_CHANGE_USER's attribute block is not a list of key/value strings.
    BadAttributes,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Empty => f.write_str("empty command packet"),
            CommandError::Truncated { command } => {
                write!(f, "malformed {command} packet: too short")
            }
            CommandError::BadAttributes => {
                f.write_str("malformed COM_CHANGE_USER connection attributes")
            }
        }
    }
}

impl std::error::Error for CommandError {}

fn t(command: &'static str) -> CommandError {
    CommandError::Truncated { command }
}

impl<'a> Command<'a> {
    /// Decodes a command payload. `capabilities` are the session's
    /// negotiated ones (they shape COM_CHANGE_USER).
    pub fn decode(payload: &'a [u8], capabilities: u32) -> Result<Command<'a>, CommandError> {
        let mut r = Reader::new(payload);
        let code = r.u8().ok_or(CommandError::Empty)?;
        Ok(match code {
            COM_QUIT => Command::Quit,
            COM_INIT_DB => Command::InitDb(r.rest()),
            COM_QUERY => Command::Query(r.rest()),
            COM_FIELD_LIST => {
                // The server reads the table up to a NUL and the rest as the
                // wildcard; a missing NUL means no wildcard.
                let rest = r.rest();
                match memchr::memchr(0, rest) {
                    Some(n) => Command::FieldList {
                        table: &rest[..n],
                        wildcard: &rest[n + 1..],
                    },
                    None => Command::FieldList {
                        table: rest,
                        wildcard: b"",
                    },
                }
            }
            COM_STATISTICS => Command::Statistics,
            COM_PING => Command::Ping,
            COM_CHANGE_USER => Command::ChangeUser(change_user(&mut r, capabilities)?),
            COM_RESET_CONNECTION => Command::ResetConnection,
            COM_SET_OPTION => Command::SetOption(r.u16_le().ok_or(t("COM_SET_OPTION"))?),
            COM_STMT_PREPARE => Command::StmtPrepare(r.rest()),
            COM_STMT_EXECUTE => {
                let stmt_id = r.u32_le().ok_or(t("COM_STMT_EXECUTE"))?;
                let flags = r.u8().ok_or(t("COM_STMT_EXECUTE"))?;
                // The iteration count, always 1, is there in every real packet.
                r.u32_le().ok_or(t("COM_STMT_EXECUTE"))?;
                Command::StmtExecute { stmt_id, flags }
            }
            COM_STMT_SEND_LONG_DATA => Command::StmtSendLongData {
                stmt_id: r.u32_le().ok_or(t("COM_STMT_SEND_LONG_DATA"))?,
                param_id: r.u16_le().ok_or(t("COM_STMT_SEND_LONG_DATA"))?,
            },
            COM_STMT_CLOSE => Command::StmtClose(r.u32_le().ok_or(t("COM_STMT_CLOSE"))?),
            COM_STMT_RESET => Command::StmtReset(r.u32_le().ok_or(t("COM_STMT_RESET"))?),
            COM_STMT_FETCH => Command::StmtFetch {
                stmt_id: r.u32_le().ok_or(t("COM_STMT_FETCH"))?,
                rows: r.u32_le().ok_or(t("COM_STMT_FETCH"))?,
            },
            other => match RefusedCommand::lookup(other) {
                Some(refused) => Command::Refused(refused),
                None => Command::Unknown(other),
            },
        })
    }

    /// The shape of the server's reply, or `None` when the server sends no
    /// reply the tracker follows: COM_QUIT, COM_STMT_CLOSE and
    /// COM_STMT_SEND_LONG_DATA get none; COM_CHANGE_USER starts an auth
    /// exchange whose final packet is [`Expect::Simple`]; refused and unknown
    /// commands are answered by the proxy.
    pub fn expect(&self) -> Option<Expect> {
        Some(match self {
            Command::Query(_) => Expect::Query,
            Command::FieldList { .. } => Expect::FieldList,
            Command::Statistics => Expect::Statistics,
            Command::StmtPrepare(_) => Expect::Prepare,
            Command::StmtExecute { .. } => Expect::Execute,
            Command::StmtFetch { .. } => Expect::Fetch,
            Command::InitDb(_)
            | Command::Ping
            | Command::ResetConnection
            | Command::SetOption(_)
            | Command::StmtReset(_) => Expect::Simple,
            Command::Quit
            | Command::ChangeUser(_)
            | Command::StmtSendLongData { .. }
            | Command::StmtClose(_)
            | Command::Refused(_)
            | Command::Unknown(_) => return None,
        })
    }
}

/// Whether the server answers the command with this first byte. COM_QUIT
/// (the server just closes), COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA get
/// no reply at all.
pub fn expects_reply(first_byte: u8) -> bool {
    !matches!(
        first_byte,
        COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA
    )
}

fn change_user<'a>(r: &mut Reader<'a>, capabilities: u32) -> Result<ChangeUser<'a>, CommandError> {
    const C: &str = "COM_CHANGE_USER";
    let username = r.null_terminated().ok_or(t(C))?;
    // Servers read a one-byte length with SECURE_CONNECTION (never lenenc
    // here), else a NUL-terminated string.
    let auth_response = if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        r.u8().and_then(|n| r.bytes(usize::from(n)))
    } else {
        r.null_terminated()
    }
    .ok_or(t(C))?;
    // The database is NUL-terminated; old clients stop right after it or
    // even omit it.
    let database = if r.is_empty() {
        &b""[..]
    } else {
        r.null_terminated().ok_or(t(C))?
    };
    let mut cu = ChangeUser {
        username,
        auth_response,
        database,
        charset: None,
        auth_plugin: None,
        attributes: None,
    };
    if r.is_empty() {
        return Ok(cu);
    }
    cu.charset = Some(r.u16_le().ok_or(t(C))?);
    if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        cu.auth_plugin = Some(r.null_terminated().ok_or(t(C))?);
    }
    if capabilities & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        let block = r.lenenc_bytes().ok_or(t(C))?;
        if !super::handshake::attributes_valid(block) {
            return Err(CommandError::BadAttributes);
        }
        cu.attributes = Some(block);
    }
    Ok(cu)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: u32 =
        CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;

    fn d(p: &[u8]) -> Result<Command<'_>, CommandError> {
        Command::decode(p, CAPS)
    }

    #[test]
    fn decodes_each_command() {
        assert_eq!(d(b""), Err(CommandError::Empty));
        assert_eq!(d(b"\x01"), Ok(Command::Quit));
        assert_eq!(d(b"\x02shop"), Ok(Command::InitDb(b"shop")));
        assert_eq!(d(b"\x03SELECT 1"), Ok(Command::Query(b"SELECT 1")));
        assert_eq!(d(b"\x03"), Ok(Command::Query(b"")));
        assert_eq!(
            d(b"\x04t1\0a%"),
            Ok(Command::FieldList {
                table: b"t1",
                wildcard: b"a%"
            })
        );
        assert_eq!(
            d(b"\x04t1"),
            Ok(Command::FieldList {
                table: b"t1",
                wildcard: b""
            })
        );
        assert_eq!(d(b"\x09"), Ok(Command::Statistics));
        assert_eq!(d(b"\x0e"), Ok(Command::Ping));
        assert_eq!(d(b"\x1f"), Ok(Command::ResetConnection));
        assert_eq!(d(b"\x1b\x01\x00"), Ok(Command::SetOption(1)));
        assert_eq!(d(b"\x16SELECT ?"), Ok(Command::StmtPrepare(b"SELECT ?")));
        assert_eq!(
            d(b"\x17\x07\0\0\0\x01\x01\0\0\0"),
            Ok(Command::StmtExecute {
                stmt_id: 7,
                flags: 1
            })
        );
        assert_eq!(
            d(b"\x18\x07\0\0\0\x02\0data"),
            Ok(Command::StmtSendLongData {
                stmt_id: 7,
                param_id: 2
            })
        );
        assert_eq!(d(b"\x19\x07\0\0\0"), Ok(Command::StmtClose(7)));
        assert_eq!(d(b"\x1a\x07\0\0\0"), Ok(Command::StmtReset(7)));
        assert_eq!(
            d(b"\x1c\x07\0\0\0\x10\0\0\0"),
            Ok(Command::StmtFetch {
                stmt_id: 7,
                rows: 16
            })
        );
        assert_eq!(d(b"\x20"), Ok(Command::Unknown(0x20)));
        assert_eq!(d(b"\xfa\0\0\0\0"), Ok(Command::Unknown(0xfa)));
        assert_eq!(d(b"\xff"), Ok(Command::Unknown(0xff)));
    }

    #[test]
    fn truncated_arguments_are_errors() {
        for p in [
            &b"\x1b\x01"[..],
            b"\x17\x07\0\0\0\x01\x01\0\0",
            b"\x18\x07\0\0\0\x02",
            b"\x19\x07\0\0",
            b"\x1a",
            b"\x1c\x07\0\0\0\x10\0\0",
            b"\x11",
            b"\x11root",
            b"\x11root\0\x05abc",
        ] {
            assert!(matches!(d(p), Err(CommandError::Truncated { .. })), "{p:?}");
        }
    }

    #[test]
    fn every_command_byte_is_decided() {
        let mut refused = 0;
        for b in 0..=255u8 {
            let p = [b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let c = d(&p).unwrap();
            if let Command::Refused(r) = c {
                assert_eq!(r.code, b);
                assert!(r.name.starts_with("COM_") && !r.why.is_empty());
                refused += 1;
            }
            if b > COM_RESET_CONNECTION {
                assert_eq!(c, Command::Unknown(b));
            }
        }
        assert_eq!(refused, REFUSED.len());
        assert_eq!(refused, 11);
        // Server-internal commands get the server's own answer.
        for b in [0x00, 0x0b, 0x0f, 0x10, 0x14, 0x1d] {
            assert_eq!(d(&[b]).unwrap(), Command::Unknown(b), "{b:#x}");
        }
    }

    #[test]
    fn change_user_forms() {
        let full = b"\x11bob\0\x14abcdefghijklmnopqrstshop\0\x2d\0mysql_native_password\0\x08\x01k\x05value";
        let Ok(Command::ChangeUser(cu)) = d(full) else {
            panic!()
        };
        assert_eq!(cu.username, b"bob");
        assert_eq!(cu.auth_response, b"abcdefghijklmnopqrst");
        assert_eq!(cu.database, b"shop");
        assert_eq!(cu.charset, Some(45));
        assert_eq!(cu.auth_plugin, Some(&b"mysql_native_password"[..]));
        assert_eq!(cu.attributes, Some(&b"\x01k\x05value"[..]));
        // Old clients stop after the database, or before it.
        let Ok(Command::ChangeUser(cu)) = d(b"\x11bob\0\x00shop\0") else {
            panic!()
        };
        assert_eq!(
            (cu.auth_response, cu.database, cu.charset),
            (&b""[..], &b"shop"[..], None)
        );
        let Ok(Command::ChangeUser(cu)) = d(b"\x11bob\0\x00") else {
            panic!()
        };
        assert_eq!(cu.database, b"");
        // Without SECURE_CONNECTION the response is NUL-terminated.
        let Ok(Command::ChangeUser(cu)) = Command::decode(b"\x11bob\0pw\0db\0", CLIENT_PROTOCOL_41)
        else {
            panic!()
        };
        assert_eq!((cu.auth_response, cu.database), (&b"pw"[..], &b"db"[..]));
        // A bad attribute block.
        assert_eq!(
            d(b"\x11bob\0\x00db\0\x2d\0p\0\x02\x05k"),
            Err(CommandError::BadAttributes)
        );
    }

    #[test]
    fn reply_expectations() {
        assert!(!expects_reply(COM_QUIT));
        assert!(!expects_reply(COM_STMT_CLOSE));
        assert!(!expects_reply(COM_STMT_SEND_LONG_DATA));
        assert!(expects_reply(COM_QUERY));
        assert_eq!(d(b"\x03x").unwrap().expect(), Some(Expect::Query));
        assert_eq!(d(b"\x19\x07\0\0\0").unwrap().expect(), None);
        assert_eq!(d(b"\x1b\0\0").unwrap().expect(), Some(Expect::Simple));
    }
}

/// Command packets sent to MariaDB 10.11 by `fuzz/capture_mariadb.py`.
#[cfg(test)]
mod captured {
    use super::*;
    use crate::protocol::consts::caps::PROXY_SUPPORTED;

    #[test]
    fn captured_commands_decode_and_every_truncation_is_safe() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/protocol/testdata/mariadb");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("cmd.") {
                continue;
            }
            let p = std::fs::read(&path).unwrap();
            let c = Command::decode(&p, PROXY_SUPPORTED).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !matches!(c, Command::Unknown(_) | Command::Refused(_)),
                "{name}: {c:?}"
            );
            assert_eq!(
                c.expect().is_some(),
                expects_reply(p[0]) && !matches!(c, Command::ChangeUser(_)),
                "{name}"
            );
            for cut in 0..p.len() {
                // Shorter packets decode to less or fail; they never panic.
                let _ = Command::decode(&p[..cut], PROXY_SUPPORTED);
            }
            seen += 1;
        }
        assert!(seen >= 25, "{seen}");
    }
}
