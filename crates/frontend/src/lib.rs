//! The MySQL server protocol, on tokio and mysql_common: accepting connections, the handshake and
//! authentication, reading commands, writing results. It knows nothing of SQL meaning: each command
//! goes to a [`Handler`], which answers through a [`ResultWriter`].
//!
//! - `io`: packet framing over the socket (mysql_common's `PacketCodec`), one flush per response.
//! - `handshake`: greeting, capability negotiation, the auth plugin exchange.
//! - `auth`: checking answers (`mysql_native_password`, `caching_sha2_password` with its fast
//!   path and RSA full authentication) against plain passwords or stored hashes.
//! - `writer`: OK / ERR / EOF packets, column definitions, text rows.
//! - `server`: the accept loop and the per-connection command loop.

mod auth;
mod binary;
mod handshake;
mod io;
mod server;
mod writer;

use std::future::Future;

pub use auth::{native_password_hash, sha2_password_hash, Credential};
pub use io::ByteCounts;
pub use mysql_common::constants::ColumnType;
pub use mysql_common::constants::StatusFlags;
pub use server::{serve, ServerOptions};
pub use writer::{OkInfo, ResultWriter};

/// The result writer's row encoders, on their own (benchmarks measure them).
pub mod encode {
    use mysql_common::constants::{ColumnFlags, ColumnType};
    use mysql_common::value::Value;

    /// A text-protocol row's payload.
    pub fn text_row(buf: &mut Vec<u8>, values: &[Value]) {
        for v in values {
            crate::writer::encode_text_value(buf, v);
        }
    }

    /// A binary-protocol row's payload, by the columns' types; an error names a value that does
    /// not fit its column's type.
    pub fn binary_row(
        buf: &mut Vec<u8>,
        types: &[(ColumnType, ColumnFlags)],
        values: &[Value],
    ) -> Result<(), String> {
        crate::binary::encode_row(buf, types, values).map_err(|e| e.0)
    }
}

/// An error to send to the client as an ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub code: u16,
    /// Five characters, e.g. `42000`.
    pub state: [u8; 5],
    pub message: String,
}

impl SqlError {
    pub fn new(code: u16, state: &str, message: impl Into<String>) -> Self {
        let mut s = [b'H', b'Y', b'0', b'0', b'0'];
        if state.len() == 5 && state.is_ascii() {
            s.copy_from_slice(state.as_bytes());
        }
        SqlError {
            code,
            state: s,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code,
            String::from_utf8_lossy(&self.state),
            self.message
        )
    }
}

/// Creates a [`Handler`] for each authenticated connection.
pub trait HandlerFactory: Send + Sync + 'static {
    type Handler: Handler;

    /// What the server knows of `user`'s password, or `None` when there is no such user.
    fn credential(&self, user: &str) -> Option<Credential>;

    /// Whether `user` may only log in over TLS.
    fn requires_tls(&self, _user: &str) -> bool {
        false
    }

    /// A new session for an authenticated user. `database` is the one given at connect time.
    fn connect(
        &self,
        conn_id: u32,
        user: &str,
        database: Option<&str>,
    ) -> impl Future<Output = Result<Self::Handler, SqlError>> + Send;
}

/// One client session's answers to its commands.
pub trait Handler: Send + 'static {
    /// COM_QUERY. Must answer exactly once through `out` (result set, OK or ERR).
    fn query(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> impl Future<Output = std::io::Result<()>> + Send;

    /// COM_INIT_DB (`USE db`).
    fn init_db(&mut self, database: &str) -> impl Future<Output = Result<(), SqlError>> + Send;

    /// The server status flags (autocommit, in transaction) for the next OK or EOF packet.
    fn status(&self) -> StatusFlags;

    /// The connection is closing, by COM_QUIT or otherwise.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Notified when the session is killed (`KILL <id>` from another session): the connection
    /// closes at once, even while idle.
    fn kill_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// COM_RESET_CONNECTION: back to a fresh session (same user and database).
    fn reset(&mut self) -> impl Future<Output = ()> + Send;

    /// COM_FIELD_LIST (the `mysql` client's table-name completion): the table's columns.
    fn field_list(
        &mut self,
        table: &str,
    ) -> impl Future<Output = Result<Vec<mysql_common::packets::Column>, SqlError>> + Send;

    /// COM_STATISTICS: one line of server statistics.
    fn statistics(&self) -> String;

    /// COM_STMT_PREPARE: the statement's parameter count and result columns. `id` names it in
    /// later calls.
    fn prepare(
        &mut self,
        id: u32,
        sql: &str,
    ) -> impl Future<Output = Result<Prepared, SqlError>> + Send;

    /// COM_STMT_EXECUTE with its decoded parameters; answers like [`Handler::query`] (rows go out
    /// in the binary protocol).
    fn execute(
        &mut self,
        id: u32,
        params: Vec<Param>,
        out: &mut ResultWriter<'_>,
    ) -> impl Future<Output = std::io::Result<()>> + Send;

    /// COM_STMT_CLOSE.
    fn close_statement(&mut self, id: u32);
}

/// A COM_STMT_EXECUTE parameter and the type the client declared for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub value: mysql_common::value::Value,
    pub column_type: mysql_common::constants::ColumnType,
}

/// What COM_STMT_PREPARE reports of a statement.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub params: u16,
    pub columns: Vec<mysql_common::packets::Column>,
}

/// Entry points for the fuzz targets in `fuzz/`: every decoder of client bytes this crate owns,
/// run on arbitrary input. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use mysql_common::constants::{CapabilityFlags, ColumnType};
    use mysql_common::io::ParseBuf;
    use mysql_common::packets::HandshakeResponse;
    use mysql_common::proto::MyDeserialize;

    use crate::binary::{decode_params, ParamType};

    pub fn decoders(data: &[u8]) {
        // COM_STMT_EXECUTE's parameter block: with no types bound yet, and with types bound by
        // an earlier execution.
        for count in 0..5 {
            let _ = decode_params(data, count, &mut Vec::new(), &[]);
            let mut bound = vec![
                ParamType {
                    kind: ColumnType::MYSQL_TYPE_VAR_STRING,
                    unsigned: false,
                };
                count
            ];
            let _ = decode_params(data, count, &mut bound, &[Some(b"long".to_vec()), None]);
        }
        // COM_CHANGE_USER's body, with and without the 4.1 authentication layout.
        for caps in [CapabilityFlags::all(), CapabilityFlags::CLIENT_PROTOCOL_41] {
            let _ = crate::server::parse_change_user(data, caps);
        }
        // The handshake response, as the handshake reads it.
        let _ = HandshakeResponse::deserialize((), &mut ParseBuf(data));
    }
}
