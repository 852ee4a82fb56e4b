//! A change stream: follows one server's binlog from a GTID position, as a replica would, and
//! yields typed row changes (insert, update, delete, with whole before and after images) between
//! transaction boundaries. It resumes from a stored [`Position`] after a disconnect or a restart.
//!
//! The foundation for online schema changes (catch-up and revert), resharding (catch-up and
//! reverse replication) and branch copies. mysql_async drives the replication protocol and
//! mysql_common decodes the events; MariaDB's GTID event, which mysql_common does not know, is
//! read here.
//!
//! A server must write row binlogs with GTIDs and full row images and metadata: `log_bin`,
//! `binlog_format = ROW`, `binlog_row_image = FULL`, `binlog_row_metadata = FULL` (MySQL also
//! `gtid_mode = ON`). [`check_settings`] names what is missing.

mod apply;
mod position;
mod stream;
mod table;

pub use apply::{Applier, Target};
pub use position::{Flavor, Gtid, Position};
pub use stream::{check_settings, current_position, Change, ChangeStream, StreamOptions, Tables};
pub use table::{ColumnMeta, Table};

#[derive(Debug, thiserror::Error)]
pub enum ChangeStreamError {
    #[error("{0}")]
    Server(#[from] mysql_async::Error),
    #[error("the server cannot give a change stream: {0}")]
    Settings(String),
    #[error("not a GTID position: '{0}'")]
    Position(String),
    #[error("binlog event: {0}")]
    Event(String),
    #[error("lost the server for {secs} s, the longest a stream waits: {error}")]
    Lost {
        secs: u64,
        error: mysql_async::Error,
    },
}
