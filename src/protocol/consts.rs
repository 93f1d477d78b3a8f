//! Numbers of the MySQL client/server protocol: capability flags, server
//! status flags and command bytes.
//!
//! Capabilities: <https://mariadb.com/kb/en/connection/#capabilities>;
//! status flags: <https://mariadb.com/kb/en/ok_packet/#server-status-flag>;
//! commands: <https://mariadb.com/kb/en/1-connecting-connecting/> and the
//! `enum_server_command` of MariaDB's `include/my_command.h`.

/// Capability flags exchanged in the greeting and the handshake response.
pub mod caps {
    /// MySQL: new, more secure passwords. MariaDB reuses this bit as
    /// `CLIENT_MYSQL`: a server or client that clears it has MariaDB's
    /// extended capabilities ([`super::mariadb`]) in the greeting's and the
    /// handshake response's reserved bytes. The proxy clears it only when it
    /// offers one of them; otherwise every reply it relays is plain MySQL
    /// protocol.
    pub const CLIENT_LONG_PASSWORD: u32 = 1;
    /// MariaDB's name for bit 0, see [`CLIENT_LONG_PASSWORD`].
    pub const CLIENT_MYSQL: u32 = 1;
    /// Affected rows count rows found rather than rows changed.
    pub const CLIENT_FOUND_ROWS: u32 = 1 << 1;
    /// All column flags are sent.
    pub const CLIENT_LONG_FLAG: u32 = 1 << 2;
    /// The handshake response carries a database name.
    pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
    /// `db.table.column` is not allowed.
    pub const CLIENT_NO_SCHEMA: u32 = 1 << 4;
    /// zlib compression of the packet stream.
    pub const CLIENT_COMPRESS: u32 = 1 << 5;
    /// Obsolete ODBC flag.
    pub const CLIENT_ODBC: u32 = 1 << 6;
    /// The client can answer `LOAD DATA LOCAL INFILE`.
    pub const CLIENT_LOCAL_FILES: u32 = 1 << 7;
    /// The parser ignores spaces before `(`.
    pub const CLIENT_IGNORE_SPACE: u32 = 1 << 8;
    /// The 4.1 protocol: required by the proxy.
    pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
    /// `interactive_timeout` applies instead of `wait_timeout`.
    pub const CLIENT_INTERACTIVE: u32 = 1 << 10;
    /// TLS: the client sends an SSL request and switches to TLS.
    pub const CLIENT_SSL: u32 = 1 << 11;
    /// Client-side only: do not install SIGPIPE handlers.
    pub const CLIENT_IGNORE_SIGPIPE: u32 = 1 << 12;
    /// The client knows about transactions (status flags in OK).
    pub const CLIENT_TRANSACTIONS: u32 = 1 << 13;
    /// Old flag for the 4.1 protocol.
    pub const CLIENT_RESERVED: u32 = 1 << 14;
    /// 4.1 authentication: the auth response is length-prefixed.
    pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
    /// Several statements in one COM_QUERY.
    pub const CLIENT_MULTI_STATEMENTS: u32 = 1 << 16;
    /// Several result sets in one reply.
    pub const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
    /// Several result sets in a COM_STMT_EXECUTE reply.
    pub const CLIENT_PS_MULTI_RESULTS: u32 = 1 << 18;
    /// Authentication plugins: names in the greeting and the response.
    pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
    /// The handshake response carries connection attributes.
    pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
    /// The auth response is a length-encoded string.
    pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
    /// The client can handle an expired password (sandbox mode).
    pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
    /// OK packets carry session state changes.
    pub const CLIENT_SESSION_TRACK: u32 = 1 << 23;
    /// Result sets end with an OK packet (0xFE header) instead of EOF, and
    /// the EOF after the column definitions is left out.
    pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
    /// MySQL 8: result sets may come without metadata.
    pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
    /// MySQL 8: zstd compression.
    pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 1 << 26;
    /// MySQL 8: COM_QUERY and COM_STMT_EXECUTE carry query attributes.
    pub const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
    /// MySQL 8: multi-factor authentication.
    pub const CLIENT_MULTI_FACTOR_AUTHENTICATION: u32 = 1 << 28;
    /// MySQL 8: reserved for a capability extension.
    pub const CLIENT_CAPABILITY_EXTENSION: u32 = 1 << 29;
    /// MariaDB's (obsolete) progress reports share bit 29.
    pub const CLIENT_PROGRESS_OBSOLETE: u32 = 1 << 29;
    /// Client-side only: verify the server certificate.
    pub const CLIENT_SSL_VERIFY_SERVER_CERT: u32 = 1 << 30;
    /// Client-side only: keep options after a failed connect.
    pub const CLIENT_REMEMBER_OPTIONS: u32 = 1 << 31;

