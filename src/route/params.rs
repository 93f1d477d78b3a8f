//! The shard-key parameter of a COM_STMT_EXECUTE, read from the packet.
//!
//! Layout (<https://mariadb.com/kb/en/com_stmt_execute/>), after the 4-byte
//! packet header:
//!
//! ```text
//! u8   0x17 COM_STMT_EXECUTE
//! u32  statement id (0xFFFFFFFF: the last one prepared, MariaDB 10.2+)
//! u8   flags (cursor type)
//! u32  iteration count (always 1; the server ignores it)
//! if the statement has parameters (n > 0):
//!   (n + 7) / 8 bytes  NULL bitmap, bit i set: parameter i is NULL
//!   u8                 new-params-bound flag: 1 types follow, 0 reuse the
//!                      types of the previous execute of this statement
//!   if 1: n x (u8 field type, u8 flags: 0x80 unsigned)
//!   the values of the parameters that are neither NULL nor sent earlier
//!   with COM_STMT_SEND_LONG_DATA, in order
//! ```
//!
//! How much room each value takes follows what the server itself reads, not
//! the binary result-row format (they differ). Checked against MariaDB
//! 10.11.19 by sending hand-built packets for `SELECT CONCAT('[', ?, '][',
//! ?, ']')` and reading back where the second value was found:
//!
//! - TINY 1 byte, SHORT 2, LONG 4, LONGLONG 8, FLOAT 4, DOUBLE 8;
//! - DATE, TIME, DATETIME, TIMESTAMP, NEWDATE: a length byte and that many
//!   bytes;
//! - DECIMAL, NEWDECIMAL, VARCHAR, ENUM, SET, the BLOBs, VAR_STRING, STRING:
//!   a length-encoded string;
//! - INT24, YEAR, BIT and GEOMETRY take **no** bytes and bind NULL on
//!   MariaDB (MySQL reads them as strings): they are refused
//!   ([`ParamError::UnsupportedType`]), since the two servers disagree;
//! - NULL (unless its NULL bit is set), JSON and unknown type codes, any flag
//!   bit but 0x80 (0x40 is MariaDB's indicator variant), a new-params-bound
//!   flag other than 0 or 1: the server answers an error; so does dbrouter.
//!
//! A parameter sent with COM_STMT_SEND_LONG_DATA has no bytes here at all
//! (the server ignores even its NULL bit); the session says which ones with
//! [`ExecuteParams::with_long_data`], remembering the parameters named by
//! COM_STMT_SEND_LONG_DATA since the statement's last COM_STMT_EXECUTE or
//! COM_STMT_RESET (checked on 10.11.19: the next execute after one that
//! used long data reads every value from its packet again). Such a
//! parameter cannot be a key ([`ParamError::LongData`]): its value is only
//! complete at the server.
//! MariaDB's bulk variant, COM_STMT_BULK_EXECUTE (0xFA), is another command
//! and is refused as [`ParamError::NotExecute`].
//!
//! Every read goes through [`Reader`]: hostile bytes give an error, never
//! a panic or an out-of-bounds read.

use std::borrow::Cow;
use std::fmt;

use super::value::KeyValue;
use crate::protocol::consts::com::COM_STMT_EXECUTE;
use crate::protocol::reader::Reader;

/// Field type codes (`enum_field_types` of MariaDB's `include/mysql_com.h`).
pub mod field_type {
    pub const DECIMAL: u8 = 0x00;
    pub const TINY: u8 = 0x01;
    pub const SHORT: u8 = 0x02;
    pub const LONG: u8 = 0x03;
    pub const FLOAT: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const NULL: u8 = 0x06;
    pub const TIMESTAMP: u8 = 0x07;
    pub const LONGLONG: u8 = 0x08;
    pub const INT24: u8 = 0x09;
    pub const DATE: u8 = 0x0a;
    pub const TIME: u8 = 0x0b;
    pub const DATETIME: u8 = 0x0c;
    pub const YEAR: u8 = 0x0d;
    pub const NEWDATE: u8 = 0x0e;
    pub const VARCHAR: u8 = 0x0f;
    pub const BIT: u8 = 0x10;
    pub const JSON: u8 = 0xf5;
    pub const NEWDECIMAL: u8 = 0xf6;
    pub const ENUM: u8 = 0xf7;
    pub const SET: u8 = 0xf8;
    pub const TINY_BLOB: u8 = 0xf9;
    pub const MEDIUM_BLOB: u8 = 0xfa;
    pub const LONG_BLOB: u8 = 0xfb;
    pub const BLOB: u8 = 0xfc;
    pub const VAR_STRING: u8 = 0xfd;
    pub const STRING: u8 = 0xfe;
    pub const GEOMETRY: u8 = 0xff;
}

/// The parameter flag bit for an unsigned integer.
pub const PARAM_UNSIGNED: u8 = 0x80;

