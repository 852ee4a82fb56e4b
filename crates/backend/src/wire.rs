//! Our own connection to a shard, on mysql_common's packets.
//!
//! mysql_async decodes every row into a `Row` of owned values, through boxed futures, before the
//! proxy sees it. Here a row is the payload of a packet read into the connection's buffer: the
//! caller decodes it or hands the bytes on to its client as they are, and the buffer is reused
//! from packet to packet, so a streamed result costs no allocation per row.
//!
//! The handshake speaks mysql_native_password and caching_sha2_password (its full
//! authentication with the password sent over TLS, or RSA-encrypted with the server's key
//! otherwise), with TLS when the shard's `backend_tls` asks for it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use mysql_common::constants::{CapabilityFlags, ColumnType, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::misc::raw::int::{LenEnc, RawInt};
use mysql_common::packets::{
    AuthMoreData, AuthPlugin, AuthSwitchRequest, Column, CommonOkPacket, ErrPacket,
    HandshakePacket, HandshakeResponse, OkPacket, OkPacketDeserializer, OkPacketKind,
    ResultSetTerminator, SslRequest, StmtPacket,
};
use mysql_common::proto::MySerialize;
use mysql_common::value::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Payloads this long continue in the next packet.
const MAX_CHUNK: usize = 0xff_ffff;
/// What we tell the server we accept (MariaDB's and MySQL's own maximum).
const MAX_PACKET: u32 = 1 << 30;
const COLLATION_UTF8MB4_GENERAL_CI: u8 = 45;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_PING: u8 = 0x0e;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_RESET_CONNECTION: u8 = 0x1f;
/// ER_UNKNOWN_STMT_HANDLER: the server no longer has a statement we prepared.
const UNKNOWN_STMT_HANDLER: u16 = 1243;
/// Statements kept prepared per connection. Each one holds memory on the server, which caps
/// them all together (max_prepared_stmt_count, 16382 by default).
const MAX_STATEMENTS: usize = 64;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct ConnOpts {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    /// TLS, when the keyspace's `backend_tls` asks for it; an error when its CA could not be
    /// read (every connection attempt then fails with it).
    pub tls: Result<Option<Arc<rustls::ClientConfig>>, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// An ERR packet: the statement failed, the connection is fine.
    #[error("ERROR {code} ({state}): {message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

fn protocol(what: impl std::fmt::Display) -> WireError {
    WireError::Protocol(what.to_string())
}

/// What a statement's OK (or end of rows) reported.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    pub info: String,
}

/// The first answer to a statement.
pub enum Response {
    /// No result set.
    Done,
    /// A result set with these columns; its rows follow ([`Conn::next_row`]).
    Rows(Arc<[Column]>),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only while TLS starts.
    Closed,
}

fn closed() -> std::io::Error {
    std::io::ErrorKind::NotConnected.into()
}

impl Stream {
    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Closed => Err(closed()),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Closed => Err(closed()),
        }
    }
}

/// Where the packet just read lies.
#[derive(Clone, Copy)]
enum Packet {
    /// `len` bytes after a 4-byte header at the start of the read buffer.
    InBuffer(usize),
    /// Joined from several chunks.
    Joined,
}

pub struct Conn {
    stream: Stream,
    read_buf: BytesMut,
    /// Bytes at the start of `read_buf` that the last packet returned still occupies.
    consumed: usize,
    /// A packet of several chunks, joined.
    joined: Vec<u8>,
    write_buf: Vec<u8>,
    seq: u8,
    caps: CapabilityFlags,
    id: u32,
    version: (u16, u16, u16),
    /// The status of the last statement that ended well; `None` after one that failed or did
    /// not finish (its transaction state is unknown).
    status: Option<StatusFlags>,
    summary: Summary,
    /// Whether a result's rows are being read.
    in_rows: bool,
    /// The column definitions of the result being read (see [`Conn::response`]).
    definitions: Vec<u8>,
    /// The last result set's definitions and their columns, parsed.
    last_columns: Option<(Vec<u8>, Arc<[Column]>)>,
    /// Statements prepared on this connection, by their text.
    statements: HashMap<Box<str>, Statement>,
    /// The body of the last COM_STMT_EXECUTE, reused.
    execute_body: Vec<u8>,
    /// Statements without rows (a transaction's start, a savepoint) held back to go in front of
    /// the next text statement, in one multi-statement COM_QUERY: one round trip instead of
    /// two. Each is followed by `\n;` so that a trailing `-- comment` cannot swallow the rest.
    deferred: String,
    /// How many statements `deferred` holds.
    deferred_count: usize,
    broken: bool,
}

