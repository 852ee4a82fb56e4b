//! Where a stream stands: the transactions a server has written, as its flavour names them.
//! MariaDB gives each replication domain one sequence (`0-1-42,1-2-7`: domain-server-sequence,
//! the last transaction of each domain); MySQL keeps a set of intervals per server UUID
//! (`3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42:45`).

use std::collections::BTreeMap;
use std::fmt;

use crate::ChangeStreamError;

/// The server's kind, which decides how positions are written and how a stream is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl Flavor {
    /// From `SELECT VERSION()`.
    pub fn of_version(version: &str) -> Flavor {
        match version.contains("MariaDB") {
            true => Flavor::MariaDb,
            false => Flavor::MySql,
        }
    }

    /// The query that reads a server's current position: every transaction it has written.
    pub fn position_query(self) -> &'static str {
        match self {
            Flavor::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
            Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
        }
    }
}

/// One transaction's global id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gtid {
    MariaDb { domain: u32, server: u32, seq: u64 },
    MySql { uuid: [u8; 16], gno: u64 },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MariaDb {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
            Gtid::MySql { uuid, gno } => write!(f, "{}:{gno}", uuid_text(uuid)),
        }
    }
}

/// The transactions a stream has passed: it resumes after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Each domain's last transaction: (server, sequence).
    MariaDb(BTreeMap<u32, (u32, u64)>),
    /// Each server UUID's transactions, as inclusive intervals in order.
    MySql(BTreeMap<[u8; 16], Vec<(u64, u64)>>),
}

impl Position {
    /// No transaction at all: a stream from here starts at the oldest binlog the server keeps.
    pub fn empty(flavor: Flavor) -> Position {
        match flavor {
            Flavor::MariaDb => Position::MariaDb(BTreeMap::new()),
            Flavor::MySql => Position::MySql(BTreeMap::new()),
        }
    }

    pub fn flavor(&self) -> Flavor {
        match self {
            Position::MariaDb(_) => Flavor::MariaDb,
            Position::MySql(_) => Flavor::MySql,
        }
    }

    /// Reads a position as the server writes it (`@@gtid_binlog_pos`, `@@gtid_executed`).
    pub fn parse(flavor: Flavor, text: &str) -> Result<Position, ChangeStreamError> {
        let bad = || ChangeStreamError::Position(text.to_string());
        let mut position = Position::empty(flavor);
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match &mut position {
                Position::MariaDb(domains) => {
                    let mut fields = part.split('-').map(str::parse::<u64>);
                    let (Some(Ok(domain)), Some(Ok(server)), Some(Ok(seq)), None) =
                        (fields.next(), fields.next(), fields.next(), fields.next())
                    else {
                        return Err(bad());
                    };
                    let domain = u32::try_from(domain).map_err(|_| bad())?;
                    let server = u32::try_from(server).map_err(|_| bad())?;
                    domains.insert(domain, (server, seq));
                }
                Position::MySql(sets) => {
                    let mut fields = part.split(':');
                    let uuid = fields.next().and_then(parse_uuid).ok_or_else(bad)?;
                    let intervals = sets.entry(uuid).or_default();
                    for interval in fields {
                        let (start, end) = match interval.split_once('-') {
                            Some((a, b)) => (a.parse(), b.parse()),
                            None => (interval.parse(), interval.parse()),
                        };
                        let (Ok(start), Ok(end)) = (start, end) else {
                            return Err(bad());
                        };
                        if start == 0 || end < start {
                            return Err(bad());
                        }
                        add_interval(intervals, start, end);
                    }
                }
            }
        }
        Ok(position)
    }

    /// Counts `gtid` as passed.
    pub fn advance(&mut self, gtid: Gtid) {
        match (self, gtid) {
            (
                Position::MariaDb(domains),
                Gtid::MariaDb {
                    domain,
                    server,
                    seq,
                },
            ) => {
                domains.insert(domain, (server, seq));
            }
            (Position::MySql(sets), Gtid::MySql { uuid, gno }) => {
                add_interval(sets.entry(uuid).or_default(), gno, gno);
            }
            // A stream reads one server: its events carry its flavour's ids.
            _ => tracing::warn!(%gtid, "a GTID of the other flavour, ignored"),
        }
    }

    /// Whether this position includes every transaction `other` does.
    pub fn covers(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::MariaDb(a), Position::MariaDb(b)) => b
                .iter()
                .all(|(d, (_, seq))| a.get(d).is_some_and(|(_, mine)| mine >= seq)),
            (Position::MySql(a), Position::MySql(b)) => b.iter().all(|(uuid, wanted)| {
                let have = a.get(uuid).map(Vec::as_slice).unwrap_or(&[]);
                wanted
                    .iter()
                    .all(|&(s, e)| have.iter().any(|&(hs, he)| hs <= s && e <= he))
            }),
            _ => false,
        }
    }
}

/// Adds `start..=end` to sorted, disjoint, non-adjacent intervals.
fn add_interval(intervals: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    intervals.push((start, end));
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(s, e) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *intervals = merged;
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut uuid = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).ok()?;
        uuid[i] = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(uuid)
}

fn uuid_text(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = match self {
            Position::MariaDb(domains) => domains
                .iter()
                .map(|(d, (server, seq))| format!("{d}-{server}-{seq}"))
                .collect(),
            Position::MySql(sets) => sets
                .iter()
                .map(|(uuid, intervals)| {
                    let mut s = uuid_text(uuid);
                    for (a, b) in intervals {
                        match a == b {
                            true => s.push_str(&format!(":{a}")),
                            false => s.push_str(&format!(":{a}-{b}")),
                        }
                    }
                    s
                })
                .collect(),
        };
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_positions_keep_each_domains_last_transaction() {
        let mut p = Position::parse(Flavor::MariaDb, "0-1-42, 1-2-7").unwrap();
        p.advance(Gtid::MariaDb {
            domain: 0,
            server: 3,
            seq: 43,
        });
        p.advance(Gtid::MariaDb {
            domain: 5,
            server: 3,
            seq: 1,
        });
        assert_eq!(p.to_string(), "0-3-43,1-2-7,5-3-1");
        let old = Position::parse(Flavor::MariaDb, "0-1-42").unwrap();
        assert!(p.covers(&old) && !old.covers(&p));
        assert_eq!(
            Position::parse(Flavor::MariaDb, "").unwrap().to_string(),
            ""
        );
        assert!(Position::parse(Flavor::MariaDb, "0-1").is_err());
        assert!(Position::parse(Flavor::MariaDb, "0-1-x").is_err());
    }

    #[test]
    fn mysql_positions_are_interval_sets() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut p = Position::parse(Flavor::MySql, &format!("{uuid}:1-5:7")).unwrap();
        assert_eq!(p.to_string(), format!("{uuid}:1-5:7"));
        let Position::MySql(sets) = &p else { panic!() };
        let id = *sets.keys().next().unwrap();
        p.advance(Gtid::MySql { uuid: id, gno: 6 });
        assert_eq!(p.to_string(), format!("{uuid}:1-7"));
        p.advance(Gtid::MySql { uuid: id, gno: 9 });
        assert_eq!(p.to_string(), format!("{uuid}:1-7:9"));
        let part = Position::parse(Flavor::MySql, &format!("{uuid}:2-4")).unwrap();
        assert!(p.covers(&part) && !part.covers(&p));
        assert!(Position::parse(Flavor::MySql, &format!("{uuid}:0-3")).is_err());
        assert!(Position::parse(Flavor::MySql, "nonsense:1").is_err());
    }
}