/// Why a key parameter cannot be read; each message says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError {
    /// The payload is not a COM_STMT_EXECUTE.
    NotExecute,
    /// The packet ends before the field being read.
    Truncated,
    /// A new-params-bound flag other than 0 or 1.
    BadBoundFlag(u8),
    /// The execute reuses earlier types (new-params-bound = 0) that were not
    /// seen (or not for this many parameters).
    TypesUnknown,
    /// A parameter flag other than unsigned (MariaDB's indicator variant).
    UnsupportedFlag { index: u16, flag: u8 },
    /// A type whose bytes the servers read differently or not at all.
    UnsupportedType { index: u16, type_code: u8 },
    /// A length prefix of 0xFB or 0xFF.
    BadLength { index: u16 },
    /// The statement has no parameter at this index.
    NoSuchParam { index: u16, count: u16 },
    /// A float or a temporal value as the shard key.
    NotAKeyType { index: u16, type_code: u8 },
    /// The key was sent with COM_STMT_SEND_LONG_DATA.
    LongData { index: u16 },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParamError::NotExecute => f.write_str(
                "not a COM_STMT_EXECUTE packet: only plain executes are routed (no bulk execute)",
            ),
            ParamError::Truncated => f.write_str(
                "the COM_STMT_EXECUTE packet ends before its parameters do: the client sent a \
                 malformed packet",
            ),
            ParamError::BadBoundFlag(flag) => write!(
                f,
                "COM_STMT_EXECUTE has new-params-bound flag {flag}, not 0 or 1: the client sent \
                 a malformed packet"
            ),
            ParamError::TypesUnknown => f.write_str(
                "COM_STMT_EXECUTE reuses parameter types the proxy has not seen: bind the \
                 parameters again (send their types) before executing",
            ),
            ParamError::UnsupportedFlag { index, flag } => write!(
                f,
                "parameter {index} has flags {flag:#04x}: only plain (0) or unsigned (0x80) \
                 parameters are supported, no indicator variables"
            ),
            ParamError::UnsupportedType { index, type_code } => write!(
                f,
                "parameter {index} is bound as {} (type {type_code}), which servers read \
                 differently: bind it as an integer, a string or a decimal",
                type_name(type_code)
            ),
            ParamError::BadLength { index } => write!(
                f,
                "parameter {index} has an invalid length prefix: the client sent a malformed \
                 packet"
            ),
            ParamError::NoSuchParam { index, count } => write!(
                f,
                "the statement has {count} parameters, so there is no parameter {index}: \
                 prepare it again"
            ),
            ParamError::NotAKeyType { index, type_code } => write!(
                f,
                "the shard key parameter {index} is bound as {} (type {type_code}): bind it \
                 as an integer or a string",
                type_name(type_code)
            ),
            ParamError::LongData { index } => write!(
                f,
                "the shard key parameter {index} was sent with COM_STMT_SEND_LONG_DATA: bind \
                 the key as an ordinary value"
            ),
        }
    }
}

impl std::error::Error for ParamError {}

/// A readable name of a field type code, for messages.
pub fn type_name(type_code: u8) -> &'static str {
    use field_type::*;
    match type_code {
        DECIMAL => "DECIMAL",
        TINY => "TINY",
        SHORT => "SHORT",
        LONG => "LONG",
        FLOAT => "FLOAT",
        DOUBLE => "DOUBLE",
        NULL => "NULL",
        TIMESTAMP => "TIMESTAMP",
        LONGLONG => "LONGLONG",
        INT24 => "INT24",
        DATE => "DATE",
        TIME => "TIME",
        DATETIME => "DATETIME",
        YEAR => "YEAR",
        NEWDATE => "NEWDATE",
        VARCHAR => "VARCHAR",
        BIT => "BIT",
        JSON => "JSON",
        NEWDECIMAL => "NEWDECIMAL",
        ENUM => "ENUM",
        SET => "SET",
        TINY_BLOB => "TINY_BLOB",
        MEDIUM_BLOB => "MEDIUM_BLOB",
        LONG_BLOB => "LONG_BLOB",
        BLOB => "BLOB",
        VAR_STRING => "VAR_STRING",
        STRING => "STRING",
        GEOMETRY => "GEOMETRY",
        _ => "an unknown type",
    }
}

/// How a value of a field type is laid out in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// A little-endian integer of this many bytes.
    Int(usize),
    /// A float of this many bytes.
    Float(usize),
    /// A length-prefixed date or time.
    Temporal,
    /// A length-encoded decimal number as text.
    Decimal,
    /// A length-encoded string.
    Text,
}

fn layout(type_code: u8) -> Option<Layout> {
    use field_type::*;
    Some(match type_code {
        TINY => Layout::Int(1),
        SHORT => Layout::Int(2),
        LONG => Layout::Int(4),
        LONGLONG => Layout::Int(8),
        FLOAT => Layout::Float(4),
        DOUBLE => Layout::Float(8),
        DATE | TIME | DATETIME | TIMESTAMP | NEWDATE => Layout::Temporal,
        DECIMAL | NEWDECIMAL => Layout::Decimal,
        VARCHAR | ENUM | SET | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB | VAR_STRING | STRING => {
            Layout::Text
        }
        // INT24, YEAR, BIT, GEOMETRY: no bytes on MariaDB, a string on MySQL.
        // NULL without its NULL bit, JSON, unknown codes: server error.
        _ => return None,
    })
}

