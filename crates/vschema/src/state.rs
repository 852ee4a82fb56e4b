//! The state file beside a config: the shards whose primary is no longer the one the config
//! names (after a reparent or a failover), so that a restart or a reload keeps the current
//! primaries. Without it, a restarted proxy would write to a demoted server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{BackendAddr, ConfigError, Shard, VSchema};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// `keyspace/shard` → `host:port` of its current primary.
    #[serde(default)]
    primaries: BTreeMap<String, String>,
    /// `keyspace` → its VSchema (`vindexes` and `tables`, TOML) as a deploy request set it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    vschemas: BTreeMap<String, String>,
    /// `keyspace` → the shards that serve it, as a reshard switched it (the others of its
    /// `shards` and `spare_shards` are spare).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    serving: BTreeMap<String, Vec<String>>,
}

const HEADER: &str =
    "# Written by shardgate when a shard's primary changes (reparent, failover), or a deploy\n\
# request changes a keyspace's VSchema, or a reshard switches a keyspace to other shards. Each\n\
# shard named here has this primary, whatever the config says; the other servers of its group\n\
# are its replicas. Each keyspace under vschemas has these vindexes and tables; each under\n\
# serving is served by these shards. Delete a line (or the file) to go back to the config.\n";

/// `shardgate.toml` → `shardgate.state.toml`.
pub fn state_path(config: &Path) -> PathBuf {
    config.with_extension("state.toml")
}

