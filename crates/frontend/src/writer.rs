//! Encoding responses: OK, ERR and EOF packets, column definitions and text rows.

use std::borrow::Cow;

use mysql_common::constants::{CapabilityFlags, ColumnFlags, ColumnType, StatusFlags};
use mysql_common::packets::Column;
use mysql_common::value::Value;

use crate::io::PacketIo;
use crate::SqlError;

/// What an OK packet reports.
#[derive(Debug, Clone, Default)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    pub info: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Rows,
    Done,
    /// A row could not be encoded; its ERR packet ended the response and later rows are dropped.
    Failed,
}

/// Writes the one response to a command. Rows are queued and flushed in large writes.
pub struct ResultWriter<'a> {
    io: &'a mut PacketIo,
    caps: CapabilityFlags,
    status: StatusFlags,
    state: State,
    /// More results follow this one (multi-statements): SERVER_MORE_RESULTS_EXISTS on its end.
    more: bool,
    /// Rows go out in the binary protocol (COM_STMT_EXECUTE), encoded by these column types.
    binary: Option<Vec<(ColumnType, ColumnFlags)>>,
    /// In the text protocol, the decimals each column shows of a computed double (`STD(x)`
    /// of an integer shows 4), when some column has them.
    float_decimals: Option<Vec<Option<usize>>>,
}

impl<'a> ResultWriter<'a> {
    pub(crate) fn new(io: &'a mut PacketIo, caps: CapabilityFlags, status: StatusFlags) -> Self {
        ResultWriter {
            io,
            caps,
            status,
            state: State::Idle,
            more: false,
            binary: None,
            float_decimals: None,
        }
    }

    /// Answers a COM_STMT_EXECUTE: result rows in the binary protocol.
    pub(crate) fn set_binary(&mut self) {
        self.binary = Some(Vec::new());
    }