/// Whether bit `i` of a little-endian bitmap is set (bits past its end are
/// not).
fn bit(bitmap: &[u8], i: u16) -> bool {
    bitmap
        .get(usize::from(i / 8))
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// A COM_STMT_EXECUTE payload split into its parts, borrowed; values are
/// decoded on demand by [`ExecuteParams::value`].
#[derive(Debug, Clone)]
pub struct ExecuteParams<'a> {
    statement_id: u32,
    flags: u8,
    iteration_count: u32,
    num_params: u16,
    null_bitmap: &'a [u8],
    /// Two bytes per parameter: the packet's own, or the cached ones.
    types: &'a [u8],
    types_sent: bool,
    /// Everything after the types.
    values: &'a [u8],
    /// Bit i set: parameter i was sent with COM_STMT_SEND_LONG_DATA.
    long_data: &'a [u8],
}

impl<'a> ExecuteParams<'a> {
    /// Splits a COM_STMT_EXECUTE payload (starting with the 0x17 command
    /// byte) of a statement with `num_params` parameters (from its
    /// COM_STMT_PREPARE reply). `cached_types` are the types the last execute
    /// of this statement sent ([`types`](Self::types) when
    /// [`types_sent`](Self::types_sent)), for executes that reuse them.
    pub fn parse(
        payload: &'a [u8],
        num_params: u16,
        cached_types: Option<&'a [u8]>,
    ) -> Result<ExecuteParams<'a>, ParamError> {
        let mut r = Reader::new(payload);
        if r.u8().ok_or(ParamError::Truncated)? != COM_STMT_EXECUTE {
            return Err(ParamError::NotExecute);
        }
        let statement_id = r.u32_le().ok_or(ParamError::Truncated)?;
        let flags = r.u8().ok_or(ParamError::Truncated)?;
        let iteration_count = r.u32_le().ok_or(ParamError::Truncated)?;
        let mut params = ExecuteParams {
            statement_id,
            flags,
            iteration_count,
            num_params,
            null_bitmap: &[],
            types: &[],
            types_sent: false,
            values: &[],
            long_data: &[],
        };
        if num_params == 0 {
            return Ok(params);
        }
        let n = usize::from(num_params);
        params.null_bitmap = r.bytes(n.div_ceil(8)).ok_or(ParamError::Truncated)?;
        params.types = match r.u8().ok_or(ParamError::Truncated)? {
            1 => {
                params.types_sent = true;
                r.bytes(2 * n).ok_or(ParamError::Truncated)?
            }
            0 => cached_types
                .filter(|t| t.len() == 2 * n)
                .ok_or(ParamError::TypesUnknown)?,
            other => return Err(ParamError::BadBoundFlag(other)),
        };
        for (index, pair) in (0u16..).zip(params.types.chunks_exact(2)) {
            if pair[1] & !PARAM_UNSIGNED != 0 {
                return Err(ParamError::UnsupportedFlag {
                    index,
                    flag: pair[1],
                });
            }
        }
        params.values = r.rest();
        Ok(params)
    }

    /// Says which parameters were sent with COM_STMT_SEND_LONG_DATA since
    /// the last execute (bit i of the little-endian `bitmap`: parameter i;
    /// missing bytes: none). Their values are not in this packet.
    pub fn with_long_data(mut self, bitmap: &'a [u8]) -> ExecuteParams<'a> {
        self.long_data = bitmap;
        self
    }

    /// The statement id (0xFFFFFFFF: the last statement prepared).
    pub fn statement_id(&self) -> u32 {
        self.statement_id
    }

    /// The cursor flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The iteration count (1 from every client seen; ignored by the server).
    pub fn iteration_count(&self) -> u32 {
        self.iteration_count
    }

    /// The number of parameters the statement has.
    pub fn num_params(&self) -> u16 {
        self.num_params
    }

    /// The parameter types in effect, two bytes each (type, flags): this
    /// packet's when [`types_sent`](Self::types_sent), else the cached ones.
    /// Keep them when they were sent: later executes may reuse them.
    pub fn types(&self) -> &'a [u8] {
        self.types
    }

    /// Whether this packet carried its own types (new-params-bound = 1).
    pub fn types_sent(&self) -> bool {
        self.types_sent
    }

    /// The value of parameter `index` (0-based) as a key value: `Int` or
    /// `UInt` for integer types (by the unsigned flag), `Number` for
    /// DECIMAL/NEWDECIMAL text, `Str` for string and BLOB types, `Null` when
    /// its NULL bit is set. Walks the values before it on each call.
    pub fn value(&self, index: u16) -> Result<KeyValue<'a>, ParamError> {
        if index >= self.num_params {
            return Err(ParamError::NoSuchParam {
                index,
                count: self.num_params,
            });
        }
        let mut r = Reader::new(self.values);
        for i in 0..index {
            self.next_value(&mut r, i)?;
        }
        let (type_code, flag, bytes) = match self.next_value(&mut r, index)? {
            Raw::Null => return Ok(KeyValue::Null),
            Raw::LongData => return Err(ParamError::LongData { index }),
            Raw::Value {
                type_code,
                flag,
                bytes,
            } => (type_code, flag, bytes),
        };
        let not_a_key = ParamError::NotAKeyType { index, type_code };
        match layout(type_code) {
            Some(Layout::Int(_)) => Ok(int_value(bytes, flag & PARAM_UNSIGNED != 0)),
            Some(Layout::Text) => Ok(KeyValue::Str(Cow::Borrowed(bytes))),
            // The server parses decimal text itself, where `0x2A` is 0: only
            // digits, signs, points and exponents go on, as a number literal
            // would.
            Some(Layout::Decimal) if bytes.iter().all(|b| b"0123456789+-.eE".contains(b)) => {
                Ok(KeyValue::Number(Cow::Borrowed(bytes)))
            }
            _ => Err(not_a_key),
        }
    }

    /// Reads parameter `i`'s value (the reader is at it) and moves past it.
    fn next_value(&self, r: &mut Reader<'a>, i: u16) -> Result<Raw<'a>, ParamError> {
        if bit(self.long_data, i) {
            return Ok(Raw::LongData);
        }
        if bit(self.null_bitmap, i) {
            return Ok(Raw::Null);
        }
        let at = 2 * usize::from(i);
        let (type_code, flag) = match self.types.get(at..at + 2) {
            Some(&[t, f]) => (t, f),
            _ => return Err(ParamError::TypesUnknown),
        };
        let bytes = match layout(type_code) {
            Some(Layout::Int(width) | Layout::Float(width)) => {
                r.bytes(width).ok_or(ParamError::Truncated)?
            }
            Some(Layout::Temporal | Layout::Decimal | Layout::Text) => lenenc(r, i)?,
            None => {
                return Err(ParamError::UnsupportedType {
                    index: i,
                    type_code,
                })
            }
        };
        Ok(Raw::Value {
            type_code,
            flag,
            bytes,
        })
    }
}