/// A statement the server holds prepared for this connection.
#[derive(Clone, Copy)]
struct Statement {
    id: u32,
    params: u16,
}

impl Conn {
    pub async fn connect(opts: &ConnOpts) -> Result<Conn, WireError> {
        let tls = opts.tls.clone().map_err(WireError::Protocol)?;
        let tcp = TcpStream::connect((opts.host.as_str(), opts.port)).await?;
        tcp.set_nodelay(true)?;
        let mut conn = Conn {
            stream: Stream::Plain(tcp),
            read_buf: BytesMut::with_capacity(16 * 1024),
            consumed: 0,
            joined: Vec::new(),
            write_buf: Vec::with_capacity(1024),
            seq: 0,
            caps: CapabilityFlags::empty(),
            id: 0,
            version: (0, 0, 0),
            status: None,
            summary: Summary::default(),
            in_rows: false,
            definitions: Vec::new(),
            last_columns: None,
            statements: HashMap::new(),
            execute_body: Vec::new(),
            deferred: String::new(),
            deferred_count: 0,
            broken: false,
        };
        conn.handshake(opts, tls).await?;
        Ok(conn)
    }

    async fn handshake(
        &mut self,
        opts: &ConnOpts,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<(), WireError> {
        let at = self.next_packet().await?;
        if self.payload(at).first() == Some(&0xff) {
            return Err(self.server_error(at));
        }
        let hello: HandshakePacket = ParseBuf(self.payload(at)).parse(())?;
        let hello = hello.into_owned();
        self.id = hello.connection_id();
        self.version = hello
            .maria_db_server_version_parsed()
            .or_else(|| hello.server_version_parsed())
            .unwrap_or_default();
        let wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_STATEMENTS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        let server = hello.capabilities();
        if !server.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            return Err(protocol("the server does not speak protocol 4.1"));
        }
        let mut caps = wanted & server;
        if let Some(config) = tls {
            if !server.contains(CapabilityFlags::CLIENT_SSL) {
                return Err(protocol("TLS is required but the server does not offer it"));
            }
            caps |= CapabilityFlags::CLIENT_SSL;
            let mut request = Vec::new();
            SslRequest::new(caps, MAX_PACKET, COLLATION_UTF8MB4_GENERAL_CI).serialize(&mut request);
            self.send(&request).await?;
            let name = rustls::pki_types::ServerName::try_from(opts.host.clone())
                .map_err(|e| protocol(format!("TLS server name {}: {e}", opts.host)))?;
            let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
                return Err(protocol("[BUG] TLS started twice"));
            };
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            self.stream = Stream::Tls(Box::new(tls));
        }
        self.caps = caps;
        let nonce = hello.nonce();
        let plugin = hello
            .auth_plugin()
            .unwrap_or(AuthPlugin::MysqlNativePassword)
            .into_owned();
        let password = (!opts.password.is_empty()).then_some(opts.password.as_str());
        let data = plugin
            .gen_data(password, &nonce)
            .map(|d| {
                let mut out = Vec::new();
                d.serialize(&mut out);
                out
            })
            .unwrap_or_default();
        let mut response = Vec::new();
        HandshakeResponse::new(
            Some(data),
            self.version,
            Some(opts.user.as_bytes()),
            Some(opts.database.as_bytes()),
            Some(plugin.clone()),
            caps,
            None,
            MAX_PACKET,
        )
        .serialize(&mut response);
        self.send(&response).await?;
        self.authenticate(opts, plugin, nonce).await
    }

    /// The rest of the login: the server may switch plugins or, for caching_sha2_password, ask
    /// for the full authentication.
    async fn authenticate(
        &mut self,
        opts: &ConnOpts,
        mut plugin: AuthPlugin<'static>,
        mut nonce: Vec<u8>,
    ) -> Result<(), WireError> {
        let password = (!opts.password.is_empty()).then_some(opts.password.as_str());
        loop {
            let at = self.next_packet().await?;
            let payload = self.payload(at);
            match payload.first() {
                Some(0x00) => {
                    self.read_ok(at)?;
                    return Ok(());
                }
                Some(0xff) => return Err(self.server_error(at)),
                Some(0xfe) => {
                    let switch: AuthSwitchRequest = ParseBuf(payload).parse(())?;
                    plugin = switch.auth_plugin().clone().into_owned();
                    nonce = switch.plugin_data().to_vec();
                    // The nonce ends in a NUL that is not part of it.
                    if nonce.last() == Some(&0) {
                        nonce.pop();
                    }
                    let mut data = Vec::new();
                    if let Some(d) = plugin.gen_data(password, &nonce) {
                        d.serialize(&mut data);
                    }
                    self.send(&data).await?;
                }
                Some(0x01) => {
                    let more: AuthMoreData = ParseBuf(payload).parse(())?;
                    let more = more.data().to_vec();
                    if plugin != AuthPlugin::CachingSha2Password {
                        return Err(protocol(format!(
                            "unexpected authentication data for {plugin:?}"
                        )));
                    }
                    match more.first() {
                        // Fast authentication succeeded; the OK follows.
                        Some(0x03) => {}
                        // Full authentication.
                        Some(0x04) => {
                            let mut clear = opts.password.as_bytes().to_vec();
                            clear.push(0);
                            if matches!(self.stream, Stream::Tls(_)) {
                                self.send(&clear).await?;
                            } else {
                                // Ask for the server's public key.
                                self.send(&[0x02]).await?;
                            }
                        }
                        // The public key asked for: the password, XORed with the nonce,
                        // encrypted with it.
                        Some(_) => {
                            let mut clear = opts.password.as_bytes().to_vec();
                            clear.push(0);
                            for (i, b) in clear.iter_mut().enumerate() {
                                *b ^= nonce[i % nonce.len().max(1)];
                            }
                            let encrypted = mysql_common::crypto::encrypt(&clear, &more);
                            self.send(&encrypted).await?;
                        }
                        None => return Err(protocol("empty authentication data")),
                    }
                }
                _ => return Err(protocol("unexpected packet during authentication")),
            }
        }
    }

    /// The server's thread id for this connection (what KILL takes).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn server_version(&self) -> (u16, u16, u16) {
        self.version
    }

    /// Whether the connection broke (a read or write failed, or a packet made no sense).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether a transaction is open: `None` when the last statement failed or did not finish.
    pub fn in_transaction(&self) -> Option<bool> {
        self.status
            .map(|s| s.contains(StatusFlags::SERVER_STATUS_IN_TRANS))
    }

    /// What the last statement reported at its end.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Sends COM_QUERY and reads up to the start of its rows. Statements deferred before it go
    /// first in the same COM_QUERY.
    pub async fn query(&mut self, sql: &str) -> Result<Response, WireError> {
        if self.deferred_count == 0 {
            self.command(COM_QUERY, sql.as_bytes()).await?;
            return self.response().await;
        }
        let count = std::mem::take(&mut self.deferred_count);
        let mut body = std::mem::take(&mut self.deferred);
        body.push_str(sql);
        let sent = self.command(COM_QUERY, body.as_bytes()).await;
        body.clear();
        self.deferred = body;
        sent?;
        self.deferred_responses(count).await?;
        self.response().await
    }

    /// Holds `sql`, a statement that returns no rows, until the next statement: the next text
    /// statement carries it in front of its own text; any other command sends it alone first.
    /// Should it fail, the statements behind it do not run (the server stops a multi-statement
    /// at its first error), its error is the next statement's, and the connection is unusable
    /// afterwards: whatever depended on it (a transaction's start) did not happen.
    pub fn defer(&mut self, sql: &str) {
        self.deferred.push_str(sql);
        self.deferred.push_str("\n;");
        self.deferred_count += 1;
    }

    /// Forgets the deferred statements: nothing of them reached the server.
    pub fn discard_deferred(&mut self) {
        self.deferred.clear();
        self.deferred_count = 0;
    }

    /// Sends the deferred statements on their own.
    async fn flush_deferred(&mut self) -> Result<(), WireError> {
        if self.deferred_count == 0 {
            return Ok(());
        }
        let count = std::mem::take(&mut self.deferred_count);
        // The last one's separator would make an empty statement.
        self.deferred.pop();
        let mut body = std::mem::take(&mut self.deferred);
        let sent = self.command(COM_QUERY, body.as_bytes()).await;
        body.clear();
        self.deferred = body;
        sent?;
        self.deferred_responses(count).await
    }

    /// Reads the deferred statements' responses: an OK each.
    async fn deferred_responses(&mut self, count: usize) -> Result<(), WireError> {
        for _ in 0..count {
            match self.response().await {
                Ok(Response::Done) => {}
                Ok(Response::Rows(_)) => return Err(self.fail("a deferred statement gave rows")),
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Runs `sql` and drops any rows.
    pub async fn query_drop(&mut self, sql: &str) -> Result<(), WireError> {
        self.query(sql).await?;
        self.finish().await
    }

    /// Runs `sql` and returns its rows, decoded.
    pub async fn query_rows(&mut self, sql: &str) -> Result<Vec<Vec<Value>>, WireError> {
        let mut rows = Vec::new();
        if let Response::Rows(columns) = self.query(sql).await? {
            while let Some(row) = self.next_row().await? {
                let row = engine::decode_text_row(row, columns.len());
                rows.push(row.map_err(protocol)?);
            }
        }
        self.finish().await?;
        Ok(rows)
    }

    /// Runs `sql` and returns its first row as (column name, value) pairs, decoded; `None`
    /// when it has no rows.
    pub async fn query_first_named(
        &mut self,
        sql: &str,
    ) -> Result<Option<Vec<(String, Value)>>, WireError> {
        let mut first = None;
        if let Response::Rows(columns) = self.query(sql).await? {
            if let Some(row) = self.next_row().await? {
                let row = engine::decode_text_row(row, columns.len()).map_err(protocol)?;
                let names = columns.iter().map(|c| c.name_str().into_owned());
                first = Some(names.zip(row).collect());
            }
        }
        self.finish().await?;
        Ok(first)
    }

    /// Reads what follows a statement's first result (a procedure's status) and drops it.
    pub async fn finish(&mut self) -> Result<(), WireError> {
        while self.in_rows {
            self.next_row().await?;
        }
        while self
            .status
            .is_some_and(|s| s.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS))
        {
            self.response().await?;
            while self.in_rows {
                self.next_row().await?;
            }
        }
        Ok(())
    }

    /// The next row of the result being read, as the payload of its packet (text protocol:
    /// length-encoded strings, 0xfb for NULL); `None` after the last.
    pub async fn next_row(&mut self) -> Result<Option<&[u8]>, WireError> {
        if !self.in_rows {
            return Ok(None);
        }
        let at = self.next_packet().await?;
        let payload = self.payload(at);
        match payload.first() {
            // An OK with the 0xfe header ends the rows; a row can start with 0xfe only when
            // its first value is 16 MiB or longer, which makes the packet that long.
            Some(0xfe) if payload.len() < MAX_CHUNK => {
                self.in_rows = false;
                self.read_end_of_rows(at)?;
                Ok(None)
            }
            Some(0xff) => {
                self.in_rows = false;
                Err(self.server_error(at))
            }
            _ => Ok(Some(self.payload(at))),
        }
    }

    /// The result columns of `sql` as COM_STMT_PREPARE reports them, without running it.
    pub async fn describe(&mut self, sql: &str) -> Result<Vec<Column>, WireError> {
        self.flush_deferred().await?;
        let mut columns = Vec::new();
        let statement = self.prepare(sql, Some(&mut columns)).await?;
        self.command(COM_STMT_CLOSE, &statement.id.to_le_bytes())
            .await?;
        Ok(columns)
    }

    /// Runs `sql` as a prepared statement with these parameters (each sent as its type, the
    /// value in the binary protocol), preparing it on first use on this connection. Its rows
    /// are in the binary protocol. `None`, with nothing run, when the server would not prepare
    /// it (a statement kind it does not prepare, or its limit of prepared statements), or
    /// prepared it with another number of parameters: the caller runs its text instead.
    pub async fn execute(
        &mut self,
        sql: &str,
        params: &[(Value, ColumnType)],
    ) -> Result<Option<Response>, WireError> {
        if self.deferred_count > 0 {
            match self.statements.get(sql).copied() {
                Some(statement) if is_select(sql) => {
                    match self.execute_behind_deferred(statement, params).await {
                        Err(WireError::Server { code, .. }) if code == UNKNOWN_STMT_HANDLER => {
                            self.statements.remove(sql);
                        }
                        response => return response.map(Some),
                    }
                }
                _ => self.flush_deferred().await?,
            }
        }
        let mut retried = false;
        loop {
            let statement = match self.statements.get(sql) {
                Some(s) => *s,
                None => {
                    if self.statements.len() >= MAX_STATEMENTS {
                        self.close_one().await?;
                    }
                    let statement = match self.prepare(sql, None).await {
                        Ok(s) => s,
                        Err(WireError::Server { .. }) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    if usize::from(statement.params) != params.len() {
                        self.command(COM_STMT_CLOSE, &statement.id.to_le_bytes())
                            .await?;
                        return Ok(None);
                    }
                    self.statements.insert(sql.into(), statement);
                    statement
                }
            };
            let mut body = std::mem::take(&mut self.execute_body);
            execute_body(&mut body, statement.id, params);
            let sent = self.command(COM_STMT_EXECUTE, &body).await;
            self.execute_body = body;
            sent?;
            match self.response().await {
                // Prepared again once, should the server have lost it.
                Err(WireError::Server { code, .. }) if code == UNKNOWN_STMT_HANDLER && !retried => {
                    self.statements.remove(sql);
                    retried = true;
                }
                response => return response.map(Some),
            }
        }
    }

    /// Sends the deferred statements and the execution of `statement` in one write, and reads
    /// their answers in turn: one round trip where there were two (a transaction's start
    /// before a prepared read). Only for reads: should a deferred statement fail, the server
    /// still runs the execution behind it, outside what the deferred statements began; its
    /// answer is not read (the connection is closed), and a read outside them changed nothing.
    async fn execute_behind_deferred(
        &mut self,
        statement: Statement,
        params: &[(Value, ColumnType)],
    ) -> Result<Response, WireError> {
        let count = std::mem::take(&mut self.deferred_count);
        // The last one's separator would make an empty statement.
        self.deferred.pop();
        let deferred = std::mem::take(&mut self.deferred);
        let mut body = std::mem::take(&mut self.execute_body);
        execute_body(&mut body, statement.id, params);
        self.write_buf.clear();
        let queued = self.queue(COM_QUERY, deferred.as_bytes()).map(|_| self.seq);
        let queued = queued.and_then(|query_seq| {
            self.queue(COM_STMT_EXECUTE, &body)?;
            Ok((query_seq, self.seq))
        });
        self.deferred = deferred;
        self.deferred.clear();
        self.execute_body = body;
        let (query_seq, execute_seq) = queued?;
        self.flush().await?;
        // Each answer's packets are numbered on from its own command's last.
        self.seq = query_seq;
        self.deferred_responses(count).await?;
        self.seq = execute_seq;
        self.status = None;
        self.response().await
    }

    /// Closes one of the statements kept prepared, to make room.
    async fn close_one(&mut self) -> Result<(), WireError> {
        let Some(sql) = self.statements.keys().next().cloned() else {
            return Ok(());
        };
        if let Some(statement) = self.statements.remove(&sql) {
            self.command(COM_STMT_CLOSE, &statement.id.to_le_bytes())
                .await?;
        }
        Ok(())
    }

    /// COM_STMT_PREPARE: the statement's id and parameter count, and its result columns when
    /// asked for.
    async fn prepare(
        &mut self,
        sql: &str,
        mut columns: Option<&mut Vec<Column>>,
    ) -> Result<Statement, WireError> {
        self.command(COM_STMT_PREPARE, sql.as_bytes()).await?;
        let at = self.next_packet().await?;
        let payload = self.payload(at);
        match payload.first() {
            Some(0x00) => {}
            Some(0xff) => return Err(self.server_error(at)),
            _ => return Err(self.fail("a malformed COM_STMT_PREPARE response")),
        }
        let stmt: StmtPacket = ParseBuf(payload).parse(()).map_err(|e| self.fail(e))?;
        let (id, params, count) = (stmt.statement_id(), stmt.num_params(), stmt.num_columns());
        for _ in 0..params {
            self.next_packet().await?;
        }
        if params > 0 && !self.deprecate_eof() {
            self.next_packet().await?;
        }
        for _ in 0..count {
            let at = self.next_packet().await?;
            if let Some(columns) = columns.as_deref_mut() {
                columns.push(self.column(at)?);
            }
        }
        if count > 0 && !self.deprecate_eof() {
            self.next_packet().await?;
        }
        Ok(Statement { id, params })
    }

    pub async fn ping(&mut self) -> Result<(), WireError> {
        self.flush_deferred().await?;
        self.command(COM_PING, &[]).await?;
        self.expect_ok().await
    }

    /// COM_RESET_CONNECTION: the session's variables, temporary tables, named and table locks
    /// and prepared statements are dropped, and an open transaction rolled back.
    pub async fn reset(&mut self) -> Result<(), WireError> {
        self.statements.clear();
        self.discard_deferred();
        self.command(COM_RESET_CONNECTION, &[]).await?;
        self.expect_ok().await
    }

    /// Says goodbye and closes the socket.
    pub async fn quit(mut self) {
        let _ = self.command(COM_QUIT, &[]).await;
    }

    async fn expect_ok(&mut self) -> Result<(), WireError> {
        let at = self.next_packet().await?;
        match self.payload(at).first() {
            Some(0x00) => self.read_ok(at),
            Some(0xff) => Err(self.server_error(at)),
            _ => Err(self.fail("expected an OK packet")),
        }
    }

    /// The first packets of a result: an OK, an ERR, or a column count and the definitions.
    async fn response(&mut self) -> Result<Response, WireError> {
        let at = self.next_packet().await?;
        let payload = self.payload(at);
        match payload.first() {
            Some(0x00) => {
                self.read_ok(at)?;
                Ok(Response::Done)
            }
            Some(0xff) => Err(self.server_error(at)),
            Some(0xfb) => {
                // LOAD DATA LOCAL INFILE: the proxy has no file to send. An empty packet ends
                // the transfer and the server answers it.
                self.send(&[]).await?;
                let at = self.next_packet().await?;
                match self.payload(at).first() {
                    Some(0xff) => Err(self.server_error(at)),
                    _ => {
                        self.read_ok(at)?;
                        Ok(Response::Done)
                    }
                }
            }
            _ => {
                let count = ParseBuf(payload).parse::<RawInt<LenEnc>>(());
                let count = count.map_err(|e| self.fail(e))?.0 as usize;
                // The definitions, each behind its length, compared with the last result's:
                // a connection mostly runs a few shapes of statement, and a match costs no
                // parsing and no allocation.
                self.definitions.clear();
                for _ in 0..count {
                    let at = self.next_packet().await?;
                    let payload = match at {
                        Packet::InBuffer(len) => &self.read_buf[4..4 + len],
                        Packet::Joined => &self.joined[..],
                    };
                    self.definitions
                        .extend_from_slice(&(payload.len() as u32).to_le_bytes());
                    self.definitions.extend_from_slice(payload);
                }
                if !self.deprecate_eof() {
                    self.next_packet().await?;
                }
                let columns = match &self.last_columns {
                    Some((bytes, columns)) if *bytes == self.definitions => columns.clone(),
                    _ => {
                        let columns = parse_definitions(&self.definitions, count);
                        let columns: Arc<[Column]> = columns.map_err(|e| self.fail(e))?.into();
                        self.last_columns = Some((self.definitions.clone(), columns.clone()));
                        columns
                    }
                };
                self.in_rows = true;
                Ok(Response::Rows(columns))
            }
        }
    }

    fn column(&mut self, at: Packet) -> Result<Column, WireError> {
        let column = ParseBuf(self.payload(at)).parse::<Column>(());
        column.map_err(|e| self.fail(e))
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    fn read_ok(&mut self, at: Packet) -> Result<(), WireError> {
        let ok = parse_ok::<CommonOkPacket>(self.payload(at), self.caps);
        let (summary, status) = ok.map_err(|e| self.fail(e))?;
        self.summary = summary;
        self.status = Some(status);
        Ok(())
    }

    /// The end of a result's rows: an OK with the 0xfe header, or the old EOF.
    fn read_end_of_rows(&mut self, at: Packet) -> Result<(), WireError> {
        let payload = self.payload(at);
        let end = if self.deprecate_eof() {
            parse_ok::<ResultSetTerminator>(payload, self.caps)
        } else {
            parse_eof(payload)
        };
        let (summary, status) = end.map_err(|e| self.fail(e))?;
        self.summary = summary;
        self.status = Some(status);
        Ok(())
    }

    fn server_error(&mut self, at: Packet) -> WireError {
        let error = parse_err(self.payload(at), self.caps);
        if !matches!(error, WireError::Server { .. }) {
            self.broken = true;
        }
        error
    }

    fn fail(&mut self, what: impl std::fmt::Display) -> WireError {
        self.broken = true;
        protocol(what)
    }

    /// Starts a command: a new packet sequence.
    async fn command(&mut self, command: u8, body: &[u8]) -> Result<(), WireError> {
        self.write_buf.clear();
        self.queue(command, body)?;
        self.flush().await
    }

    /// Adds a command to what the next flush writes (a new packet sequence).
    fn queue(&mut self, command: u8, body: &[u8]) -> Result<(), WireError> {
        if self.in_rows {
            return Err(protocol(
                "[BUG] a command was sent before the last result was read",
            ));
        }
        if self.broken {
            return Err(protocol("the connection failed earlier"));
        }
        self.seq = 0;
        self.status = None;
        let len = body.len() + 1;
        // Long statements continue in further packets of 16 MiB.
        let mut rest = body;
        let first = len.min(MAX_CHUNK);
        self.frame(first);
        self.write_buf.push(command);
        self.write_buf.extend_from_slice(&rest[..first - 1]);
        rest = &rest[first - 1..];
        let mut last = first;
        while last == MAX_CHUNK {
            last = rest.len().min(MAX_CHUNK);
            self.frame(last);
            self.write_buf.extend_from_slice(&rest[..last]);
            rest = &rest[last..];
        }
        Ok(())
    }

    /// One packet of the current sequence (handshake and authentication replies).
    async fn send(&mut self, payload: &[u8]) -> Result<(), WireError> {
        self.write_buf.clear();
        self.frame(payload.len());
        self.write_buf.extend_from_slice(payload);
        self.flush().await
    }

    fn frame(&mut self, len: usize) {
        self.write_buf
            .extend_from_slice(&(len as u32).to_le_bytes()[..3]);
        self.write_buf.push(self.seq);
        self.seq = self.seq.wrapping_add(1);
    }

    async fn flush(&mut self) -> Result<(), WireError> {
        let result = self.stream.write_all(&self.write_buf).await;
        if result.is_err() {
            self.broken = true;
        }
        Ok(result?)
    }

    fn payload(&self, at: Packet) -> &[u8] {
        match at {
            Packet::InBuffer(len) => &self.read_buf[4..4 + len],
            Packet::Joined => &self.joined,
        }
    }

    /// Reads the next packet of the sequence; the previous one's bytes are released.
    async fn next_packet(&mut self) -> Result<Packet, WireError> {
        let result = self.read_packet().await;
        if result.is_err() {
            self.broken = true;
            self.in_rows = false;
        }
        result
    }

    async fn read_packet(&mut self) -> Result<Packet, WireError> {
        self.read_buf.advance(self.consumed);
        self.consumed = 0;
        self.joined.clear();
        let mut joining = false;
        loop {
            if self.read_buf.len() >= 4 {
                let b = &self.read_buf;
                let len = usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
                if b[3] != self.seq {
                    return Err(protocol(format!(
                        "packet {} where {} was expected",
                        b[3], self.seq
                    )));
                }
                if self.read_buf.len() >= 4 + len {
                    self.seq = self.seq.wrapping_add(1);
                    if !joining && len < MAX_CHUNK {
                        self.consumed = 4 + len;
                        return Ok(Packet::InBuffer(len));
                    }
                    joining = true;
                    self.joined.extend_from_slice(&self.read_buf[4..4 + len]);
                    self.read_buf.advance(4 + len);
                    if len < MAX_CHUNK {
                        return Ok(Packet::Joined);
                    }
                    continue;
                }
                self.read_buf.reserve(4 + len - self.read_buf.len());
            } else {
                self.read_buf.reserve(4096);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

/// Whether `sql` is a SELECT (what may run behind deferred statements, see
/// [`Conn::execute_behind_deferred`]).
fn is_select(sql: &str) -> bool {
    let start = sql.trim_start().as_bytes();
    start.len() > 6
        && start[..6].eq_ignore_ascii_case(b"select")
        && !start[6].is_ascii_alphanumeric()
}

/// COM_STMT_EXECUTE's body: no cursor, one iteration, the NULL bitmap, then each parameter's
/// type (its unsigned flag for unsigned integers) and its non-NULL values. A value of a type
/// the client named (a DECIMAL sent as its digits, a DATE) goes as that type, so the server
/// reads it as the client meant.
fn execute_body(body: &mut Vec<u8>, id: u32, params: &[(Value, ColumnType)]) {
    body.clear();
    body.extend_from_slice(&id.to_le_bytes());
    body.push(0);
    body.extend_from_slice(&1u32.to_le_bytes());
    if params.is_empty() {
        return;
    }
    let bitmap = body.len();
    body.resize(bitmap + params.len().div_ceil(8), 0);
    for (i, (value, _)) in params.iter().enumerate() {
        if matches!(value, Value::NULL) {
            body[bitmap + i / 8] |= 1 << (i % 8);
        }
    }
    body.push(1);
    for (value, declared) in params {
        let (kind, unsigned) = param_type(value, *declared);
        body.extend_from_slice(&[kind as u8, if unsigned { 0x80 } else { 0 }]);
    }
    for (value, _) in params {
        value.serialize(body);
    }
}

/// The type a parameter is sent as: its value's, or the type the client declared where that
/// says more about the same encoding.
fn param_type(value: &Value, declared: ColumnType) -> (ColumnType, bool) {
    use ColumnType::*;
    match value {
        Value::NULL => (MYSQL_TYPE_NULL, false),
        Value::Int(_) => (MYSQL_TYPE_LONGLONG, false),
        Value::UInt(_) => (MYSQL_TYPE_LONGLONG, true),
        Value::Float(_) => (MYSQL_TYPE_FLOAT, false),
        Value::Double(_) => (MYSQL_TYPE_DOUBLE, false),
        Value::Bytes(_) => match declared {
            MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => (declared, false),
            _ => (MYSQL_TYPE_VAR_STRING, false),
        },
        Value::Date(..) => match declared {
            MYSQL_TYPE_DATE | MYSQL_TYPE_TIMESTAMP => (declared, false),
            _ => (MYSQL_TYPE_DATETIME, false),
        },
        Value::Time(..) => (MYSQL_TYPE_TIME, false),
    }
}

/// Column definitions as [`Conn::response`] keeps them: each payload behind its length (4 bytes).
fn parse_definitions(mut bytes: &[u8], count: usize) -> std::io::Result<Vec<Column>> {
    let mut columns = Vec::with_capacity(count);
    while let [l0, l1, l2, l3, rest @ ..] = bytes {
        let len = u32::from_le_bytes([*l0, *l1, *l2, *l3]) as usize;
        let (payload, next) = rest.split_at(len.min(rest.len()));
        columns.push(ParseBuf(payload).parse::<Column>(())?);
        bytes = next;
    }
    Ok(columns)
}

fn parse_ok<T: OkPacketKind>(
    payload: &[u8],
    caps: CapabilityFlags,
) -> std::io::Result<(Summary, StatusFlags)> {
    let ok: OkPacket = ParseBuf(payload)
        .parse::<OkPacketDeserializer<T>>(caps)?
        .into();
    let summary = Summary {
        affected_rows: ok.affected_rows(),
        last_insert_id: ok.last_insert_id().unwrap_or(0),
        warnings: ok.warnings(),
        info: ok
            .info_ref()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .unwrap_or_default(),
    };
    Ok((summary, ok.status_flags()))
}

/// The EOF that ends rows for a server without CLIENT_DEPRECATE_EOF: 0xfe, warnings, status.
fn parse_eof(payload: &[u8]) -> std::io::Result<(Summary, StatusFlags)> {
    let [0xfe, w0, w1, s0, s1, ..] = *payload else {
        return Err(std::io::Error::other("a malformed EOF packet"));
    };
    let summary = Summary {
        warnings: u16::from_le_bytes([w0, w1]),
        ..Summary::default()
    };
    Ok((
        summary,
        StatusFlags::from_bits_truncate(u16::from_le_bytes([s0, s1])),
    ))
}

fn parse_err(payload: &[u8], caps: CapabilityFlags) -> WireError {
    match ParseBuf(payload).parse::<ErrPacket>(caps) {
        Ok(ErrPacket::Error(e)) => WireError::Server {
            code: e.error_code(),
            state: e
                .sql_state_ref()
                .map(|s| s.as_str().into_owned())
                .unwrap_or_else(|| "HY000".into()),
            message: e.message_str().into_owned(),
        },
        Ok(ErrPacket::Progress(_)) => protocol("a progress report where an error was due"),
        Err(e) => protocol(e),
    }
}

#[cfg(test)]
mod tests {
    use super::is_select;

    #[test]
    fn only_selects_run_behind_deferred_statements() {
        for sql in ["SELECT c FROM t WHERE id = ?", "  select\n1", "Select(1)"] {
            assert!(is_select(sql), "{sql}");
        }
        for sql in [
            "SELECTED",
            "UPDATE t SET c = 1",
            "INSERT INTO t SELECT 1",
            "SELEC",
            "",
        ] {
            assert!(!is_select(sql), "{sql}");
        }
    }
}