fn read(config: &Path) -> Result<State, ConfigError> {
    let file = state_path(config);
    let err = |message: String| ConfigError {
        file: file.clone(),
        line: None,
        key: String::new(),
        message,
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => toml::from_str(&text).map_err(|e| err(e.message().trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(err(format!("cannot read the state file: {e}"))),
    }
}

/// `vschema` with the primaries the state file beside `config` records.
pub(crate) fn apply(config: &Path, vschema: VSchema) -> Result<VSchema, ConfigError> {
    let state = read(config)?;
    let mut vschema = vschema;
    for (keyspace, shards) in state.serving {
        vschema = vschema
            .with_serving(&keyspace, &shards)
            .map_err(|message| ConfigError {
                file: state_path(config),
                line: None,
                key: format!("serving.{keyspace}"),
                message,
            })?;
    }
    for (shard, primary) in state.primaries {
        let (ks, name) = shard.split_once('/').unwrap_or((&shard, ""));
        vschema = vschema
            .with_primary(ks, name, &primary)
            .map_err(|message| ConfigError {
                file: state_path(config),
                line: None,
                key: format!("primaries.\"{shard}\""),
                message,
            })?;
    }
    Ok(vschema)
}

/// Keyspace `keyspace`'s VSchema (`vindexes` and `tables`, TOML) as the config at `config`
/// and the state file beside it give it.
pub fn current_vschema(config: &Path, keyspace: &str) -> Result<String, ConfigError> {
    if let Some(fragment) = read(config)?.vschemas.remove(keyspace) {
        return Ok(fragment);
    }
    let text = std::fs::read_to_string(config).map_err(|e| ConfigError {
        file: config.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!("cannot read config: {e}"),
    })?;
    crate::keyspace_vschema_toml(&text, keyspace, config)
}

/// The keyspaces' VSchemas the state file beside `config` records.
pub(crate) fn vschemas(config: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    Ok(read(config)?.vschemas)
}

/// Records `primary` as the primary of `keyspace/shard` in the state file beside `config`
/// (written whole to a new file, then renamed over the old one).
pub fn record_primary(
    config: &Path,
    keyspace: &str,
    shard: &str,
    primary: &BackendAddr,
) -> Result<(), ConfigError> {
    let mut state = read(config)?;
    state.primaries.insert(
        format!("{keyspace}/{shard}"),
        format!("{}:{}", primary.host, primary.port),
    );
    write(config, &state)
}

/// Records `shards` as the shards that serve `keyspace` in the state file beside `config`;
/// `None` goes back to the config's.
pub fn record_serving(
    config: &Path,
    keyspace: &str,
    shards: Option<&[String]>,
) -> Result<(), ConfigError> {
    let mut state = read(config)?;
    match shards {
        Some(s) => state.serving.insert(keyspace.to_string(), s.to_vec()),
        None => state.serving.remove(keyspace),
    };
    write(config, &state)
}

/// Records `fragment` as keyspace `keyspace`'s VSchema in the state file beside `config`;
/// `None` goes back to the config's.
pub fn record_vschema(
    config: &Path,
    keyspace: &str,
    fragment: Option<&str>,
) -> Result<(), ConfigError> {
    let mut state = read(config)?;
    match fragment {
        Some(f) => state.vschemas.insert(keyspace.to_string(), f.to_string()),
        None => state.vschemas.remove(keyspace),
    };
    write(config, &state)
}

fn write(config: &Path, state: &State) -> Result<(), ConfigError> {
    let file = state_path(config);
    let err = |e: std::io::Error| ConfigError {
        file: file.clone(),
        line: None,
        key: String::new(),
        message: format!("cannot write the state file: {e}"),
    };
    let text = toml::to_string(state).map_err(|e| err(std::io::Error::other(e)))?;
    let new = file.with_extension("toml.new");
    std::fs::write(&new, format!("{HEADER}{text}")).map_err(err)?;
    std::fs::rename(&new, &file).map_err(err)
}

/// The database that holds `database`'s tables on branch `branch`, beside it on each server.
pub fn branch_database(database: &str, branch: &str) -> String {
    format!("{database}__{branch}")
}

impl VSchema {
    /// This topology with keyspace `keyspace`'s tables (and so its vindexes) as `from` has
    /// them.
    pub fn with_tables(&self, keyspace: &str, from: &VSchema) -> VSchema {
        let mut out = self.clone();
        if let (Some(ks), Some(theirs)) = (out.keyspaces.get_mut(keyspace), from.keyspace(keyspace))
        {
            ks.tables = theirs.tables.clone();
        }
        out
    }

    /// The same keyspaces, shards and tables, served from branch `branch`'s databases on the
    /// primaries (a branch has no replicas).
    pub fn for_branch(&self, branch: &str) -> VSchema {
        let mut out = self.clone();
        for ks in out.keyspaces.values_mut() {
            for shard in &mut ks.shards {
                shard.primary.database = branch_database(&shard.primary.database, branch);
                shard.replicas.clear();
            }
        }
        out
    }

    /// This topology with `to` (`host:port` of one of the shard's servers) as the primary of
    /// `keyspace/shard`, and the old primary last among its replicas. Unchanged when `to` is
    /// the primary already.
    pub fn with_primary(&self, keyspace: &str, shard: &str, to: &str) -> Result<VSchema, String> {
        let mut out = self.clone();
        let Some(s) = out.keyspaces.get_mut(keyspace).and_then(|ks| {
            (ks.shards.iter_mut())
                .chain(&mut ks.spare_shards)
                .find(|s| s.name == shard)
        }) else {
            return Err(format!("no shard {keyspace}/{shard} in the config"));
        };
        let at = |a: &BackendAddr| format!("{}:{}", a.host, a.port) == to;
        if at(&s.primary) {
            return Ok(out);
        }
        let Some(i) = s.replicas.iter().position(at) else {
            return Err(format!(
                "{to} is neither the primary nor a replica of {keyspace}/{shard} in the config"
            ));
        };
        let new = s.replicas.remove(i);
        let old = std::mem::replace(&mut s.primary, new);
        s.replicas.push(old);
        Ok(out)
    }

    /// The names of the shards serving `keyspace` (none when there is no such keyspace).
    pub fn serving(&self, keyspace: &str) -> Vec<String> {
        (self.keyspace(keyspace))
            .map(|k| k.shards.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default()
    }

    /// This topology with `names` (of its `shards` or `spare_shards`) serving `keyspace`, the
    /// others spare. They must tile the keyspace.
    pub fn with_serving(&self, keyspace: &str, names: &[String]) -> Result<VSchema, String> {
        let mut out = self.clone();
        let ks = out
            .keyspaces
            .get_mut(keyspace)
            .ok_or_else(|| format!("no keyspace {keyspace} in the config"))?;
        let mut all: Vec<Shard> = ks
            .shards
            .drain(..)
            .chain(ks.spare_shards.drain(..))
            .collect();
        let mut serving = Vec::new();
        for name in names {
            let i = all.iter().position(|s| &s.name == name).ok_or_else(|| {
                format!("no shard {keyspace}/{name} among its shards and spare_shards")
            })?;
            serving.push(all.remove(i));
        }
        let pairs: Vec<(&str, &crate::KeyRange)> = serving
            .iter()
            .map(|s| (s.name.as_str(), &s.range))
            .collect();
        let order = crate::keyrange::check_tiling(&pairs)
            .map_err(|e| format!("shards must tile the key space: {e}"))?;
        if !ks.sharded && serving.len() != 1 {
            return Err("an unsharded keyspace has exactly one shard".into());
        }
        ks.shards = order.into_iter().map(|i| serving[i].clone()).collect();
        ks.spare_shards = all;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[keyspaces.shop]
sharded = true
shards = [
  { name = "-80", primary = "mysql://root@127.0.0.1:3301/shop", replicas = ["mysql://root@127.0.0.1:3302/shop", "mysql://root@127.0.0.1:3303/shop"] },
  { name = "80-", primary = "mysql://root@127.0.0.1:3304/shop" },
]
vindexes.hash = { type = "hash" }
tables.items = { primary_vindex = { column = "id", vindex = "hash" } }
"#;

    fn ports(vschema: &VSchema) -> (u16, Vec<u16>) {
        let shard = &vschema.keyspace("shop").unwrap().shards[0];
        (
            shard.primary.port,
            shard.replicas.iter().map(|r| r.port).collect(),
        )
    }

    #[test]
    fn a_recorded_primary_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardgate.toml");
        std::fs::write(&path, CONFIG).unwrap();
        assert_eq!(
            ports(&crate::load_config(&path).unwrap().vschema),
            (3301, vec![3302, 3303])
        );

        let vschema = crate::load_config(&path).unwrap().vschema;
        let promoted = vschema
            .with_primary("shop", "-80", "127.0.0.1:3303")
            .unwrap();
        assert_eq!(ports(&promoted), (3303, vec![3302, 3301]));
        let primary = promoted.keyspace("shop").unwrap().shards[0].primary.clone();
        record_primary(&path, "shop", "-80", &primary).unwrap();
        assert_eq!(
            ports(&crate::load_config(&path).unwrap().vschema),
            (3303, vec![3302, 3301])
        );

        // Back to the first: the config's order again.
        let first = promoted
            .with_primary("shop", "-80", "127.0.0.1:3301")
            .unwrap();
        assert_eq!(ports(&first), (3301, vec![3302, 3303]));
        assert!(vschema
            .with_primary("shop", "-80", "127.0.0.1:3304")
            .is_err());
        assert!(vschema
            .with_primary("shop", "nope", "127.0.0.1:3301")
            .is_err());

        // A state file naming a server the config no longer has stops the load, naming it.
        std::fs::write(
            state_path(&path),
            "[primaries]\n\"shop/-80\" = \"127.0.0.1:9999\"\n",
        )
        .unwrap();
        let e = crate::load_config(&path).unwrap_err().to_string();
        assert!(
            e.contains("shardgate.state.toml") && e.contains("127.0.0.1:9999"),
            "{e}"
        );
    }

    #[test]
    fn a_recorded_switch_to_spare_shards_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardgate.toml");
        let spare = r#"spare_shards = [
  { name = "-40", primary = "mysql://root@127.0.0.1:3311/shop" },
  { name = "40-80", primary = "mysql://root@127.0.0.1:3312/shop" },
]
"#;
        let config = CONFIG.replace("vindexes.hash", &format!("{spare}vindexes.hash"));
        std::fs::write(&path, &config).unwrap();
        let names = |v: &VSchema| -> (Vec<String>, Vec<String>) {
            let ks = v.keyspace("shop").unwrap();
            let n = |s: &[Shard]| s.iter().map(|s| s.name.clone()).collect();
            (n(&ks.shards), n(&ks.spare_shards))
        };
        let loaded = crate::load_config(&path).unwrap().vschema;
        assert_eq!(names(&loaded).1, ["-40", "40-80"]);

        let to: Vec<String> = ["80-", "-40", "40-80"].map(String::from).to_vec();
        record_serving(&path, "shop", Some(&to)).unwrap();
        let switched = crate::load_config(&path).unwrap().vschema;
        // In key order; the one left out is spare.
        assert_eq!(
            names(&switched),
            (
                vec!["-40".into(), "40-80".into(), "80-".into()],
                vec!["-80".into()]
            )
        );
        // A spare shard keeps its recorded primary.
        let e = switched
            .with_primary("shop", "-80", "127.0.0.1:3303")
            .unwrap();
        assert_eq!(
            e.keyspace("shop").unwrap().spare_shards[0].primary.port,
            3303
        );

        // Shards that leave a gap, or one not configured, are refused.
        let gap: Vec<String> = ["-40", "80-"].map(String::from).to_vec();
        assert!(loaded
            .with_serving("shop", &gap)
            .unwrap_err()
            .contains("tile"));
        let unknown: Vec<String> = ["-"].map(String::from).to_vec();
        assert!(loaded.with_serving("shop", &unknown).is_err());

        record_serving(&path, "shop", None).unwrap();
        assert_eq!(
            names(&crate::load_config(&path).unwrap().vschema),
            names(&loaded)
        );

        // The same name in both lists is refused.
        let twice = config.replace("name = \"-40\"", "name = \"-80\"");
        std::fs::write(&path, twice).unwrap();
        let e = crate::load_config(&path).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }
}