/// One parameter's place in the packet.
enum Raw<'a> {
    /// Its NULL bit is set: no bytes.
    Null,
    /// Sent with COM_STMT_SEND_LONG_DATA: no bytes here.
    LongData,
    /// Its bytes (for length-encoded types, without the length).
    Value {
        type_code: u8,
        flag: u8,
        bytes: &'a [u8],
    },
}

/// A length-encoded value of parameter `index`.
fn lenenc<'a>(r: &mut Reader<'a>, index: u16) -> Result<&'a [u8], ParamError> {
    r.lenenc_bytes().ok_or(match r.peek() {
        Some(0xfb | 0xff) => ParamError::BadLength { index },
        _ => ParamError::Truncated,
    })
}

/// A little-endian integer of 1, 2, 4 or 8 bytes, sign- or zero-extended.
fn int_value(bytes: &[u8], unsigned: bool) -> KeyValue<'static> {
    let mut le = [0u8; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    let raw = u64::from_le_bytes(le);
    if unsigned {
        KeyValue::UInt(raw)
    } else {
        // Shift the sign bit of the narrow value up to bit 63 and back.
        let shift = 64 - 8 * bytes.len() as u32;
        KeyValue::Int(((raw << shift) as i64) >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::field_type::*;
    use super::*;
    use crate::protocol::reader::put_lenenc_bytes;

    /// One parameter of a test packet: type, flags, NULL, value bytes.
    #[derive(Clone)]
    struct P {
        ty: u8,
        flag: u8,
        null: bool,
        bytes: Vec<u8>,
    }

    fn p(ty: u8, bytes: &[u8]) -> P {
        P {
            ty,
            flag: 0,
            null: false,
            bytes: bytes.to_vec(),
        }
    }
    fn unsigned(ty: u8, bytes: &[u8]) -> P {
        P {
            flag: PARAM_UNSIGNED,
            ..p(ty, bytes)
        }
    }
    fn null(ty: u8) -> P {
        P {
            null: true,
            ..p(ty, &[])
        }
    }
    fn text(ty: u8, s: &[u8]) -> P {
        let mut b = Vec::new();
        put_lenenc_bytes(&mut b, s);
        p(ty, &b)
    }

    /// A COM_STMT_EXECUTE payload as a client builds it.
    fn payload(params: &[P], send_types: bool) -> Vec<u8> {
        let mut out = vec![COM_STMT_EXECUTE];
        out.extend_from_slice(&7u32.to_le_bytes());
        out.push(0);
        out.extend_from_slice(&1u32.to_le_bytes());
        if params.is_empty() {
            return out;
        }
        let mut bitmap = vec![0u8; params.len().div_ceil(8)];
        for (i, q) in params.iter().enumerate() {
            if q.null {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&bitmap);
        out.push(u8::from(send_types));
        if send_types {
            for q in params {
                out.extend_from_slice(&[q.ty, q.flag]);
            }
        }
        for q in params.iter().filter(|q| !q.null) {
            out.extend_from_slice(&q.bytes);
        }
        out
    }

    fn key_of(params: &[P], index: u16) -> Result<KeyValue<'static>, ParamError> {
        let bytes = payload(params, true);
        ExecuteParams::parse(&bytes, params.len() as u16, None)?
            .value(index)
            .map(KeyValue::into_owned)
    }

    fn s(b: &[u8]) -> KeyValue<'static> {
        KeyValue::Str(Cow::Owned(b.to_vec()))
    }

    #[test]
    fn integer_types_by_signedness() {
        let cases: Vec<(P, KeyValue<'static>)> = vec![
            (p(TINY, &[0xff]), KeyValue::Int(-1)),
            (unsigned(TINY, &[0xff]), KeyValue::UInt(255)),
            (p(TINY, &[0x7f]), KeyValue::Int(127)),
            (p(SHORT, &(-2i16).to_le_bytes()), KeyValue::Int(-2)),
            (unsigned(SHORT, &[0xff, 0xff]), KeyValue::UInt(65535)),
            (p(LONG, &(-42i32).to_le_bytes()), KeyValue::Int(-42)),
            (
                unsigned(LONG, &[0xff; 4]),
                KeyValue::UInt(u64::from(u32::MAX)),
            ),
            (
                p(LONG, &i32::MIN.to_le_bytes()),
                KeyValue::Int(i64::from(i32::MIN)),
            ),
            (
                p(LONGLONG, &i64::MIN.to_le_bytes()),
                KeyValue::Int(i64::MIN),
            ),
            (p(LONGLONG, &42i64.to_le_bytes()), KeyValue::Int(42)),
            (unsigned(LONGLONG, &[0xff; 8]), KeyValue::UInt(u64::MAX)),
            (p(LONGLONG, &[0xff; 8]), KeyValue::Int(-1)),
        ];
        for (param, want) in cases {
            assert_eq!(
                key_of(std::slice::from_ref(&param), 0),
                Ok(want.clone()),
                "{}",
                param.ty
            );
            // The same after another parameter of each walkable kind.
            for before in walkable() {
                assert_eq!(
                    key_of(&[before.clone(), param.clone()], 1),
                    Ok(want.clone()),
                    "{} after {}",
                    param.ty,
                    before.ty
                );
            }
        }
    }

    /// One value of every type whose layout is known, with edge lengths.
    fn walkable() -> Vec<P> {
        let mut all = vec![
            p(TINY, &[1]),
            unsigned(SHORT, &[1, 2]),
            p(LONG, &[1, 2, 3, 4]),
            p(LONGLONG, &[1; 8]),
            p(FLOAT, &1.5f32.to_le_bytes()),
            p(DOUBLE, &1.5f64.to_le_bytes()),
            p(DATE, &[0]),
            p(DATE, &[4, 0xe8, 0x07, 1, 2]),
            p(DATETIME, &[7, 0xe8, 0x07, 1, 2, 3, 4, 5]),
            p(DATETIME, &[11, 0xe8, 0x07, 1, 2, 3, 4, 5, 1, 0, 0, 0]),
            p(TIMESTAMP, &[4, 0xe8, 0x07, 1, 2]),
            p(TIME, &[8, 0, 0, 0, 0, 0, 1, 2, 3]),
            p(TIME, &[12, 1, 1, 0, 0, 0, 1, 2, 3, 9, 0, 0, 0]),
            p(NEWDATE, &[0]),
            text(DECIMAL, b"42.5"),
            text(NEWDECIMAL, b"-1"),
            text(VARCHAR, b""),
            text(VAR_STRING, &[b'x'; 300]), // a 3-byte length prefix
            text(STRING, b"abc"),
            text(ENUM, b"a"),
            text(SET, b"a,b"),
            text(TINY_BLOB, &[0; 5]),
            text(MEDIUM_BLOB, b"m"),
            text(LONG_BLOB, &[0xfb; 70_000]), // a 4-byte length prefix
            text(BLOB, b"\xff\xfe"),
            null(NULL),
            null(INT24),
            null(GEOMETRY),
        ];
        all.push(null(LONGLONG));
        all
    }

    #[test]
    fn strings_and_decimals() {
        for ty in [
            VARCHAR,
            VAR_STRING,
            STRING,
            ENUM,
            SET,
            TINY_BLOB,
            MEDIUM_BLOB,
            LONG_BLOB,
            BLOB,
        ] {
            assert_eq!(key_of(&[text(ty, b"Acme")], 0), Ok(s(b"Acme")));
            assert_eq!(key_of(&[text(ty, b"")], 0), Ok(s(b"")));
        }
        let long = vec![b'k'; 70_000];
        assert_eq!(key_of(&[text(VARCHAR, &long)], 0), Ok(s(&long)));
        for ty in [DECIMAL, NEWDECIMAL] {
            for d in [&b"42"[..], b"-42", b"42.50", b"4.2e1", b"+042"] {
                assert_eq!(
                    key_of(&[text(ty, d)], 0),
                    Ok(KeyValue::Number(Cow::Owned(d.to_vec())))
                );
            }
            // Text the server's decimal parser reads differently from a
            // number literal (`0x2A` is 0 to it) is refused.
            for d in [&b"0x2A"[..], b"0b1", b" 42", b"42abc"] {
                assert_eq!(
                    key_of(&[text(ty, d)], 0),
                    Err(ParamError::NotAKeyType {
                        index: 0,
                        type_code: ty
                    })
                );
            }
        }
    }

    #[test]
    fn floats_and_temporals_are_not_keys() {
        for param in walkable() {
            let ty = param.ty;
            if matches!(
                ty,
                FLOAT | DOUBLE | DATE | DATETIME | TIMESTAMP | TIME | NEWDATE
            ) {
                assert_eq!(
                    key_of(&[param], 0),
                    Err(ParamError::NotAKeyType {
                        index: 0,
                        type_code: ty
                    })
                );
            }
        }
    }

    #[test]
    fn types_the_servers_disagree_on_are_refused() {
        // MariaDB 10.11.19 reads no bytes for these and binds NULL (checked
        // with hand-built packets); JSON, an unbound NULL and unknown codes
        // get "Incorrect arguments to mysqld_stmt_execute".
        for ty in [
            INT24, YEAR, BIT, GEOMETRY, NULL, JSON, 0x11, 0x13, 0x14, 0x64, 0xf4,
        ] {
            let want = Err(ParamError::UnsupportedType {
                index: 0,
                type_code: ty,
            });
            assert_eq!(key_of(&[text(ty, b"42")], 0), want);
            // Also when walking past it to the key.
            assert_eq!(key_of(&[text(ty, b"42"), text(VARCHAR, b"k")], 1), want);
            // With its NULL bit set it has no bytes and is no problem.
            assert_eq!(key_of(&[null(ty), text(VARCHAR, b"k")], 1), Ok(s(b"k")));
            assert_eq!(key_of(&[null(ty)], 0), Ok(KeyValue::Null));
        }
    }

    #[test]
    fn null_bitmap_positions() {
        // 19 parameters: bits across three bitmap bytes.
        for nulls in [
            vec![0],
            vec![7],
            vec![8],
            vec![0, 7, 8, 15, 16, 18],
            (0..19).collect(),
            vec![],
        ] {
            let params: Vec<P> = (0..19u8)
                .map(|i| {
                    if nulls.contains(&i) {
                        null(LONGLONG)
                    } else {
                        p(LONGLONG, &i64::from(i).to_le_bytes())
                    }
                })
                .collect();
            for i in 0..19u8 {
                let want = if nulls.contains(&i) {
                    KeyValue::Null
                } else {
                    KeyValue::Int(i64::from(i))
                };
                assert_eq!(key_of(&params, u16::from(i)), Ok(want), "{nulls:?} {i}");
            }
        }
    }

    #[test]
    fn cached_types_for_executes_that_reuse_them() {
        let params = [p(LONG, &5i32.to_le_bytes()), text(VARCHAR, b"k")];
        let first = payload(&params, true);
        let parsed = ExecuteParams::parse(&first, 2, None).unwrap();
        assert!(parsed.types_sent());
        let cache = parsed.types().to_vec();
        assert_eq!(cache, [LONG, 0, VARCHAR, 0]);

        let again = payload(&params, false);
        let reused = ExecuteParams::parse(&again, 2, Some(&cache)).unwrap();
        assert!(!reused.types_sent());
        assert_eq!(reused.types(), &cache[..]);
        assert_eq!(reused.value(0), Ok(KeyValue::Int(5)));
        assert_eq!(reused.value(1), Ok(s(b"k")));

        assert_eq!(
            ExecuteParams::parse(&again, 2, None).err(),
            Some(ParamError::TypesUnknown)
        );
        assert_eq!(
            ExecuteParams::parse(&again, 2, Some(&cache[..2])).err(),
            Some(ParamError::TypesUnknown)
        );
        // A packet's own types win over the cache.
        let other = [VARCHAR, 0, VARCHAR, 0];
        assert_eq!(
            ExecuteParams::parse(&first, 2, Some(&other))
                .unwrap()
                .types(),
            &cache[..]
        );
    }

    #[test]
    fn header_fields() {
        let mut bytes = payload(&[p(TINY, &[3])], true);
        bytes[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[5] = 1; // a read-only cursor
        bytes[6..10].copy_from_slice(&0u32.to_le_bytes());
        let parsed = ExecuteParams::parse(&bytes, 1, None).unwrap();
        assert_eq!(parsed.statement_id(), u32::MAX);
        assert_eq!(parsed.flags(), 1);
        assert_eq!(parsed.iteration_count(), 0, "ignored by the server");
        assert_eq!(parsed.num_params(), 1);
        assert_eq!(parsed.value(0), Ok(KeyValue::Int(3)));
    }

    #[test]
    fn refusals() {
        // Not an execute: COM_STMT_BULK_EXECUTE, COM_STMT_PREPARE.
        for cmd in [0xfa, 0x16] {
            let mut bytes = payload(&[p(TINY, &[3])], true);
            bytes[0] = cmd;
            assert_eq!(
                ExecuteParams::parse(&bytes, 1, None).err(),
                Some(ParamError::NotExecute)
            );
        }
        // new-params-bound 2: MariaDB says "Malformed communication packet".
        let mut bytes = payload(&[p(TINY, &[3])], true);
        bytes[11] = 2;
        assert_eq!(
            ExecuteParams::parse(&bytes, 1, None).err(),
            Some(ParamError::BadBoundFlag(2))
        );
        // Indicator variables (0x40) and any other flag bit: MariaDB refuses.
        for flag in [0x40, 0x01, 0xc0] {
            let params = [
                text(VARCHAR, b"k"),
                P {
                    flag,
                    ..p(TINY, &[3])
                },
            ];
            assert_eq!(
                ExecuteParams::parse(&payload(&params, true), 2, None).err(),
                Some(ParamError::UnsupportedFlag { index: 1, flag })
            );
        }
        // No such parameter.
        let bytes = payload(&[p(TINY, &[3])], true);
        assert_eq!(
            ExecuteParams::parse(&bytes, 1, None).unwrap().value(1),
            Err(ParamError::NoSuchParam { index: 1, count: 1 })
        );
        let bytes = payload(&[], true);
        let none = ExecuteParams::parse(&bytes, 0, None).unwrap();
        assert_eq!(
            none.value(0),
            Err(ParamError::NoSuchParam { index: 0, count: 0 })
        );
        assert!(none.types().is_empty());
        // Length prefixes 0xFB and 0xFF (the server reads an 8-byte length).
        for prefix in [0xfb, 0xff] {
            let params = [p(VARCHAR, &[prefix, 1, 0, 0, 0, 0, 0, 0, 0, b'k'])];
            assert_eq!(key_of(&params, 0), Err(ParamError::BadLength { index: 0 }));
            let params = [params[0].clone(), p(TINY, &[1])];
            assert_eq!(key_of(&params, 1), Err(ParamError::BadLength { index: 0 }));
        }
    }

    #[test]
    fn long_data_parameters() {
        // Parameter 0 went by COM_STMT_SEND_LONG_DATA: no bytes here, even if
        // its NULL bit is set.
        let params = [
            text(BLOB, b"not in the packet"),
            p(LONGLONG, &9i64.to_le_bytes()),
        ];
        let mut bytes = payload(&params, true);
        let blob_len = params[0].bytes.len();
        bytes.drain(bytes.len() - 8 - blob_len..bytes.len() - 8);
        let parsed = ExecuteParams::parse(&bytes, 2, None)
            .unwrap()
            .with_long_data(&[0b01]);
        assert_eq!(parsed.value(1), Ok(KeyValue::Int(9)));
        assert_eq!(parsed.value(0), Err(ParamError::LongData { index: 0 }));
        bytes[10] = 0b01; // NULL bit too
        let parsed = ExecuteParams::parse(&bytes, 2, None)
            .unwrap()
            .with_long_data(&[0b01]);
        assert_eq!(parsed.value(0), Err(ParamError::LongData { index: 0 }));
        assert_eq!(parsed.value(1), Ok(KeyValue::Int(9)));
    }

    /// Payloads the `mysql` crate (28.0.4, `default-rust`) sent to MariaDB
    /// 10.11.19, captured by a logging TCP relay between them (a throwaway
    /// program executing the statements below with the values shown; the
    /// server's answers matched: 42 and -42 found their rows).
    #[test]
    fn captured_from_the_mysql_crate() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        // SELECT userid FROM ti WHERE userid = ?  (every integer is LONGLONG)
        let one: &[(&str, KeyValue<'static>)] = &[
            (
                "17010000000001000000000108002a00000000000000",
                KeyValue::Int(42),
            ),
            (
                "1701000000000100000000010800d6ffffffffffffff",
                KeyValue::Int(-42),
            ),
            (
                "1701000000000100000000010880ffffffffffffffff",
                KeyValue::UInt(u64::MAX),
            ),
            ("170100000000010000000001fd00023432", s(b"42")),
            ("1701000000000100000001010600", KeyValue::Null),
            (
                "17010000000001000000000108802a00000000000000",
                KeyValue::UInt(42),
            ), // 42u8
            (
                "1701000000000100000000010800f9ffffffffffffff",
                KeyValue::Int(-7),
            ), // -7i16
        ];
        for (packet, want) in one {
            let bytes = hex(packet);
            let parsed = ExecuteParams::parse(&bytes, 1, None).unwrap();
            assert_eq!(parsed.statement_id(), 1);
            assert_eq!(parsed.value(0).map(KeyValue::into_owned), Ok(want.clone()));
        }
        // SELECT name FROM ts WHERE ? IS NOT NULL AND ? <> 0 AND ? IS NOT NULL
        // AND name = ?  with (DATETIME, f64, NULL, "Acme") and (TIME, f32,
        // NULL, "acme  ").
        let four: &[(&str, &[u8])] = &[
            (
                "1702000000000100000004010c0005000600fd000be807010203040506000000\
                 000000000000f83f0441636d65",
                b"Acme",
            ),
            (
                "1702000000000100000004010b0004000600fd00080001000000020304000020\
                 400661636d652020",
                b"acme  ",
            ),
        ];
        for (packet, key) in four {
            let bytes = hex(&packet.replace(' ', ""));
            let parsed = ExecuteParams::parse(&bytes, 4, None).unwrap();
            assert_eq!(parsed.value(3), Ok(KeyValue::Str(Cow::Borrowed(*key))));
            assert_eq!(parsed.value(2), Ok(KeyValue::Null));
            assert!(matches!(
                parsed.value(0),
                Err(ParamError::NotAKeyType { index: 0, .. })
            ));
            assert!(matches!(
                parsed.value(1),
                Err(ParamError::NotAKeyType { index: 1, .. })
            ));
        }
    }

    /// Every prefix of a packet gives the full answer or an error, never a
    /// panic or a different value.
    #[test]
    fn truncation_at_every_offset() {
        let mut params = walkable();
        params.push(p(LONGLONG, &77i64.to_le_bytes()));
        params.push(text(VARCHAR, b"key"));
        // Keep the test fast: drop the 70 kB value.
        params.retain(|q| q.bytes.len() < 1000);
        let n = params.len() as u16;
        for send_types in [true, false] {
            let full = payload(&params, send_types);
            let types: Vec<u8> = params.iter().flat_map(|q| [q.ty, q.flag]).collect();
            let cache = (!send_types).then_some(&types[..]);
            let whole = ExecuteParams::parse(&full, n, cache).unwrap();
            let answers: Vec<_> = (0..n).map(|i| whole.value(i)).collect();
            assert_eq!(answers[usize::from(n) - 2], Ok(KeyValue::Int(77)));
            assert_eq!(answers[usize::from(n) - 1], Ok(s(b"key")));
            for cut in 0..full.len() {
                let Ok(parsed) = ExecuteParams::parse(&full[..cut], n, cache) else {
                    continue;
                };
                for i in 0..n {
                    let got = parsed.value(i);
                    assert!(
                        got == answers[usize::from(i)] || got == Err(ParamError::Truncated),
                        "cut {cut}, param {i}: {got:?}"
                    );
                }
                // The last value ends the packet: it must see the cut.
                assert_eq!(parsed.value(n - 1), Err(ParamError::Truncated), "cut {cut}");
            }
        }
    }

    /// Arbitrary bytes never panic (a small deterministic fuzz; cargo-fuzz
    /// can take the same entry point).
    #[test]
    fn hostile_bytes_never_panic() {
        let mut rng = crate::test_rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first = COM_STMT_EXECUTE;
            }
            if bytes.len() > 11 && next() % 2 == 0 {
                bytes[11] = (next() % 2) as u8;
            }
            let n = (next() % 20) as u16;
            let cache: Vec<u8> = (0..2 * n).map(|_| (next() % 3) as u8 * 0x7f).collect();
            if let Ok(parsed) = ExecuteParams::parse(&bytes, n, Some(&cache)) {
                let long = [next() as u8];
                let parsed = parsed.with_long_data(&long);
                for i in 0..=n {
                    let _ = parsed.value(i);
                }
            }
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        let all = [
            ParamError::NotExecute,
            ParamError::Truncated,
            ParamError::BadBoundFlag(2),
            ParamError::TypesUnknown,
            ParamError::UnsupportedFlag {
                index: 1,
                flag: 0x40,
            },
            ParamError::UnsupportedType {
                index: 0,
                type_code: INT24,
            },
            ParamError::BadLength { index: 3 },
            ParamError::NoSuchParam { index: 2, count: 1 },
            ParamError::NotAKeyType {
                index: 0,
                type_code: DOUBLE,
            },
            ParamError::LongData { index: 0 },
        ];
        for e in all {
            let msg = e.to_string();
            assert!(msg.contains(':') && !msg.contains('\n'), "{msg}");
        }
        assert!(ParamError::NotAKeyType {
            index: 0,
            type_code: DOUBLE
        }
        .to_string()
        .contains("DOUBLE"));
    }
}
