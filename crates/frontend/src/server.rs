//! The accept loop and the per-connection command loop.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, Command};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn, Instrument};

use crate::auth::AuthState;
use crate::binary::{decode_params, ParamType};
use crate::handshake::{
    authenticate, handshake, known_plugin, Authenticated, HandshakeError, TlsPolicy,
};
use crate::io::{ByteCounts, PacketIo, ReadError};
use crate::writer::{encode_err, OkInfo, ResultWriter};
use crate::{Handler, HandlerFactory, SqlError};

#[derive(Clone)]
pub struct ServerOptions {
    /// Announced in the greeting; drivers change behaviour on old versions.
    pub server_version: String,
    /// Largest packet accepted from a client.
    pub max_packet_size: usize,
    /// Client bytes in and out, counted here for the operator's metrics.
    pub bytes: Arc<ByteCounts>,
    /// Offered to clients that ask (CLIENT_SSL); `None`: plaintext only.
    pub tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
    /// Becomes true when the server drains for shutdown: each connection then ends at its next
    /// command outside a transaction (with ER_SERVER_SHUTDOWN), never in the middle of one.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// A client that sends no command for this long is disconnected (ER_CLIENT_INTERACTION_TIMEOUT,
    /// as MySQL's wait_timeout); its transaction rolls back.
    pub idle_timeout: Option<std::time::Duration>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            server_version: "8.0.40-shardgate".into(),
            max_packet_size: 64 << 20,
            bytes: Arc::default(),
            tls: None,
            draining: tokio::sync::watch::channel(false).1,
            idle_timeout: None,
        }
    }
}

/// Accepts connections until `shutdown` completes; each connection runs on its own task.
pub async fn serve<F: HandlerFactory>(
    listener: TcpListener,
    factory: Arc<F>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let next_id = AtomicU32::new(1);
    let options = Arc::new(options);
    let auth_state = Arc::new(AuthState::default());
    crate::auth::prepare_key();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
        let factory = factory.clone();
        let options = options.clone();
        let auth_state = auth_state.clone();
        let span = tracing::info_span!("conn", conn_id, %peer);
        tokio::spawn(
            async move {
                if let Err(e) =
                    run_connection(stream, conn_id, &*factory, &options, &auth_state).await
                {
                    debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
}

async fn run_connection<F: HandlerFactory>(
    stream: TcpStream,
    conn_id: u32,
    factory: &F,
    options: &ServerOptions,
    auth_state: &AuthState,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut io = PacketIo::new(stream, options.max_packet_size, options.bytes.clone());
    // Futures of rare or one-off steps are boxed: an idle connection's task then holds only the
    // command loop's small state, not the largest state of any step (10,000 idle clients).
    let auth = match Box::pin(handshake(
        &mut io,
        conn_id,
        &options.server_version,
        auth_state,
        |u| factory.credential(u),
        TlsPolicy {
            acceptor: options.tls.as_deref(),
            required: |u: &str| factory.requires_tls(u),
        },
    ))
    .await
    {
        Ok(auth) => auth,
        Err(HandshakeError::Refused(err)) => {
            info!(code = err.code, message = %err.message, "connection refused");
            send_error(&mut io, &err).await;
            io.shutdown().await;
            return Ok(());
        }
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    let mut auth = auth;
    let mut handler = match factory
        .connect(conn_id, &auth.user, auth.database.as_deref())
        .await
    {
        Ok(h) => h,
        Err(err) => {
            send_error(&mut io, &err).await;
            io.shutdown().await;
            return Ok(());
        }
    };
    // The OK that ends the connection phase continues the handshake's sequence.
    let mut ok = Vec::new();
    crate::writer::encode_ok(&mut ok, 0x00, &OkInfo::default(), handler.status());
    io.write_packet(&ok).await?;
    io.flush().await?;
    // Compression starts with the first command, as clients expect.
    if let Some(level) = auth.zstd_level {
        io.compress_zstd(level);
    } else if auth.caps.contains(CapabilityFlags::CLIENT_COMPRESS) {
        io.compress();
    }
    info!(user = %auth.user, "client connected");
    let result = command_loop(
        &mut io,
        factory,
        auth_state,
        conn_id,
        &mut handler,
        &mut auth,
        options,
    )
    .await;
    Box::pin(handler.close()).await;
    io.shutdown().await;
    info!("client disconnected");
    result
}

async fn send_error(io: &mut PacketIo, err: &SqlError) {
    let mut buf = Vec::new();
    encode_err(&mut buf, err);
    let _ = io.write_packet(&buf).await;
    let _ = io.flush().await;
}

/// MySQL's default `max_prepared_stmt_count` is per server; this bounds one connection.
const MAX_STATEMENTS: usize = 16_382;

/// The protocol side of a prepared statement: what COM_STMT_EXECUTE needs to decode its values.
struct Statement {
    params: u16,
    /// Parameter types from the last execution that sent them.
    types: Vec<ParamType>,
    /// COM_STMT_SEND_LONG_DATA values, by parameter, until the next execution or reset.
    long_data: Vec<Option<Vec<u8>>>,
}

fn unknown_statement(id: u32, command: &str) -> SqlError {
    SqlError::new(
        1243,
        "HY000",
        format!("Unknown prepared statement handler ({id}) given to {command}"),
    )
}

fn statement_id(body: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(body.get(..4)?.try_into().ok()?))
}

/// After a handler's answer: a response must have been written and any result set finished.
async fn check_answered(out: &mut ResultWriter<'_>) -> std::io::Result<()> {
    if !out.responded() {
        out.error(&SqlError::new(
            1105,
            "HY000",
            "[BUG] statement produced no response",
        ))
        .await
    } else if out.in_rows() {
        out.error(&SqlError::new(
            1105,
            "HY000",
            "[BUG] result set was not finished",
        ))
        .await
    } else {
        Ok(())
    }
}

/// COM_CHANGE_USER's body: user, auth response, database, character set, plugin.
pub(crate) struct ChangeUser {
    user: String,
    auth: Vec<u8>,
    database: Option<String>,
    plugin: Option<Vec<u8>>,
}

pub(crate) fn parse_change_user(body: &[u8], caps: CapabilityFlags) -> Option<ChangeUser> {
    fn nul_terminated<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        let end = b.iter().position(|c| *c == 0)?;
        let (head, rest) = b.split_at(end);
        *b = &rest[1..];
        Some(head)
    }
    let mut b = body;
    let user = String::from_utf8_lossy(nul_terminated(&mut b)?).into_owned();
    let auth = if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
        let (&len, rest) = b.split_first()?;
        let data = rest.get(..usize::from(len))?;
        b = &rest[usize::from(len)..];
        data.to_vec()
    } else {
        nul_terminated(&mut b)?.to_vec()
    };
    let database = nul_terminated(&mut b)
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned());
    let plugin = if caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) && b.len() > 2 {
        b = &b[2..];
        nul_terminated(&mut b).map(<[u8]>::to_vec)
    } else {
        None
    };
    Some(ChangeUser {
        user,
        auth,
        database,
        plugin,
    })
}

