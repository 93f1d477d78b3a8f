//! The sans-IO MySQL wire codec. Nothing in here touches a socket or a clock:
//! every function takes bytes and returns values or ranges into them, so the
//! whole module can be fuzzed and benchmarked alone.
//!
//! - [`reader`]: the `Option`-returning cursor every parser reads through, and
//!   the length-encoded writers.
//! - [`frame`]: packet headers, writing frames, and the relays that follow a
//!   client's packet (or LOCAL INFILE file) frame by frame.
//! - [`consts`]: capability, status and command numbers.
//! - [`handshake`]: greeting, handshake response, SSL request, auth switch,
//!   connection attributes.
//! - [`auth`]: mysql_native_password hashes, scrambles and credentials.
//! - [`command`]: client commands decoded from their first packet.
//! - [`reply`]: the reply tracker that streams a server's answer and finds
//!   its end.
//! - [`packet`]: OK, ERR and EOF packets, and the error codes the proxy sends.
//!
//! The protocol pages each parser follows are linked from its module.
//! Everything here is MySQL protocol 4.1, plus the one MariaDB extended
//! capability the proxy may offer: metadata caching (the handshake carries
//! the extended capabilities, the reply tracker reads the column count's
//! flag byte; see `consts::mariadb`). Without it the proxy keeps bit 0
//! (`CLIENT_MYSQL` to MariaDB) set.

pub mod auth;
pub mod command;
pub mod consts;
pub mod frame;
pub mod handshake;
pub mod packet;
pub mod reader;
pub mod reply;

pub use auth::{Credential, PasswordHash, Scramble, NATIVE_PASSWORD};
pub use command::{expects_reply, ChangeUser, Command, CommandError, RefusedCommand};
pub use frame::{
    begin_packet, finish_packet, parse_header, write_packet, FrameError, Header, InfileRelay,
    PacketRelay, RelayScan, HEADER_LEN, MAX_FRAME_PAYLOAD,
};
pub use handshake::{
    append_attribute, attributes, is_ssl_request, AuthSwitchRequest, Greeting, HandshakeError,
    HandshakeResponse,
};
pub use packet::{
    parse_err, parse_ok, write_eof, write_err, write_ok, ErrPacket, ErrorCode, OkPacket,
};
pub use reader::{put_lenenc_bytes, put_lenenc_int, Reader};
pub use reply::{Expect, ReplyError, ReplyScan, ReplyState, ReplyTracker};
