//! Following a server's binlog: the replication connection, events to [`Change`]s, resuming.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};
use mysql_common::binlog::events::{Event, EventData, RowsEventData};
use mysql_common::packets::Sid;
use mysql_common::value::Value;

use crate::position::{Flavor, Gtid, Position};
use crate::table::Table;
use crate::ChangeStreamError;

/// MariaDB's event types that mysql_common does not name.
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB's GTID event flag: a statement outside BEGIN ... COMMIT (DDL).
const MARIADB_FL_STANDALONE: u8 = 1;

/// What a stream yields, in binlog order. Row changes come between a `Begin` and its `Commit`
/// (or a `Rollback`); only the tables the stream follows appear, and a transaction that touched
/// none of them yields nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Begin {
        gtid: Gtid,
    },
    Insert {
        table: Arc<Table>,
        row: Vec<Value>,
    },
    Update {
        table: Arc<Table>,
        before: Vec<Value>,
        after: Vec<Value>,
    },
    Delete {
        table: Arc<Table>,
        row: Vec<Value>,
    },
    /// The transaction ended; `position` includes it: store it to resume after it.
    Commit {
        position: Position,
    },
    /// A statement the binlog holds as text, outside any transaction (DDL), on a followed
    /// schema. `position` includes it.
    Statement {
        schema: String,
        sql: String,
        position: Position,
    },
    /// Nothing to yield for a while: the server had nothing more to send, or only transactions
    /// of other tables came (at most one of these a second). The stream stands at `position`.
    Heartbeat {
        position: Position,
    },
    /// The transaction begun last will not be completed here: the server was lost part-way
    /// and the stream resumed from the last commit, which sends it again. Discard what came
    /// of it.
    Rollback,
}

/// Which tables a stream follows.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Only this schema's (all schemas when `None`).
    pub schema: Option<String>,
    /// Only these tables of it (all when empty).
    pub names: Vec<String>,
}

impl Tables {
    pub fn of_schema(schema: &str) -> Tables {
        Tables {
            schema: Some(schema.to_string()),
            names: Vec::new(),
        }
    }

    fn schema_followed(&self, schema: &str) -> bool {
        self.schema.as_deref().is_none_or(|s| s == schema)
    }

    fn followed(&self, schema: &str, table: &str) -> bool {
        self.schema_followed(schema)
            && (self.names.is_empty() || self.names.iter().any(|n| n == table))
    }
}

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub tables: Tables,
    /// The id the stream registers with, as a replica does: unique among the server's
    /// replicas and streams (the server drops an older connection with the same id).
    pub server_id: u32,
    /// How often the server sends a heartbeat when it has nothing to send. Three missed in a
    /// row count as a lost connection.
    pub heartbeat: Duration,
    /// How long a lost server is retried before [`ChangeStream::next`] fails.
    pub reconnect_for: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            tables: Tables::default(),
            server_id: unique_server_id(),
            heartbeat: Duration::from_secs(1),
            reconnect_for: Duration::from_secs(10),
        }
    }
}

/// A replica id of this process's own: high enough not to meet a configured server's.
fn unique_server_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    0x5347_0000 | ((std::process::id() & 0xff) << 8) | (n & 0xff)
}

/// Names what a server lacks to give a change stream, or nothing.
pub async fn check_settings(conn: &mut Conn) -> Result<Flavor, ChangeStreamError> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let flavor = Flavor::of_version(&version);
    let mut wanted = vec![
        ("log_bin", "1"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
    ];
    match flavor {
        Flavor::MariaDb => wanted.push(("log_bin_compress", "0")),
        Flavor::MySql => wanted.push(("gtid_mode", "ON")),
    }
    let mut missing = Vec::new();
    for (variable, value) in wanted {
        let have: Option<String> = conn
            .query_first(format!("SELECT @@GLOBAL.{variable}"))
            .await
            .ok()
            .flatten();
        if !have
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(value))
        {
            let shown = match value {
                "1" => "ON",
                "0" => "OFF",
                v => v,
            };
            missing.push(format!(
                "{variable} = {shown} (it is {})",
                have.as_deref().unwrap_or("unset")
            ));
        }
    }
    match missing.is_empty() {
        true => Ok(flavor),
        false => Err(ChangeStreamError::Settings(format!(
            "set {} in the server's options",
            missing.join(", ")
        ))),
    }
}

/// The server's current position: every transaction it has written so far.
pub async fn current_position(conn: &mut Conn) -> Result<Position, ChangeStreamError> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let flavor = Flavor::of_version(&version);
    let text: String = conn
        .query_first(flavor.position_query())
        .await?
        .unwrap_or_default();
    Position::parse(flavor, &text)
}

/// The transaction being read.
struct Open {
    gtid: Gtid,
    /// Inside BEGIN ... COMMIT (not a lone statement).
    transactional: bool,
    /// Its `Begin` was yielded.
    begun: bool,
}