    /// Whether the client accepts several statements in one COM_QUERY.
    pub fn multi_statements(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS)
    }

    /// Marks whether another result follows the next one.
    pub fn set_more_results(&mut self, more: bool) {
        self.more = more;
    }

    /// The status flags for the end of a result: the session's, plus more-results.
    fn end_status(&self) -> StatusFlags {
        if self.more {
            self.status | StatusFlags::SERVER_MORE_RESULTS_EXISTS
        } else {
            self.status
        }
    }

    /// Whether a response (or its start) has been written.
    pub fn responded(&self) -> bool {
        self.state != State::Idle
    }

    /// Whether a result set has been started and not finished.
    pub fn in_rows(&self) -> bool {
        self.state == State::Rows
    }

    /// Status flags for the packets still to come (the handler may change them mid-command).
    pub fn set_status(&mut self, status: StatusFlags) {
        self.status = status;
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    /// Starts a result set: the column count, the column definitions, and (for clients without
    /// CLIENT_DEPRECATE_EOF) an EOF packet.
    pub async fn columns(&mut self, columns: &[Column]) -> std::io::Result<()> {
        self.io.scratch.clear();
        put_lenenc_int(&mut self.io.scratch, columns.len() as u64);
        self.io.write_scratch().await?;
        self.definitions(columns.iter()).await?;
        if let Some(types) = &mut self.binary {
            types.clear();
            types.extend(columns.iter().map(|c| (c.column_type(), c.flags())));
        } else {
            let fixed = |c: &Column| {
                (matches!(
                    c.column_type(),
                    ColumnType::MYSQL_TYPE_DOUBLE | ColumnType::MYSQL_TYPE_FLOAT
                ) && c.decimals() < 31)
                    .then_some(usize::from(c.decimals()))
            };
            self.float_decimals = columns
                .iter()
                .any(|c| fixed(c).is_some())
                .then(|| columns.iter().map(fixed).collect());
        }
        self.state = State::Rows;
        Ok(())
    }

    /// One row, in the text or the binary protocol.
    pub async fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
        if self.state == State::Failed {
            return Ok(());
        }
        self.io.scratch.clear();
        match &self.binary {
            None => match &self.float_decimals {
                None => crate::encode::text_row(&mut self.io.scratch, values),
                Some(decimals) => {
                    for (v, d) in values.iter().zip(decimals) {
                        match (v, d) {
                            (Value::Double(f), Some(d)) => put_lenenc_bytes(
                                &mut self.io.scratch,
                                format!("{f:.d$}").as_bytes(),
                            ),
                            _ => encode_text_value(&mut self.io.scratch, v),
                        }
                    }
                }
            },
            Some(types) => {
                if let Err(e) = crate::encode::binary_row(&mut self.io.scratch, types, values) {
                    self.error(&SqlError::new(1105, "HY000", e)).await?;
                    self.state = State::Failed;
                    return Ok(());
                }
            }
        }
        self.io.write_scratch().await
    }

    /// A row in the text protocol, as a shard sent it (the payload of its packet); `false`,
    /// with nothing written, when this result goes out in the binary protocol and the row must
    /// be decoded and given to [`ResultWriter::row`] instead.
    pub async fn text_row(&mut self, payload: &[u8]) -> std::io::Result<bool> {
        self.relay_row(payload, false).await
    }

    /// Whether rows go out in the binary protocol (the answer to a COM_STMT_EXECUTE).
    pub fn is_binary(&self) -> bool {
        self.binary.is_some()
    }

    /// A row in the binary protocol, as a shard sent it for the same columns; `false`, with
    /// nothing written, when this result goes out in the text protocol.
    pub async fn binary_row(&mut self, payload: &[u8]) -> std::io::Result<bool> {
        self.relay_row(payload, true).await
    }

    /// A shard's row payload, written as it is when this result's protocol is the row's.
    async fn relay_row(&mut self, payload: &[u8], binary: bool) -> std::io::Result<bool> {
        if self.binary.is_some() != binary {
            return Ok(false);
        }
        if self.state != State::Failed {
            self.io.write_packet(payload).await?;
        }
        Ok(true)
    }

    /// Ends a result set.
    pub async fn finish_rows(&mut self, warnings: u16) -> std::io::Result<()> {
        if self.state == State::Failed {
            return Ok(());
        }
        self.io.scratch.clear();
        let status = self.end_status();
        if self.deprecate_eof() {
            encode_ok(
                &mut self.io.scratch,
                0xfe,
                &OkInfo {
                    warnings,
                    ..Default::default()
                },
                status,
            );
        } else {
            encode_eof(&mut self.io.scratch, warnings, status);
        }
        self.state = State::Done;
        self.io.write_scratch().await
    }

    pub async fn ok(&mut self, info: &OkInfo) -> std::io::Result<()> {
        self.io.scratch.clear();
        let status = self.end_status();
        encode_ok(&mut self.io.scratch, 0x00, info, status);
        self.state = State::Done;
        self.io.write_scratch().await
    }

    /// The reply to COM_STMT_PREPARE: statement id and counts, then the parameter and the result
    /// column definitions (each list closed by EOF unless CLIENT_DEPRECATE_EOF).
    pub(crate) async fn prepared(
        &mut self,
        id: u32,
        params: u16,
        columns: &[Column],
    ) -> std::io::Result<()> {
        self.io.scratch.clear();
        self.io.scratch.push(0x00);
        self.io.scratch.extend_from_slice(&id.to_le_bytes());
        self.io
            .scratch
            .extend_from_slice(&(columns.len() as u16).to_le_bytes());
        self.io.scratch.extend_from_slice(&params.to_le_bytes());
        self.io.scratch.extend_from_slice(&[0, 0, 0]);
        self.io.write_scratch().await?;
        // Parameters are described alike: their types are the client's to choose.
        let param = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
            .with_name(b"?")
            .with_character_set(63);
        if params > 0 {
            self.definitions(std::iter::repeat_n(&param, usize::from(params)))
                .await?;
        }
        if !columns.is_empty() {
            self.definitions(columns.iter()).await?;
        }
        self.state = State::Done;
        Ok(())
    }

    /// Column definitions, then (for clients without CLIENT_DEPRECATE_EOF) an EOF packet.
    async fn definitions(&mut self, columns: impl Iterator<Item = &Column>) -> std::io::Result<()> {
        for column in columns {
            self.io.scratch.clear();
            encode_column(&mut self.io.scratch, column);
            self.io.write_scratch().await?;
        }
        if !self.deprecate_eof() {
            self.io.scratch.clear();
            encode_eof(&mut self.io.scratch, 0, self.status);
            self.io.write_scratch().await?;
        }
        Ok(())
    }

    /// A packet with this payload and nothing else (COM_STATISTICS).
    pub async fn raw(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.state = State::Done;
        self.io.write_packet(payload).await
    }

    /// A lone EOF packet (COM_SET_OPTION).
    pub async fn eof(&mut self) -> std::io::Result<()> {
        self.io.scratch.clear();
        encode_eof(&mut self.io.scratch, 0, self.status);
        self.state = State::Done;
        self.io.write_scratch().await
    }

    /// The reply to COM_FIELD_LIST: each column definition with an empty default value, then EOF
    /// (an OK-style EOF under CLIENT_DEPRECATE_EOF).
    pub async fn field_list(&mut self, columns: &[Column]) -> std::io::Result<()> {
        for column in columns {
            self.io.scratch.clear();
            encode_column(&mut self.io.scratch, column);
            self.io.scratch.push(0xfb);
            self.io.write_scratch().await?;
        }
        self.state = State::Rows;
        self.finish_rows(0).await
    }

    /// An ERR packet; valid as the whole response or in place of the next row.
    pub async fn error(&mut self, err: &SqlError) -> std::io::Result<()> {
        self.io.scratch.clear();
        encode_err(&mut self.io.scratch, err);
        self.state = State::Done;
        self.io.write_scratch().await
    }
}