    /// The capabilities whose reply formats the proxy understands and relays
    /// unchanged. Left out: SSL and COMPRESS (the proxy does not terminate
    /// TLS or compression yet), OPTIONAL_RESULTSET_METADATA and
    /// QUERY_ATTRIBUTES (they change the result-set and command formats the
    /// reply tracker and the scanner read), ZSTD, and every higher bit (MySQL
    /// 8 and MariaDB give them different meanings). Bit 0 is set unless a
    /// MariaDB extended capability is offered (see [`CLIENT_LONG_PASSWORD`]).
    pub const PROXY_SUPPORTED: u32 = CLIENT_LONG_PASSWORD
        | CLIENT_FOUND_ROWS
        | CLIENT_LONG_FLAG
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_NO_SCHEMA
        | CLIENT_ODBC
        | CLIENT_LOCAL_FILES
        | CLIENT_IGNORE_SPACE
        | CLIENT_PROTOCOL_41
        | CLIENT_INTERACTIVE
        | CLIENT_IGNORE_SIGPIPE
        | CLIENT_TRANSACTIONS
        | CLIENT_RESERVED
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_STATEMENTS
        | CLIENT_MULTI_RESULTS
        | CLIENT_PS_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH
        | CLIENT_CONNECT_ATTRS
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
        | CLIENT_SESSION_TRACK
        | CLIENT_DEPRECATE_EOF;
}

/// MariaDB's extended capabilities: a second 32-bit word, exchanged in the
/// last 4 of the greeting's 10 reserved bytes and of the handshake
/// response's 23 filler bytes, meaningful only while bit 0
/// ([`caps::CLIENT_MYSQL`]) is clear on both sides
/// (<https://mariadb.com/kb/en/connection/#capabilities>; MariaDB's own code
/// numbers them from bit 32 of a 64-bit word).
pub mod mariadb {
    /// Progress reports: ERR packets with code 0xFFFF inside a reply.
    pub const MARIADB_CLIENT_PROGRESS: u32 = 1;
    /// COM_MULTI (never released).
    pub const MARIADB_CLIENT_COM_MULTI: u32 = 1 << 1;
    /// COM_STMT_BULK_EXECUTE.
    pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u32 = 1 << 2;
    /// Column definitions carry extended type information.
    pub const MARIADB_CLIENT_EXTENDED_METADATA: u32 = 1 << 3;
    /// A prepared statement's column definitions are sent again only when
    /// they change: the column-count packet carries a flag byte, 1 when the
    /// definitions follow, 0 when they are left out.
    pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 1 << 4;

    /// The extended capabilities the proxy offers. Metadata caching only:
    /// the reply tracker reads its flag byte. Bulk execution is a command
    /// the proxy does not route, extended metadata and progress reports
    /// would be relayed correctly but nothing asks for them yet.
    pub const PROXY_SUPPORTED: u32 = MARIADB_CLIENT_CACHE_METADATA;
}

/// Server status flags, carried by OK and EOF packets.
pub mod status {
    /// A transaction is open.
    pub const SERVER_STATUS_IN_TRANS: u16 = 1;
    /// Autocommit is on.
    pub const SERVER_STATUS_AUTOCOMMIT: u16 = 1 << 1;
    /// Another result follows this one.
    pub const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
    /// The query used a bad index.
    pub const SERVER_QUERY_NO_GOOD_INDEX_USED: u16 = 1 << 4;
    /// The query used no index.
    pub const SERVER_QUERY_NO_INDEX_USED: u16 = 1 << 5;
    /// COM_STMT_EXECUTE opened a cursor: rows come through COM_STMT_FETCH.
    pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;
    /// COM_STMT_FETCH sent the cursor's last row.
    pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 1 << 7;
    /// The current database was dropped.
    pub const SERVER_STATUS_DB_DROPPED: u16 = 1 << 8;
    /// `NO_BACKSLASH_ESCAPES` is in the SQL mode: the scanner must know.
    pub const SERVER_STATUS_NO_BACKSLASH_ESCAPES: u16 = 1 << 9;
    /// A prepared statement's metadata changed.
    pub const SERVER_STATUS_METADATA_CHANGED: u16 = 1 << 10;
    /// The query was logged as slow.
    pub const SERVER_QUERY_WAS_SLOW: u16 = 1 << 11;
    /// The result set holds a procedure's OUT parameters.
    pub const SERVER_PS_OUT_PARAMS: u16 = 1 << 12;
    /// A read-only transaction is open.
    pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 1 << 13;
    /// The OK packet carries session state changes.
    pub const SERVER_SESSION_STATE_CHANGED: u16 = 1 << 14;
}

