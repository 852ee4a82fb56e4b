//! The one place MySQL error codes and SQLSTATEs are chosen for shardgate's own errors. Backend
//! server errors keep theirs.

use engine::EngineError;
use frontend::SqlError;
use planner::PlanError;

pub const ER_NOT_SUPPORTED_YET: u16 = 1235;
pub const ER_UNKNOWN_ERROR: u16 = 1105;

/// A statement shardgate recognises but cannot run yet.
pub fn unsupported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        ER_NOT_SUPPORTED_YET,
        "42000",
        format!("This version of shardgate doesn't yet support '{what}'"),
    )
}

pub fn syntax(detail: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        1064,
        "42000",
        format!("You have an error in your SQL syntax: {detail}"),
    )
}

/// A statement the parser refused: MySQL's syntax error, or 1235 naming a valid shape the parser
/// does not read.
pub fn unparsed(sql: &str, detail: impl std::fmt::Display) -> SqlError {
    match planner::unparsed_shape(sql) {
        Some(shape) => unsupported(shape),
        None => syntax(detail),
    }
}

/// COM_STMT_EXECUTE with values that do not fit its statement.
pub fn wrong_arguments() -> SqlError {
    SqlError::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")
}

pub fn unknown_statement(id: u32) -> SqlError {
    SqlError::new(
        1243,
        "HY000",
        format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
    )
}

pub fn too_many_placeholders() -> SqlError {
    SqlError::new(
        1390,
        "HY000",
        "Prepared statement contains too many placeholders",
    )
}

/// An internal inconsistency: reported, never a panic.
pub fn bug(what: &str) -> SqlError {
    SqlError::new(1105, "HY000", format!("[BUG] {what}"))
}

pub fn empty_query() -> SqlError {
    SqlError::new(1065, "42000", "Query was empty")
}

/// ER_DBACCESS_DENIED_ERROR: a keyspace the user is not given.
pub fn access_denied(user: &str, keyspace: &str) -> SqlError {
    SqlError::new(
        1044,
        "42000",
        format!("Access denied for user '{user}'@'%' to database '{keyspace}'"),
    )
}

/// ER_OPTION_PREVENTS_STATEMENT: a write by a read-only user.
pub fn read_only() -> SqlError {
    SqlError::new(
        1290,
        "HY000",
        "The MySQL server is running with the --read-only option so it cannot execute this statement",
    )
}

/// ER_CON_COUNT_ERROR: server.max_connections reached.
pub fn too_many_connections() -> SqlError {
    SqlError::new(1040, "08004", "Too many connections")
}

/// ER_USER_LIMIT_REACHED: the user's max_connections reached.
pub fn user_limit(user: &str, limit: usize) -> SqlError {
    SqlError::new(
        1226,
        "42000",
        format!("User '{user}' has exceeded the 'max_user_connections' resource (current value: {limit})"),
    )
}

/// ER_QUERY_TIMEOUT: server.query_timeout_ms passed; the backend queries were killed.
pub fn query_timeout() -> SqlError {
    SqlError::new(
        3024,
        "HY000",
        "Query execution was interrupted, maximum statement execution time exceeded",
    )
}

/// ER_LOCK_DEADLOCK: the transaction was rolled back to break a deadlock.
pub const ER_LOCK_DEADLOCK: u16 = 1213;

/// A deadlock across shards broke by rolling this session's transaction back, in MySQL's words.
pub fn deadlock() -> SqlError {
    SqlError::new(
        ER_LOCK_DEADLOCK,
        "40001",
        "Deadlock found when trying to get lock; try restarting transaction",
    )
}

/// ER_QUERY_INTERRUPTED: the statement was given up, and nothing of it was kept.
pub fn interrupted(why: &str) -> SqlError {
    SqlError::new(
        1317,
        "70100",
        format!("Query execution was interrupted: {why}"),
    )
}

/// A COMMIT given up on a shard that stopped answering while it committed.
pub fn commit_unknown(shard: &str, why: &str) -> SqlError {
    SqlError::new(
        1180,
        "HY000",
        format!("Got error during COMMIT: shard {shard}: {why}: the transaction may or may not have committed there"),
    )
}

/// The planner reads string literals with backslash escapes: under NO_BACKSLASH_ESCAPES it
/// would route and write lookup rows by other values than the shards store.
pub fn backslash_without_escapes() -> SqlError {
    unsupported("a backslash in a statement while sql_mode has NO_BACKSLASH_ESCAPES")
}

pub fn unknown_thread(id: u64) -> SqlError {
    SqlError::new(1094, "HY000", format!("Unknown thread id: {id}"))
}

pub fn not_thread_owner(id: u64) -> SqlError {
    SqlError::new(1095, "HY000", format!("You are not owner of thread {id}"))
}

pub fn wrong_value(variable: &str, value: &str) -> SqlError {
    SqlError::new(
        1231,
        "42000",
        format!("Variable '{variable}' can't be set to the value of '{value}'"),
    )
}

pub fn transaction_in_progress() -> SqlError {
    SqlError::new(
        1568,
        "25001",
        "Transaction characteristics can't be changed while a transaction is in progress",
    )
}