/// One server's binlog, from a position on.
pub struct ChangeStream {
    opts: Opts,
    options: StreamOptions,
    binlog: Option<BinlogStream>,
    /// After the last transaction that ended.
    committed: Position,
    open: Option<Open>,
    /// Each table id's table, when followed.
    tables: HashMap<u64, Option<Arc<Table>>>,
    ready: VecDeque<Change>,
    /// When the connection was first lost, while it is being restored.
    lost_since: Option<Instant>,
    /// When a `Heartbeat` was last yielded.
    last_heartbeat: Instant,
}

impl ChangeStream {
    /// Starts following the server at `opts` after `from` (see [`current_position`]). Checks the
    /// server's settings first.
    pub async fn start(
        opts: Opts,
        from: Position,
        options: StreamOptions,
    ) -> Result<ChangeStream, ChangeStreamError> {
        let mut conn = Conn::new(opts.clone()).await?;
        let flavor = check_settings(&mut conn).await?;
        if flavor != from.flavor() {
            return Err(ChangeStreamError::Position(format!(
                "{from} is not a position of this server's kind"
            )));
        }
        let mut stream = ChangeStream {
            opts,
            options,
            binlog: None,
            committed: from,
            open: None,
            tables: HashMap::new(),
            ready: VecDeque::new(),
            lost_since: None,
            last_heartbeat: Instant::now(),
        };
        stream.binlog = Some(stream.request(conn).await?);
        Ok(stream)
    }

    /// After the last transaction that ended (whether or not it touched followed tables).
    pub fn position(&self) -> &Position {
        &self.committed
    }

    /// Turns `conn` into a replication connection reading after `self.committed`.
    async fn request(&self, mut conn: Conn) -> Result<BinlogStream, ChangeStreamError> {
        let heartbeat = self.options.heartbeat.as_nanos().max(1_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat}"))
            .await?;
        let id = self.options.server_id;
        let binlog = match &self.committed {
            Position::MariaDb(_) => {
                // Capability 4: MariaDB's own events (its GTIDs) rather than ones translated
                // for old replicas. The position goes in a variable; file and offset are unused.
                conn.query_drop(format!(
                    "SET @mariadb_slave_capability = 4, @slave_connect_state = '{}', \
                     @slave_gtid_strict_mode = 1",
                    self.committed
                ))
                .await?;
                conn.get_binlog_stream(BinlogStreamRequest::new(id)).await?
            }
            Position::MySql(_) => {
                let text = self.committed.to_string();
                let sids: Vec<Sid<'static>> = text
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<Sid<'static>>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| ChangeStreamError::Position(text.clone()))?;
                let request = BinlogStreamRequest::new(id).with_gtid().with_gtid_set(sids);
                conn.get_binlog_stream(request).await?
            }
        };
        Ok(binlog)
    }