pub(crate) fn put_lenenc_int(buf: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => buf.push(v as u8),
        251..=0xffff => {
            buf.push(0xfc);
            buf.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            buf.push(0xfd);
            buf.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            buf.push(0xfe);
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn put_lenenc_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_lenenc_int(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// OK packet (`header` 0x00, or 0xfe when it ends a result set under CLIENT_DEPRECATE_EOF). The
/// info string is length-encoded: libmariadb and libmysql read it so.
pub(crate) fn encode_ok(buf: &mut Vec<u8>, header: u8, info: &OkInfo, status: StatusFlags) {
    buf.push(header);
    put_lenenc_int(buf, info.affected_rows);
    put_lenenc_int(buf, info.last_insert_id);
    buf.extend_from_slice(&status.bits().to_le_bytes());
    buf.extend_from_slice(&info.warnings.to_le_bytes());
    if !info.info.is_empty() {
        put_lenenc_bytes(buf, info.info.as_bytes());
    }
}

fn encode_eof(buf: &mut Vec<u8>, warnings: u16, status: StatusFlags) {
    buf.push(0xfe);
    buf.extend_from_slice(&warnings.to_le_bytes());
    buf.extend_from_slice(&status.bits().to_le_bytes());
}

pub(crate) fn encode_err(buf: &mut Vec<u8>, err: &SqlError) {
    buf.push(0xff);
    buf.extend_from_slice(&err.code.to_le_bytes());
    buf.push(b'#');
    buf.extend_from_slice(&err.state);
    buf.extend_from_slice(err.message.as_bytes());
}

/// Column definition (protocol 4.1). Written from the getters: mysql_common's own serializer puts
/// the length before the character set.
pub(crate) fn encode_column(buf: &mut Vec<u8>, c: &Column) {
    put_lenenc_bytes(buf, b"def");
    put_lenenc_bytes(buf, c.schema_ref());
    put_lenenc_bytes(buf, c.table_ref());
    put_lenenc_bytes(buf, c.org_table_ref());
    put_lenenc_bytes(buf, c.name_ref());
    put_lenenc_bytes(buf, c.org_name_ref());
    buf.push(0x0c);
    buf.extend_from_slice(&c.character_set().to_le_bytes());
    buf.extend_from_slice(&c.column_length().to_le_bytes());
    buf.push(c.column_type() as u8);
    buf.extend_from_slice(&c.flags().bits().to_le_bytes());
    buf.push(c.decimals());
    buf.extend_from_slice(&[0, 0]);
}

/// A value as the text protocol carries it: NULL as 0xfb, everything else as a length-encoded
/// string of its MySQL text form.
pub(crate) fn encode_text_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::NULL => buf.push(0xfb),
        other => put_lenenc_bytes(buf, &value_text(other)),
    }
}

/// The MySQL text form of a non-NULL value (empty for NULL).
pub(crate) fn value_text(v: &Value) -> Cow<'_, [u8]> {
    let owned = |s: String| Cow::Owned(s.into_bytes());
    match v {
        Value::NULL => Cow::Borrowed(&[]),
        Value::Bytes(b) => Cow::Borrowed(b),
        Value::Int(i) => owned(i.to_string()),
        Value::UInt(u) => owned(u.to_string()),
        Value::Float(f) => owned(f.to_string()),
        Value::Double(d) => owned(d.to_string()),
        Value::Date(y, mo, d, h, mi, s, us) => owned(if *us > 0 {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        } else {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        }),
        Value::Time(neg, days, h, mi, s, us) => {
            let sign = if *neg { "-" } else { "" };
            let hours = u64::from(*days) * 24 + u64::from(*h);
            owned(if *us > 0 {
                format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{sign}{hours:02}:{mi:02}:{s:02}")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::{ColumnFlags, ColumnType};

    #[test]
    fn column_definition_bytes() {
        let c = Column::new(ColumnType::MYSQL_TYPE_LONG)
            .with_schema(b"s")
            .with_table(b"t")
            .with_org_table(b"ot")
            .with_name(b"n")
            .with_org_name(b"on")
            .with_character_set(63)
            .with_column_length(11)
            .with_flags(ColumnFlags::NOT_NULL_FLAG)
            .with_decimals(0);
        let mut buf = Vec::new();
        encode_column(&mut buf, &c);
        let want: &[u8] = &[
            3, b'd', b'e', b'f', 1, b's', 1, b't', 2, b'o', b't', 1, b'n', 2, b'o', b'n', 0x0c, 63,
            0, 11, 0, 0, 0, 3, 1, 0, 0, 0, 0,
        ];
        assert_eq!(buf, want);
    }

    #[test]
    fn ok_packet_bytes() {
        let mut buf = Vec::new();
        let info = OkInfo {
            affected_rows: 300,
            last_insert_id: 5,
            warnings: 1,
            info: "Records: 2".into(),
        };
        encode_ok(&mut buf, 0, &info, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        let mut want = vec![0, 0xfc, 0x2c, 0x01, 5, 2, 0, 1, 0, 10];
        want.extend_from_slice(b"Records: 2");
        assert_eq!(buf, want);
    }

    #[test]
    fn err_packet_bytes() {
        let mut buf = Vec::new();
        encode_err(&mut buf, &SqlError::new(1064, "42000", "bad"));
        assert_eq!(
            buf,
            [0xff, 0x28, 0x04, b'#', b'4', b'2', b'0', b'0', b'0', b'b', b'a', b'd']
        );
    }

    #[test]
    fn lenenc_boundaries() {
        for (v, len) in [
            (250u64, 1),
            (251, 3),
            (0xffff, 3),
            (0x10000, 4),
            (0xff_ffff, 4),
            (0x100_0000, 9),
        ] {
            let mut buf = Vec::new();
            put_lenenc_int(&mut buf, v);
            assert_eq!(buf.len(), len, "{v}");
        }
    }

    #[test]
    fn text_values() {
        let mut buf = Vec::new();
        encode_text_value(&mut buf, &Value::NULL);
        encode_text_value(&mut buf, &Value::Int(-12));
        encode_text_value(&mut buf, &Value::Date(2024, 1, 2, 3, 4, 5, 0));
        encode_text_value(&mut buf, &Value::Time(true, 1, 2, 3, 4, 500));
        let mut want = vec![0xfb, 3, b'-', b'1', b'2', 19];
        want.extend_from_slice(b"2024-01-02 03:04:05");
        want.push(16);
        want.extend_from_slice(b"-26:03:04.000500");
        assert_eq!(buf, want);
    }
}