/// COM_CHANGE_USER: re-authenticates against the greeting's scramble; on success the session
/// starts over as the new user (open transaction rolled back, statements gone). False when the
/// connection must close.
#[allow(clippy::too_many_arguments)]
async fn change_user<F: HandlerFactory>(
    io: &mut PacketIo,
    factory: &F,
    state: &AuthState,
    conn_id: u32,
    handler: &mut F::Handler,
    auth: &mut Authenticated,
    statements: &mut HashMap<u32, Statement>,
    body: &[u8],
) -> std::io::Result<bool> {
    let Some(change) = parse_change_user(body, auth.caps) else {
        send_error(io, &SqlError::new(1043, "08S01", "Bad handshake")).await;
        return Ok(false);
    };
    let plugin = known_plugin(change.plugin.as_deref()).unwrap_or(b"");
    let tls_refused = factory.requires_tls(&change.user) && !io.is_tls();
    let accepted = match factory.credential(&change.user) {
        Some(_) if tls_refused => false,
        Some(cred) => authenticate(
            io,
            state,
            plugin,
            &change.user,
            &cred,
            &auth.salt,
            &change.auth,
        )
        .await
        .map_err(|e| match e {
            ReadError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })?,
        None => false,
    };
    if !accepted {
        let message = format!(
            "Access denied for user '{}' (using password: {})",
            change.user,
            if change.auth.is_empty() { "NO" } else { "YES" }
        );
        send_error(io, &SqlError::new(1045, "28000", message)).await;
        return Ok(false);
    }
    match factory
        .connect(conn_id, &change.user, change.database.as_deref())
        .await
    {
        Ok(new) => {
            handler.close().await;
            *handler = new;
            statements.clear();
            auth.user = change.user;
            auth.database = change.database;
            let mut ok = Vec::new();
            crate::writer::encode_ok(&mut ok, 0x00, &OkInfo::default(), handler.status());
            io.write_packet(&ok).await?;
        }
        Err(e) => send_error(io, &e).await,
    }
    Ok(true)
}