    /// The next change, waiting for one as long as it takes. A lost connection is restored
    /// from the last commit for up to `reconnect_for`; past that, an error.
    pub async fn next(&mut self) -> Result<Change, ChangeStreamError> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(change);
            }
            let read = match self.binlog.as_mut() {
                Some(binlog) => {
                    let patience = self.options.heartbeat * 3 + Duration::from_secs(1);
                    match tokio::time::timeout(patience, binlog.next()).await {
                        Ok(Some(Ok(event))) => Ok(event),
                        Ok(Some(Err(e))) => Err(e),
                        Ok(None) => Err(mysql_async::DriverError::ConnectionClosed.into()),
                        Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "no event or heartbeat from the server",
                            ),
                        ))),
                    }
                }
                None => {
                    self.reconnect().await?;
                    continue;
                }
            };
            match read {
                Ok(event) => {
                    self.lost_since = None;
                    self.event(&event)?;
                }
                Err(error) => self.lost(error)?,
            }
        }
    }

    /// After a read failed: fatal for a server error (the position is gone, say), otherwise
    /// the stream resumes from the last commit at the next read.
    fn lost(&mut self, error: mysql_async::Error) -> Result<(), ChangeStreamError> {
        if let mysql_async::Error::Server(_) = error {
            return Err(error.into());
        }
        let since = *self.lost_since.get_or_insert_with(Instant::now);
        if since.elapsed() > self.options.reconnect_for {
            return Err(ChangeStreamError::Lost {
                secs: self.options.reconnect_for.as_secs(),
                error,
            });
        }
        tracing::warn!(%error, position = %self.committed, "change stream lost its server; resuming");
        self.binlog = None;
        self.tables.clear();
        if self.open.take().is_some_and(|o| o.begun) {
            self.ready.push_back(Change::Rollback);
        }
        Ok(())
    }

    async fn reconnect(&mut self) -> Result<(), ChangeStreamError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let attempt = async {
            let conn = Conn::new(self.opts.clone()).await?;
            self.request(conn).await
        };
        match attempt.await {
            Ok(binlog) => {
                self.binlog = Some(binlog);
                Ok(())
            }
            Err(ChangeStreamError::Server(e)) => self.lost(e),
            Err(e) => Err(e),
        }
    }

    fn event(&mut self, event: &Event) -> Result<(), ChangeStreamError> {
        let raw_type = event.header().event_type_raw();
        if raw_type == MARIADB_GTID_EVENT {
            let data = event.data();
            if data.len() < 13 {
                return Err(ChangeStreamError::Event(
                    "a short MariaDB GTID event".into(),
                ));
            }
            let seq = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            let domain = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
            self.open = Some(Open {
                gtid: Gtid::MariaDb {
                    domain,
                    server: event.header().server_id(),
                    seq,
                },
                transactional: data[12] & MARIADB_FL_STANDALONE == 0,
                begun: false,
            });
            return Ok(());
        }
        let data = event
            .read_data()
            .map_err(|e| ChangeStreamError::Event(e.to_string()))?;
        match data {
            Some(EventData::GtidEvent(gtid)) => {
                self.open = Some(Open {
                    gtid: Gtid::MySql {
                        uuid: gtid.sid(),
                        gno: gtid.gno(),
                    },
                    // Set by the BEGIN that follows, if one does.
                    transactional: false,
                    begun: false,
                });
            }
            Some(EventData::QueryEvent(query)) => {
                let sql = query.query();
                let word = sql.trim();
                if word.eq_ignore_ascii_case("BEGIN") {
                    if let Some(open) = &mut self.open {
                        open.transactional = true;
                    }
                } else if word.eq_ignore_ascii_case("COMMIT")
                    || word.eq_ignore_ascii_case("ROLLBACK")
                {
                    self.commit();
                } else if word.len() >= 2 && word[..2].eq_ignore_ascii_case("XA") {
                    return Err(ChangeStreamError::Event(format!(
                        "XA transactions in the binlog are not followed yet ({word})"
                    )));
                } else if self.open.as_ref().is_none_or(|o| !o.transactional) {
                    // A lone statement: DDL. Table ids may now name other definitions.
                    self.tables.clear();
                    let schema = query.schema().into_owned();
                    let sql = sql.into_owned();
                    self.commit();
                    if self.options.tables.schema_followed(&schema) {
                        self.ready.push_back(Change::Statement {
                            schema,
                            sql,
                            position: self.committed.clone(),
                        });
                    }
                } else {
                    tracing::warn!(sql = %word, "a statement inside a transaction in a row binlog, not followed");
                }
            }
            Some(EventData::XidEvent(_)) => self.commit(),
            Some(EventData::TableMapEvent(tme)) => {
                let followed = self
                    .options
                    .tables
                    .followed(&tme.database_name(), &tme.table_name());
                let table = match followed {
                    true => Some(Arc::new(Table::from_map(&tme)?)),
                    false => None,
                };
                self.tables.insert(tme.table_id(), table);
            }
            Some(EventData::RowsEvent(rows)) => self.rows(&rows)?,
            Some(EventData::HeartbeatEvent) => self.heartbeat(),
            Some(EventData::XaPrepareLogEvent(_)) => {
                return Err(ChangeStreamError::Event(
                    "XA transactions in the binlog are not followed yet (XA PREPARE)".into(),
                ))
            }
            // Rotations, format descriptions, heartbeats, MariaDB's GTID lists and
            // checkpoints, MySQL's previous GTIDs: nothing to yield.
            _ => {}
        }
        Ok(())
    }

    fn rows(&mut self, rows: &RowsEventData<'_>) -> Result<(), ChangeStreamError> {
        let Some(Some(table)) = self.tables.get(&rows.table_id()).cloned() else {
            return Ok(());
        };
        let binlog = self.binlog.as_ref().expect("an event came from it");
        let tme = binlog.get_tme(rows.table_id()).ok_or_else(|| {
            ChangeStreamError::Event(format!("rows of an unmapped table id {}", rows.table_id()))
        })?;
        if let Some(open) = &mut self.open {
            if !open.begun {
                open.begun = true;
                self.ready.push_back(Change::Begin { gtid: open.gtid });
            }
        }
        let bad = |e: std::io::Error| ChangeStreamError::Event(format!("a rows event: {e}"));
        for pair in rows.rows(tme) {
            let (before, after) = pair.map_err(bad)?;
            let before = before.map(|r| table.values(r)).transpose()?;
            let after = after.map(|r| table.values(r)).transpose()?;
            let table = table.clone();
            self.ready.push_back(match (before, after) {
                (None, Some(row)) => Change::Insert { table, row },
                (Some(before), Some(after)) => Change::Update {
                    table,
                    before,
                    after,
                },
                (Some(row), None) => Change::Delete { table, row },
                (None, None) => return Err(ChangeStreamError::Event("an empty row".into())),
            });
        }
        Ok(())
    }

    /// The open transaction ended.
    fn commit(&mut self) {
        if let Some(open) = self.open.take() {
            self.committed.advance(open.gtid);
            match open.begun {
                true => self.ready.push_back(Change::Commit {
                    position: self.committed.clone(),
                }),
                false if self.last_heartbeat.elapsed() >= Duration::from_secs(1) => {
                    self.heartbeat()
                }
                false => {}
            }
        }
    }

    fn heartbeat(&mut self) {
        if self.open.is_none() {
            self.last_heartbeat = Instant::now();
            self.ready.push_back(Change::Heartbeat {
                position: self.committed.clone(),
            });
        }
    }
}