/// Command bytes: the first payload byte of every packet a client sends
/// after the handshake.
pub mod com {
    /// Internal server state; a client never sends it.
    pub const COM_SLEEP: u8 = 0x00;
    /// Close the connection.
    pub const COM_QUIT: u8 = 0x01;
    /// Change the default database.
    pub const COM_INIT_DB: u8 = 0x02;
    /// A text statement.
    pub const COM_QUERY: u8 = 0x03;
    /// The columns of a table (deprecated).
    pub const COM_FIELD_LIST: u8 = 0x04;
    /// Obsolete: create a database.
    pub const COM_CREATE_DB: u8 = 0x05;
    /// Obsolete: drop a database.
    pub const COM_DROP_DB: u8 = 0x06;
    /// FLUSH by bit mask.
    pub const COM_REFRESH: u8 = 0x07;
    /// Shut the server down.
    pub const COM_SHUTDOWN: u8 = 0x08;
    /// A one-line status string.
    pub const COM_STATISTICS: u8 = 0x09;
    /// SHOW PROCESSLIST (deprecated).
    pub const COM_PROCESS_INFO: u8 = 0x0a;
    /// Internal server state.
    pub const COM_CONNECT: u8 = 0x0b;
    /// KILL a connection by id (deprecated).
    pub const COM_PROCESS_KILL: u8 = 0x0c;
    /// Dump debug information to the server's error log.
    pub const COM_DEBUG: u8 = 0x0d;
    /// Check the connection.
    pub const COM_PING: u8 = 0x0e;
    /// Internal server state.
    pub const COM_TIME: u8 = 0x0f;
    /// Internal server state.
    pub const COM_DELAYED_INSERT: u8 = 0x10;
    /// Re-authenticate as another user.
    pub const COM_CHANGE_USER: u8 = 0x11;
    /// Replication: stream the binary log.
    pub const COM_BINLOG_DUMP: u8 = 0x12;
    /// Replication: dump a table (removed from servers).
    pub const COM_TABLE_DUMP: u8 = 0x13;
    /// Internal server state.
    pub const COM_CONNECT_OUT: u8 = 0x14;
    /// Replication: register a replica.
    pub const COM_REGISTER_SLAVE: u8 = 0x15;
    /// Prepare a statement.
    pub const COM_STMT_PREPARE: u8 = 0x16;
    /// Execute a prepared statement.
    pub const COM_STMT_EXECUTE: u8 = 0x17;
    /// Send a parameter's data in pieces; no reply.
    pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
    /// Close a prepared statement; no reply.
    pub const COM_STMT_CLOSE: u8 = 0x19;
    /// Reset a prepared statement's long data and cursor.
    pub const COM_STMT_RESET: u8 = 0x1a;
    /// Turn multi-statements on or off.
    pub const COM_SET_OPTION: u8 = 0x1b;
    /// Fetch rows from a cursor.
    pub const COM_STMT_FETCH: u8 = 0x1c;
    /// Internal server state.
    pub const COM_DAEMON: u8 = 0x1d;
    /// Replication: stream the binary log from a GTID.
    pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
    /// Reset the session without re-authenticating.
    pub const COM_RESET_CONNECTION: u8 = 0x1f;
    /// MariaDB: bulk execution (needs `MARIADB_CLIENT_STMT_BULK_OPERATIONS`,
    /// which the proxy never offers).
    pub const COM_STMT_BULK_EXECUTE: u8 = 0xfa;
}

/// Cursor flags of COM_STMT_EXECUTE.
pub mod cursor {
    /// No cursor: the rows come with the reply.
    pub const CURSOR_TYPE_NO_CURSOR: u8 = 0;
    /// A read-only cursor: rows come through COM_STMT_FETCH.
    pub const CURSOR_TYPE_READ_ONLY: u8 = 1;
    /// MySQL: a cursor for update (unsupported by the servers).
    pub const CURSOR_TYPE_FOR_UPDATE: u8 = 2;
    /// MySQL: a scrollable cursor (unsupported by the servers).
    pub const CURSOR_TYPE_SCROLLABLE: u8 = 4;
}

/// Arguments of COM_SET_OPTION.
pub mod set_option {
    /// Multi-statements on.
    pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
    /// Multi-statements off.
    pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;
}

/// Collation ids used in the handshake.
pub mod charset {
    /// `latin1_swedish_ci`, the old default.
    pub const LATIN1_SWEDISH_CI: u8 = 8;
    /// `utf8mb3_general_ci`.
    pub const UTF8_GENERAL_CI: u8 = 33;
    /// `utf8mb4_general_ci`, MariaDB's default for utf8mb4.
    pub const UTF8MB4_GENERAL_CI: u8 = 45;
    /// `binary`.
    pub const BINARY: u8 = 63;
}