async fn command_loop<F: HandlerFactory>(
    io: &mut PacketIo,
    factory: &F,
    auth_state: &AuthState,
    conn_id: u32,
    handler: &mut F::Handler,
    auth: &mut Authenticated,
    options: &ServerOptions,
) -> std::io::Result<()> {
    let mut draining = options.draining.clone();
    let idle_timeout = options.idle_timeout;
    let caps = auth.caps;
    let mut statements: HashMap<u32, Statement> = HashMap::new();
    let mut next_statement: u32 = 1;
    // The command's bytes, in a buffer kept between commands (unless a huge one grew it).
    let mut packet = Vec::new();
    loop {
        if packet.capacity() > 64 * 1024 {
            packet = Vec::new();
        }
        io.reset_seq();
        let kill = handler.kill_signal();
        let in_transaction = handler
            .status()
            .contains(mysql_common::constants::StatusFlags::SERVER_STATUS_IN_TRANS);
        // Between commands, outside a transaction, a draining server lets the client go.
        let drained = async {
            if in_transaction || draining.wait_for(|d| *d).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let killed = async {
            match kill {
                Some(kill) => kill.notified().await,
                None => std::future::pending().await,
            }
        };
        let idle = async {
            match idle_timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            read = io.read_packet_into(&mut packet) => Ok(read),
            () = idle => Err(SqlError::new(
                4031,
                "HY000",
                "The client was disconnected by the server because of inactivity.",
            )),
            () = killed => Err(SqlError::new(1927, "70100", "Connection was killed")),
            () = drained => Err(SqlError::new(1053, "08S01", "Server shutdown in progress")),
        };
        let read = match read {
            Ok(read) => read,
            Err(goodbye) => {
                send_error(io, &goodbye).await;
                return Ok(());
            }
        };
        match read {
            Ok(()) => {}
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::TooLarge) => {
                send_error(
                    io,
                    &SqlError::new(
                        1153,
                        "08S01",
                        "Got a packet bigger than 'max_allowed_packet' bytes",
                    ),
                )
                .await;
                return Ok(());
            }
            Err(ReadError::Malformed(m)) => {
                send_error(
                    io,
                    &SqlError::new(1156, "08S01", format!("Got packets out of order: {m}")),
                )
                .await;
                return Ok(());
            }
            Err(ReadError::Io(e)) => return Err(e),
        };
        let Some((&command, body)) = packet.split_first() else {
            send_error(
                io,
                &SqlError::new(1047, "08S01", "Unknown command: empty packet"),
            )
            .await;
            continue;
        };
        if command == Command::COM_CHANGE_USER as u8 {
            let keep = Box::pin(change_user(
                io,
                factory,
                auth_state,
                conn_id,
                handler,
                auth,
                &mut statements,
                body,
            ))
            .await?;
            io.flush().await?;
            if !keep {
                return Ok(());
            }
            continue;
        }
        let mut out = ResultWriter::new(io, caps, handler.status());
        match command {
            c if c == Command::COM_QUIT as u8 => return Ok(()),
            c if c == Command::COM_PING as u8 => out.ok(&OkInfo::default()).await?,
            c if c == Command::COM_RESET_CONNECTION as u8 => {
                statements.clear();
                handler.reset().await;
                out.set_status(handler.status());
                out.ok(&OkInfo::default()).await?
            }
            // The reply to COM_STATISTICS is the bare text.
            c if c == Command::COM_STATISTICS as u8 => {
                out.raw(handler.statistics().as_bytes()).await?
            }
            // MULTI_STATEMENTS on or off: answered with an EOF packet, as MySQL does.
            c if c == Command::COM_SET_OPTION as u8 => out.eof().await?,
            c if c == Command::COM_FIELD_LIST as u8 => {
                // table name NUL, then a wildcard we do not filter by.
                let table = body.split(|b| *b == 0).next().unwrap_or_default();
                match Box::pin(handler.field_list(&String::from_utf8_lossy(table))).await {
                    Ok(columns) => out.field_list(&columns).await?,
                    Err(e) => out.error(&e).await?,
                }
            }
            c if c == Command::COM_INIT_DB as u8 => {
                let db = String::from_utf8_lossy(body).into_owned();
                match handler.init_db(db.trim()).await {
                    Ok(()) => {
                        out.set_status(handler.status());
                        out.ok(&OkInfo::default()).await?
                    }
                    Err(e) => out.error(&e).await?,
                }
            }
            c if c == Command::COM_QUERY as u8 => match std::str::from_utf8(body) {
                Ok(sql) => {
                    Box::pin(handler.query(sql, &mut out)).await?;
                    check_answered(&mut out).await?;
                }
                Err(_) => {
                    out.error(&SqlError::new(
                        1300,
                        "HY000",
                        "Invalid utf8mb4 character string in statement",
                    ))
                    .await?
                }
            },
            c if c == Command::COM_STMT_PREPARE as u8 => {
                let Ok(sql) = std::str::from_utf8(body) else {
                    out.error(&SqlError::new(
                        1300,
                        "HY000",
                        "Invalid utf8mb4 character string in statement",
                    ))
                    .await?;
                    io.flush().await?;
                    continue;
                };
                if statements.len() >= MAX_STATEMENTS {
                    out.error(&SqlError::new(
                        1461,
                        "42000",
                        format!("Can't create more than max_prepared_stmt_count statements (current value: {MAX_STATEMENTS})"),
                    ))
                    .await?;
                } else {
                    let id = next_statement;
                    next_statement = next_statement.wrapping_add(1).max(1);
                    match Box::pin(handler.prepare(id, sql)).await {
                        Ok(p) => {
                            statements.insert(
                                id,
                                Statement {
                                    params: p.params,
                                    types: Vec::new(),
                                    long_data: Vec::new(),
                                },
                            );
                            out.prepared(id, p.params, &p.columns).await?
                        }
                        Err(e) => out.error(&e).await?,
                    }
                }
            }
            c if c == Command::COM_STMT_EXECUTE as u8 => {
                let id = statement_id(body).unwrap_or(0);
                let Some(stmt) = statements.get_mut(&id) else {
                    out.error(&unknown_statement(id, "mysqld_stmt_execute"))
                        .await?;
                    io.flush().await?;
                    continue;
                };
                // stmt_id(4) flags(1) iteration_count(4), then the parameters.
                let decoded = match body.get(9..) {
                    Some(rest) => decode_params(
                        rest,
                        usize::from(stmt.params),
                        &mut stmt.types,
                        &stmt.long_data,
                    )
                    .map_err(|e| e.0),
                    None => Err("packet too short".to_string()),
                };
                stmt.long_data.clear();
                match decoded {
                    Ok(params) => {
                        out.set_binary();
                        Box::pin(handler.execute(id, params, &mut out)).await?;
                        check_answered(&mut out).await?;
                    }
                    Err(m) => {
                        out.error(&SqlError::new(
                            1210,
                            "HY000",
                            format!("Incorrect arguments to mysqld_stmt_execute: {m}"),
                        ))
                        .await?
                    }
                }
            }
            // No reply: an error would be read as the answer to the next command. Bad ids and
            // positions are dropped; the execution that follows reports missing values.
            c if c == Command::COM_STMT_SEND_LONG_DATA as u8 => {
                if let (Some(id), Some(param)) = (statement_id(body), body.get(4..6)) {
                    let param = usize::from(u16::from_le_bytes([param[0], param[1]]));
                    if let Some(stmt) = statements.get_mut(&id) {
                        if param < usize::from(stmt.params) {
                            stmt.long_data.resize(usize::from(stmt.params), None);
                            stmt.long_data[param]
                                .get_or_insert_with(Vec::new)
                                .extend_from_slice(&body[6..]);
                        }
                    }
                }
            }
            c if c == Command::COM_STMT_RESET as u8 => {
                let id = statement_id(body).unwrap_or(0);
                match statements.get_mut(&id) {
                    Some(stmt) => {
                        stmt.long_data.clear();
                        out.ok(&OkInfo::default()).await?
                    }
                    None => {
                        out.error(&unknown_statement(id, "mysqld_stmt_reset"))
                            .await?
                    }
                }
            }
            c if c == Command::COM_STMT_CLOSE as u8 => {
                if let Some(id) = statement_id(body) {
                    if statements.remove(&id).is_some() {
                        handler.close_statement(id);
                    }
                }
            }
            other => {
                let name = command_name(other);
                out.error(&SqlError::new(
                    1047,
                    "08S01",
                    format!("Unknown command: {name} is not supported"),
                ))
                .await?
            }
        }
        io.flush().await?;
    }
}

fn command_name(byte: u8) -> String {
    const NAMES: &[(Command, &str)] = &[
        (Command::COM_FIELD_LIST, "COM_FIELD_LIST"),
        (Command::COM_STATISTICS, "COM_STATISTICS"),
        (Command::COM_PROCESS_KILL, "COM_PROCESS_KILL"),
        (Command::COM_CHANGE_USER, "COM_CHANGE_USER"),
        (Command::COM_STMT_PREPARE, "COM_STMT_PREPARE"),
        (Command::COM_STMT_EXECUTE, "COM_STMT_EXECUTE"),
        (Command::COM_STMT_CLOSE, "COM_STMT_CLOSE"),
        (Command::COM_STMT_RESET, "COM_STMT_RESET"),
        (Command::COM_SET_OPTION, "COM_SET_OPTION"),
        (Command::COM_RESET_CONNECTION, "COM_RESET_CONNECTION"),
        (Command::COM_BINLOG_DUMP, "COM_BINLOG_DUMP"),
    ];
    NAMES
        .iter()
        .find(|(c, _)| *c as u8 == byte)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("command 0x{byte:02x}"))
}