pub fn unknown_prepared(name: &str, statement: &str) -> SqlError {
    SqlError::new(
        1243,
        "HY000",
        format!("Unknown prepared statement handler ({name}) given to {statement}"),
    )
}

pub fn not_preparable() -> SqlError {
    SqlError::new(
        1295,
        "HY000",
        "This command is not supported in the prepared statement protocol yet",
    )
}

pub fn wrong_execute_arguments() -> SqlError {
    SqlError::new(1210, "HY000", "Incorrect arguments to EXECUTE")
}

pub fn unknown_savepoint(name: &str) -> SqlError {
    SqlError::new(1305, "42000", format!("SAVEPOINT {name} does not exist"))
}

pub fn no_database() -> SqlError {
    SqlError::new(1046, "3D000", "No database selected")
}

pub fn unknown_database(name: &str) -> SqlError {
    SqlError::new(1049, "42000", format!("Unknown database '{name}'"))
}

pub fn from_plan(e: PlanError) -> SqlError {
    match e {
        PlanError::Unsupported(what) => unsupported(what),
        PlanError::NoDatabase => no_database(),
        e @ PlanError::AmbiguousTable { .. } => SqlError::new(1046, "3D000", e.to_string()),
        PlanError::UnknownKeyspace(ks) => unknown_database(&ks),
        e @ PlanError::UnknownTable { .. } => SqlError::new(1146, "42S02", e.to_string()),
        e @ PlanError::MissingVindexColumn { .. } => SqlError::new(1364, "HY000", e.to_string()),
        e @ PlanError::NullVindexValue(_) => SqlError::new(1048, "23000", e.to_string()),
        PlanError::Vindex(e) => SqlError::new(1292, "22007", e.to_string()),
        e @ PlanError::AmbiguousColumn { .. } => SqlError::new(1052, "23000", e.to_string()),
        e @ PlanError::WrongValueCount(_) => SqlError::new(1136, "21S01", e.to_string()),
        // Loaded and asked for again at once: the shard's list is not usable.
        e @ PlanError::NeedColumns(_) => unsupported(e.to_string()),
    }
}

pub fn from_engine(e: &EngineError) -> SqlError {
    match e {
        EngineError::Server {
            shard,
            code,
            state,
            message,
        } => SqlError::new(*code, state, format!("shard {shard}: {message}")),
        EngineError::Backend { shard, message } => SqlError::new(
            1429,
            "HY000",
            format!("Unable to connect to foreign data source: shard {shard}: {message}"),
        ),
        EngineError::Lost { shard, message } => SqlError::new(
            ER_UNKNOWN_ERROR,
            "HY000",
            format!("shard {shard}: {message}: the statement's outcome on that shard is unknown"),
        ),
        EngineError::Vindex(v) => SqlError::new(1292, "22007", v.to_string()),
        EngineError::UnknownKeyspace(ks) => unknown_database(ks),
        EngineError::Client(e) => SqlError::new(1105, "HY000", format!("client connection: {e}")),
        EngineError::Unsupported(what) => unsupported(what),
        EngineError::TooManyRows(n) => SqlError::new(
            1038,
            "HY001",
            format!("Out of sort memory: the merge would hold more than {n} rows; raise server.max_buffered_rows or narrow the query"),
        ),
        EngineError::OutOfRange(what) => SqlError::new(1690, "22003", format!("Value out of range in {what}")),
        EngineError::Abandoned => SqlError::new(1105, "HY000", "[BUG] result abandoned"),
        e @ EngineError::Duplicate { .. } => SqlError::new(1062, "23000", e.to_string()),
        e @ EngineError::NullLookupValue(_) => SqlError::new(1048, "23000", e.to_string()),
        e @ EngineError::NotMapped { .. } => SqlError::new(1452, "23000", e.to_string()),
        EngineError::Commit(what) => SqlError::new(1180, "HY000", format!("Got error during COMMIT: {what}")),
        EngineError::Sequence(what) => SqlError::new(1467, "HY000", format!("Failed to read auto-increment value: {what}")),
        e @ EngineError::SubqueryRows => SqlError::new(1242, "21000", e.to_string()),
        e @ EngineError::SubqueryColumns(_) => SqlError::new(1241, "21000", e.to_string()),
        EngineError::Bug(what) => SqlError::new(1105, "HY000", format!("[BUG] {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(from_plan(PlanError::Unsupported("x".into())).code, 1235);
        assert_eq!(
            &from_plan(PlanError::Unsupported("x".into())).state,
            b"42000"
        );
        assert_eq!(from_plan(PlanError::NoDatabase).code, 1046);
        assert_eq!(
            from_plan(PlanError::UnknownTable {
                keyspace: "k".into(),
                table: "t".into()
            })
            .code,
            1146
        );
        let server = EngineError::Server {
            shard: "-80".into(),
            code: 1062,
            state: "23000".into(),
            message: "Duplicate entry".into(),
        };
        let e = from_engine(&server);
        assert_eq!(
            (e.code, &e.state, e.message.as_str()),
            (1062, b"23000", "shard -80: Duplicate entry")
        );
        // A state that is not five ASCII characters never panics.
        let odd = EngineError::Server {
            shard: "0".into(),
            code: 9999,
            state: "x".into(),
            message: String::new(),
        };
        assert_eq!(&from_engine(&odd).state, b"HY000");
    }
}
