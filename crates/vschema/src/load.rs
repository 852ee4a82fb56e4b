//! Raw config → validated [`Config`]. Every error names the file, the line and the key path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use crate::keyrange::{check_tiling, KeyRange};
use crate::raw::{RawConfig, RawKeyspace, VitessKeyspace};
use crate::vindex::{MultiColumn, Vindex, VindexKind};
use crate::{
    parse_native_hash, AutoIncrement, BackendAddr, BackendTls, Config, ConfigError, Keyspace,
    LookupColumn, LookupType, LookupVindex, PoolSize, Secret, SequenceRef, ServerConfig, Shard,
    Table, TlsFiles, User, VSchema,
};

const DEFAULT_MAX_PACKET: usize = 64 << 20;
const DEFAULT_MAX_BUFFERED_ROWS: usize = 100_000;
const DEFAULT_PLAN_CACHE_SIZE: usize = 10_000;
const DEFAULT_SLOW_QUERY_MS: u64 = 1_000;
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// MySQL's wait_timeout: eight hours.
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 8 * 3600 * 1000;
const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_DEADLOCK_CHECK_MS: u64 = 100;
/// A day: long enough to notice a bad schema change and revert it.
const DEFAULT_MIGRATION_RETENTION_S: u64 = 86_400;

/// `${NAME}` in a backend address replaced by the environment variable's value, so that
/// passwords need not be in the file. Returns the name of a variable that is not set.
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        out.push_str(&std::env::var(name).map_err(|_| name.to_string())?);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads and validates a TOML config file. A missing file is an error, never a default.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!("cannot read config: {e}"),
    })?;
    // The keyspaces' VSchemas that deploy requests changed, recorded beside the config.
    let mut text = text;
    for (keyspace, fragment) in crate::state::vschemas(path)? {
        text = with_keyspace_vschema(&text, &keyspace, &fragment, &crate::state_path(path))?;
    }
    let mut config = parse_config(&text, path)?;
    // The primaries changed since (reparent, failover), recorded beside the config; proxies
    // that share their topology keep them in etcd instead.
    if config.topology.is_none() {
        let current = crate::state::apply(path, (*config.vschema).clone())?;
        config.vschema = Arc::new(current);
    }
    Ok(config)
}

fn keyspaces_error(path: &Path) -> impl Fn(String) -> ConfigError + '_ {
    move |message| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: "keyspaces".into(),
        message,
    }
}

/// The `[keyspaces]` of config text, as a TOML document of its own (what proxies sharing a
/// topology keep in etcd).
pub fn keyspaces_toml(text: &str, path: &Path) -> Result<String, ConfigError> {
    let err = keyspaces_error(path);
    let mut table: toml::Table = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
    let mut only = toml::Table::new();
    if let Some(keyspaces) = table.remove("keyspaces") {
        only.insert("keyspaces".into(), keyspaces);
    }
    toml::to_string(&only).map_err(|e| err(e.to_string()))
}

/// The `vindexes` and `tables` of keyspace `keyspace` in config text, as a TOML document of its
/// own: the keyspace's VSchema, as a branch changes it.
pub fn keyspace_vschema_toml(
    text: &str,
    keyspace: &str,
    path: &Path,
) -> Result<String, ConfigError> {
    let err = keyspaces_error(path);
    let table: toml::Table = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
    let ks = table
        .get("keyspaces")
        .and_then(|k| k.get(keyspace))
        .and_then(|k| k.as_table())
        .ok_or_else(|| err(format!("no keyspace {keyspace}")))?;
    let mut only = toml::Table::new();
    for key in ["vindexes", "tables"] {
        if let Some(v) = ks.get(key) {
            only.insert(key.into(), v.clone());
        }
    }
    toml::to_string(&only).map_err(|e| err(e.to_string()))
}

/// Config text whose keyspace `keyspace` has the `vindexes` and `tables` of `fragment` (a
/// TOML document with those two keys only) instead of its own. Validate it with
/// [`parse_config`].
pub fn with_keyspace_vschema(
    text: &str,
    keyspace: &str,
    fragment: &str,
    path: &Path,
) -> Result<String, ConfigError> {
    let err = |message: String| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: format!("keyspaces.{keyspace}"),
        message,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
    let fragment: toml::Table = toml::from_str(fragment)
        .map_err(|e| err(format!("the VSchema: {}", e.message().trim())))?;
    if let Some(other) = fragment
        .keys()
        .find(|k| !matches!(k.as_str(), "vindexes" | "tables"))
    {
        return Err(err(format!(
            "the VSchema has {other}: only vindexes and tables are a keyspace's VSchema"
        )));
    }
    let ks = table
        .get_mut("keyspaces")
        .and_then(|k| k.get_mut(keyspace))
        .and_then(|k| k.as_table_mut())
        .ok_or_else(|| err(format!("no keyspace {keyspace}")))?;
    if ks.contains_key("vschema_json") {
        return Err(err(
            "a keyspace whose VSchema is a Vitess vschema_json file".into(),
        ));
    }
    ks.remove("vindexes");
    ks.remove("tables");
    ks.extend(fragment);
    toml::to_string(&table).map_err(|e| err(e.to_string()))
}

/// Config text with its `[keyspaces]` replaced by `keyspaces` (from [`keyspaces_toml`]),
/// validated.
pub fn parse_with_keyspaces(
    text: &str,
    keyspaces: &str,
    path: &Path,
) -> Result<Config, ConfigError> {
    let err = keyspaces_error(path);
    let mut table: toml::Table = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
    let shared: toml::Table = toml::from_str(keyspaces)
        .map_err(|e| err(format!("the shared keyspaces: {}", e.message())))?;
    table.remove("keyspaces");
    if let Some(k) = shared.get("keyspaces") {
        table.insert("keyspaces".into(), k.clone());
    }
    let merged = toml::to_string(&table).map_err(|e| err(e.to_string()))?;
    parse_config(&merged, path)
}

/// Validates config text; `path` names the file in errors and anchors relative paths.
pub fn parse_config(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        file: path.to_path_buf(),
        text,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        file: ctx.file.clone(),
        line: e.span().map(|s| ctx.line_of(s.start)),
        key: String::new(),
        message: e.message().trim().to_string(),
    })?;

    let listen = raw.server.listen.get_ref();
    if listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(ctx.err(
            &raw.server.listen,
            "server.listen",
            format!("{listen:?} is not a host:port address"),
        ));
    }
    if let Some(admin) = &raw.server.admin {
        if admin.get_ref().parse::<std::net::SocketAddr>().is_err() {
            return Err(ctx.err(
                admin,
                "server.admin",
                format!("{:?} is not a host:port address", admin.get_ref()),
            ));
        }
    }
    let server = ServerConfig {
        listen: listen.clone(),
        admin: raw.server.admin.as_ref().map(|a| a.get_ref().clone()),
        max_packet_size: raw.server.max_packet_size.unwrap_or(DEFAULT_MAX_PACKET),
        max_buffered_rows: raw
            .server
            .max_buffered_rows
            .unwrap_or(DEFAULT_MAX_BUFFERED_ROWS),
        plan_cache_size: raw
            .server
            .plan_cache_size
            .unwrap_or(DEFAULT_PLAN_CACHE_SIZE),
        query_log: raw.server.query_log.unwrap_or(false),
        tls: match (&raw.server.tls_cert, &raw.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let dir = ctx.file.parent().unwrap_or(Path::new("."));
                Some(TlsFiles {
                    cert: dir.join(cert.get_ref()),
                    key: dir.join(key.get_ref()),
                })
            }
            (Some(one), None) | (None, Some(one)) => {
                return Err(ctx.err(
                    one,
                    "server",
                    "give both tls_cert and tls_key, or neither".into(),
                ))
            }
        },
        max_connections: raw
            .server
            .max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        query_timeout_ms: raw.server.query_timeout_ms.unwrap_or(0),
        idle_timeout_ms: raw
            .server
            .idle_timeout_ms
            .unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
        slow_query_ms: raw.server.slow_query_ms.unwrap_or(DEFAULT_SLOW_QUERY_MS),
        shutdown_timeout_ms: raw
            .server
            .shutdown_timeout_ms
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_MS),
        deadlock_check_ms: raw
            .server
            .deadlock_check_ms
            .unwrap_or(DEFAULT_DEADLOCK_CHECK_MS),
        online_ddl: match &raw.server.ddl_strategy {
            None => false,
            Some(s) => match s.get_ref().to_ascii_lowercase().as_str() {
                "direct" => false,
                "online" => true,
                other => {
                    return Err(ctx.err(
                        s,
                        "server.ddl_strategy",
                        format!("{other:?} is not direct or online"),
                    ))
                }
            },
        },
        migration_retention_s: raw
            .server
            .migration_retention_s
            .unwrap_or(DEFAULT_MIGRATION_RETENTION_S),
        migration_copy_rate: raw.server.migration_copy_rate.unwrap_or(0),
    };

    let mut users = Vec::new();
    let default_target = match &raw.server.read_target {
        None => crate::ReadTarget::Primary,
        Some(t) => crate::ReadTarget::parse(t.get_ref()).ok_or_else(|| {
            ctx.err(
                t,
                "server.read_target",
                format!("{:?} is not primary, replica or replica_only", t.get_ref()),
            )
        })?,
    };
    for (i, user) in raw.users.iter().enumerate() {
        let u = user.get_ref();
        if u.name.is_empty() {
            return Err(ctx.err(
                user,
                &format!("users[{i}].name"),
                "user name is empty".into(),
            ));
        }
        if users.iter().any(|x: &User| x.name == u.name) {
            return Err(ctx.err(
                user,
                &format!("users[{i}].name"),
                format!("user {:?} is defined twice", u.name),
            ));
        }
        let given = [
            u.password.is_some(),
            u.password_hash.is_some(),
            u.password_sha2.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ctx.err(
                user,
                &format!("users[{i}]"),
                "give one of password, password_hash and password_sha2".into(),
            ));
        }
        let secret = match (&u.password, &u.password_hash) {
            _ if u.password_sha2.is_some() => {
                let h = u.password_sha2.clone().unwrap_or_default();
                let well_formed = h.starts_with("$A$")
                    && h.len() == 70
                    && h.as_bytes()[6] == b'$'
                    && u32::from_str_radix(&h[3..6], 16).is_ok_and(|r| r > 0);
                if !well_formed {
                    return Err(ctx.err(
                        user,
                        &format!("users[{i}].password_sha2"),
                        "expected MySQL's caching_sha2_password hash: '$A$005$', a 20-byte salt and 43 characters".into(),
                    ));
                }
                Secret::Sha2Hash(h)
            }
            (Some(p), _) => Secret::Password(p.clone()),
            (None, Some(h)) => Secret::NativeHash(parse_native_hash(h).ok_or_else(|| {
                ctx.err(
                    user,
                    &format!("users[{i}].password_hash"),
                    "expected MySQL's mysql_native_password hash: '*' and 40 hex digits".into(),
                )
            })?),
            (None, None) => Secret::Password(String::new()),
        };
        if let Some(known) = &u.keyspaces {
            if let Some(unknown) = known.iter().find(|k| !raw.keyspaces.contains_key(*k)) {
                return Err(ctx.err(
                    user,
                    &format!("users[{i}].keyspaces"),
                    format!("unknown keyspace {unknown:?}"),
                ));
            }
        }
        let read_target = match &u.read_target {
            None => default_target,
            Some(t) => crate::ReadTarget::parse(t).ok_or_else(|| {
                ctx.err(
                    user,
                    &format!("users[{i}].read_target"),
                    format!("{t:?} is not primary, replica or replica_only"),
                )
            })?,
        };
        users.push(User {
            name: u.name.clone(),
            read_target,
            secret,
            keyspaces: u.keyspaces.clone(),
            read_only: u.read_only.unwrap_or(false),
            require_tls: u.require_tls.unwrap_or(false),
            max_connections: u.max_connections.unwrap_or(0),
        });
    }

    let mut keyspaces = Vec::new();
    for (name, ks) in &raw.keyspaces {
        keyspaces.push(ctx.keyspace(name, ks)?);
    }
    resolve_sequences(&mut keyspaces, &ctx, &raw)?;
    resolve_lookup_tables(&mut keyspaces, |k| Some(k.name.as_str()))
        .map_err(|(key, message)| ctx_error(&ctx, key, message))?;
    check_lookups(&keyspaces, &ctx.file)?;
    check_unlisted(&keyspaces, &ctx, &raw)?;
    if keyspaces.is_empty() {
        return Err(ConfigError {
            file: ctx.file.clone(),
            line: None,
            key: "keyspaces".into(),
            message: "no keyspaces defined".into(),
        });
    }
    let topology = match raw.topology {
        Some(t) if t.etcd.is_empty() => {
            return Err(ConfigError {
                file: ctx.file.clone(),
                line: None,
                key: "topology.etcd".into(),
                message: "lists no etcd endpoint (host:port)".into(),
            })
        }
        Some(t) => Some(crate::SharedTopology {
            etcd: t.etcd,
            prefix: t
                .prefix
                .unwrap_or_else(|| "/shardgate".into())
                .trim_end_matches('/')
                .to_string(),
        }),
        None => None,
    };
    Ok(Config {
        server,
        users,
        vschema: Arc::new(VSchema::new(keyspaces)),
        topology,
    })
}

struct Ctx<'a> {
    file: PathBuf,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err<T>(&self, at: &Spanned<T>, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(self.line_of(at.span().start)),
            key: key.to_string(),
            message,
        }
    }

    fn keyspace(
        &self,
        name: &str,
        spanned: &Spanned<RawKeyspace>,
    ) -> Result<Keyspace, ConfigError> {
        let ks = spanned.get_ref();
        let key = format!("keyspaces.{name}");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(self.err(
                spanned,
                &key,
                format!("keyspace name {name:?} must be letters, digits and `_`"),
            ));
        }

        // Shards: parse names as key ranges, addresses as mysql:// URLs, then check the tiling.
        let mut shards = Vec::new();
        let spare_from = ks.shards.len();
        let listed = ks.shards.iter().map(|s| ("shards", s));
        let listed = listed
            .enumerate()
            .chain((ks.spare_shards.iter().enumerate()).map(|(i, s)| (i, ("spare_shards", s))));
        for (i, (list, s)) in listed {
            let s = s.get_ref();
            let shard_key = format!("{key}.{list}[{i}]");
            let range = KeyRange::parse(s.name.get_ref())
                .map_err(|e| self.err(&s.name, &format!("{shard_key}.name"), e.to_string()))?;
            let address = |spanned: &Spanned<String>, key: &str| {
                let url = expand_env(spanned.get_ref()).map_err(|name| {
                    self.err(
                        spanned,
                        key,
                        format!("environment variable {name} is not set"),
                    )
                })?;
                BackendAddr::parse(&url)
                    .map_err(|e| self.err(spanned, key, format!("malformed address: {e}")))
            };
            let primary = address(&s.primary, &format!("{shard_key}.primary"))?;
            let replicas = s
                .replicas
                .iter()
                .enumerate()
                .map(|(r, url)| address(url, &format!("{shard_key}.replicas[{r}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if shards.iter().any(|o: &Shard| &o.name == s.name.get_ref()) {
                return Err(self.err(
                    &s.name,
                    &format!("{shard_key}.name"),
                    format!("shard {} is listed twice", s.name.get_ref()),
                ));
            }
            shards.push(Shard {
                name: s.name.get_ref().clone(),
                range,
                primary,
                replicas,
            });
        }
        let spare_shards = shards.split_off(spare_from);
        let pairs: Vec<(&str, &KeyRange)> =
            shards.iter().map(|s| (s.name.as_str(), &s.range)).collect();
        let order = check_tiling(&pairs).map_err(|e| {
            self.err(
                spanned,
                &format!("{key}.shards"),
                format!("shards must tile the key space: {e}"),
            )
        })?;
        let shards: Vec<Shard> = order.into_iter().map(|i| shards[i].clone()).collect();

        let pool = match ks.pool {
            None => PoolSize::default(),
            Some(p) => {
                let d = PoolSize::default();
                let size = PoolSize {
                    min: p.min.unwrap_or(d.min),
                    max: p.max.unwrap_or(d.max),
                };
                if size.max == 0 || size.min > size.max {
                    return Err(self.err(
                        spanned,
                        &format!("{key}.pool"),
                        format!(
                            "pool needs 0 <= min <= max and max > 0, got min={} max={}",
                            size.min, size.max
                        ),
                    ));
                }
                size
            }
        };

        let (sharded, tables) = match &ks.vschema_json {
            Some(path) => {
                if ks.sharded.is_some() || !ks.vindexes.is_empty() || !ks.tables.is_empty() {
                    return Err(self.err(path, &format!("{key}.vschema_json"), "vschema_json replaces `sharded`, `vindexes` and `tables`; give one or the other".into()));
                }
                let json_path = self
                    .file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(path.get_ref());
                // A file of several keyspaces gives this one by name.
                let mut found = load_vitess_json(&json_path)?;
                let at = match found.as_slice() {
                    [one] if one.name.is_none() => 0,
                    _ => found
                        .iter()
                        .position(|k| k.name.as_deref() == Some(name))
                        .ok_or_else(|| {
                            let names: Vec<&str> =
                                found.iter().filter_map(|k| k.name.as_deref()).collect();
                            self.err(
                                path,
                                &format!("{key}.vschema_json"),
                                format!(
                                    "{} has no keyspace {name} (it has {})",
                                    json_path.display(),
                                    names.join(", ")
                                ),
                            )
                        })?,
                };
                let ks = found.swap_remove(at);
                (ks.sharded, ks.tables)
            }
            None => {
                let sharded = ks.sharded.ok_or_else(|| {
                    self.err(
                        spanned,
                        &format!("{key}.sharded"),
                        "missing `sharded = true|false`".into(),
                    )
                })?;
                (sharded, self.tables(&key, ks, sharded)?)
            }
        };
        if !sharded && shards.len() != 1 {
            return Err(self.err(
                spanned,
                &format!("{key}.shards"),
                format!(
                    "an unsharded keyspace has exactly one shard (named `0` or `-`), found {}",
                    shards.len()
                ),
            ));
        }
        let transaction_mode = match &ks.transaction_mode {
            Some(m) if ["single", "multi", "twopc"].contains(&m.get_ref().as_str()) => {
                Some(m.get_ref().clone())
            }
            Some(m) => {
                return Err(self.err(
                    m,
                    &format!("{key}.transaction_mode"),
                    format!(
                        "unknown transaction mode {:?} (single, multi or twopc)",
                        m.get_ref()
                    ),
                ))
            }
            None => None,
        };
        let ca = ks
            .backend_ca
            .as_ref()
            .map(|p| self.file.parent().unwrap_or(Path::new(".")).join(p));
        let backend_tls = match (ks.backend_tls.as_ref(), ca) {
            (None, _) => BackendTls::Disabled,
            (Some(mode), ca) => match (mode.get_ref().to_ascii_lowercase().as_str(), ca) {
                ("disabled", _) => BackendTls::Disabled,
                ("required", _) => BackendTls::Required,
                ("verify_ca", Some(ca)) => BackendTls::VerifyCa(ca),
                ("verify_identity", Some(ca)) => BackendTls::VerifyIdentity(ca),
                ("verify_ca" | "verify_identity", None) => {
                    return Err(self.err(
                        mode,
                        &format!("{key}.backend_tls"),
                        "verify_ca and verify_identity need backend_ca, the CA certificate".into(),
                    ))
                }
                (other, _) => {
                    return Err(self.err(
                        mode,
                        &format!("{key}.backend_tls"),
                        format!(
                        "unknown mode {other:?} (disabled, required, verify_ca or verify_identity)"
                    ),
                    ))
                }
            },
        };
        Ok(Keyspace {
            name: name.to_string(),
            sharded,
            shards,
            spare_shards,
            tables,
            pool,
            transaction_mode,
            max_replica_lag: ks
                .max_replica_lag_ms
                .map_or(crate::MAX_REPLICA_LAG, std::time::Duration::from_millis),
            failover_buffer: ks
                .failover_buffer_ms
                .map_or(crate::FAILOVER_BUFFER, std::time::Duration::from_millis),
            auto_failover: ks.auto_failover,
            backend_tls,
            unlisted_tables: ks.unlisted_tables.as_ref().map(|u| u.get_ref().clone()),
        })
    }

    fn tables(
        &self,
        key: &str,
        ks: &RawKeyspace,
        sharded: bool,
    ) -> Result<BTreeMap<String, Table>, ConfigError> {
        let mut vindexes = BTreeMap::new();
        let mut lookups = BTreeMap::new();
        for (vname, v) in &ks.vindexes {
            let kind_name = v.get_ref().kind.get_ref();
            if let Some(ty) = LookupType::of(kind_name) {
                let r = v.get_ref();
                let vkey = format!("{key}.vindexes.{vname}");
                let need = |field: &Option<String>, name: &str| {
                    field.clone().filter(|f| !f.is_empty()).ok_or_else(|| {
                        self.err(
                            v,
                            &format!("{vkey}.{name}"),
                            format!("a {kind_name} vindex needs `{name}`"),
                        )
                    })
                };
                let table = need(&r.table, "table")?;
                let (lks, ltable) = table.split_once('.').ok_or_else(|| {
                    self.err(
                        v,
                        &format!("{vkey}.table"),
                        "name the lookup table as keyspace.table".into(),
                    )
                })?;
                lookups.insert(
                    vname.clone(),
                    Arc::new(LookupVindex {
                        name: vname.clone(),
                        keyspace: lks.to_string(),
                        table: ltable.to_string(),
                        from: column_list(&need(&r.from, "from")?),
                        to: need(&r.to, "to")?,
                        unique: ty.unique,
                        consistent: ty.consistent,
                        to_holds: ty.to_holds,
                        write_only: false,
                        // Shardgate's own configs have always let a NULL go without a row.
                        ignore_nulls: true,
                        autocommit: false,
                        no_verify: false,
                    }),
                );
                continue;
            }
            let kind = VindexKind::parse(kind_name).ok_or_else(|| {
                self.err(
                    &v.get_ref().kind,
                    &format!("{key}.vindexes.{vname}.type"),
                    format!(
                        "unknown vindex type {kind_name:?} (supported: {})",
                        crate::vindex::SUPPORTED
                    ),
                )
            })?;
            if matches!(kind, VindexKind::Multicol | VindexKind::RegionJson) {
                return Err(self.err(&v.get_ref().kind, &format!("{key}.vindexes.{vname}.type"), format!("{kind_name} maps several columns: give the keyspace as a Vitess vschema.json (vschema_json = \"file.json\")")));
            }
            vindexes.insert(
                vname.clone(),
                Arc::new(Vindex {
                    static_map: static_map(
                        kind,
                        v.get_ref().json_path.as_deref(),
                        v.get_ref().json.as_deref(),
                        &self.file,
                    )
                    .map_err(|m| {
                        self.err(&v.get_ref().kind, &format!("{key}.vindexes.{vname}"), m)
                    })?,
                    ..Vindex::new(vname, kind)
                }),
            );
        }
        let mut tables = BTreeMap::new();
        for (tname, t) in &ks.tables {
            let tkey = format!("{key}.tables.{tname}");
            let raw = t.get_ref();
            let table = match (&raw.kind, &raw.primary_vindex) {
                (Some(kind), None) if kind.get_ref() == "reference" => Table::Reference,
                (Some(kind), None) if kind.get_ref() == "sequence" => {
                    if sharded {
                        return Err(self.err(kind, &format!("{tkey}.type"), "a sequence table lives in an unsharded keyspace".into()));
                    }
                    Table::Sequence
                }
                (Some(kind), _) => {
                    return Err(self.err(kind, &format!("{tkey}.type"), format!("unknown table type {:?} (known: reference, sequence)", kind.get_ref())))
                }
                (None, Some(pv)) => {
                    if !sharded {
                        return Err(self.err(pv, &format!("{tkey}.primary_vindex"), "a table of an unsharded keyspace has no vindex".into()));
                    }
                    let pv = pv.get_ref();
                    let vindex = vindexes.get(pv.vindex.get_ref()).ok_or_else(|| {
                        self.err(&pv.vindex, &format!("{tkey}.primary_vindex.vindex"), format!("unknown vindex {:?} for table {tname}", pv.vindex.get_ref()))
                    })?;
                    if pv.column.is_empty() {
                        return Err(self.err(t, &format!("{tkey}.primary_vindex.column"), "empty column name".into()));
                    }
                    let auto_increment = raw.auto_increment.as_ref().map(|a| auto_increment(&a.get_ref().column, &a.get_ref().sequence));
                    let mut columns = Vec::new();
                    for (i, sv) in raw.secondary_vindexes.iter().enumerate() {
                        let r = sv.get_ref();
                        let vindex = lookups.get(r.vindex.get_ref()).ok_or_else(|| {
                            self.err(&r.vindex, &format!("{tkey}.secondary_vindexes[{i}].vindex"), format!("unknown lookup vindex {:?} for table {tname}", r.vindex.get_ref()))
                        })?;
                        let lookup = LookupColumn { columns: column_list(&r.column), vindex: vindex.clone(), owned: true };
                        if lookup.columns.len() != vindex.from.len() {
                            return Err(self.err(sv, &format!("{tkey}.secondary_vindexes[{i}].column"), format!("lookup vindex {} maps {} columns ({}); name as many, comma-separated", vindex.name, vindex.from.len(), vindex.from.join(", "))));
                        }
                        columns.push(lookup);
                    }
                    Table::Sharded { column: pv.column.clone(), columns: Vec::new(), vindex: vindex.clone(), auto_increment, lookups: columns }
                }
                (None, None) if raw.auto_increment.is_some() => {
                    return Err(self.err(t, &format!("{tkey}.auto_increment"), "auto_increment is for sharded tables; an unsharded table uses MySQL's own AUTO_INCREMENT".into()))
                }
                (None, None) if !sharded => Table::Unsharded,
                (None, None) => {
                    return Err(self.err(t, &tkey, format!("table {tname} of a sharded keyspace needs a primary_vindex or type = \"reference\"")))
                }
            };
            tables.insert(tname.clone(), table);
        }
        Ok(tables)
    }
}

/// An auto-increment whose sequence is named `keyspace.table` or just `table` (the keyspace is
/// found once every keyspace is loaded).
fn auto_increment(column: &str, sequence: &str) -> AutoIncrement {
    let (keyspace, table) = sequence.split_once('.').unwrap_or(("", sequence));
    AutoIncrement {
        column: column.to_string(),
        sequence: SequenceRef {
            keyspace: keyspace.to_string(),
            table: table.to_string(),
        },
    }
}

/// Points every auto-increment at its sequence table: the named keyspace, or the one unsharded
/// keyspace declaring a sequence of that name.
/// `a, b` → `["a", "b"]`.
fn column_list(text: &str) -> Vec<String> {
    text.split(',').map(|c| c.trim().to_string()).collect()
}

fn ctx_error(ctx: &Ctx<'_>, key: String, message: String) -> ConfigError {
    ConfigError {
        file: ctx.file.clone(),
        line: None,
        key,
        message,
    }
}

/// Gives every lookup vindex whose table was named without a keyspace the one keyspace that
/// lists that table, as Vitess's global routing does; several are an error naming them. With no
/// such keyspace it stays unqualified (`check_lookups` then reports it, or, for one file read
/// alone, the config will resolve it).
fn resolve_lookup_tables<K>(
    keyspaces: &mut [K],
    name_of: impl Fn(&K) -> Option<&str>,
) -> Result<(), (String, String)>
where
    K: HasTables,
{
    let mut fixes = Vec::new();
    for (k, ks) in keyspaces.iter().enumerate() {
        for (tname, table) in ks.tables() {
            let Table::Sharded { lookups, .. } = table else {
                continue;
            };
            for (i, l) in lookups.iter().enumerate() {
                if !l.vindex.keyspace.is_empty() {
                    continue;
                }
                let holders: Vec<&str> = keyspaces
                    .iter()
                    .filter(|o| o.tables().contains_key(&l.vindex.table))
                    .filter_map(&name_of)
                    .collect();
                match holders.as_slice() {
                    [] => {}
                    [one] => fixes.push((k, tname.clone(), i, one.to_string())),
                    several => {
                        return Err((
                            format!("{}.vindexes.{}.params.table", name_of(ks).unwrap_or_default(), l.vindex.name),
                            format!(
                                "lookup table {} is in several keyspaces ({}); name it as keyspace.table",
                                l.vindex.table,
                                several.join(", ")
                            ),
                        ))
                    }
                }
            }
        }
    }
    for (k, tname, i, holder) in fixes {
        if let Some(Table::Sharded { lookups, .. }) = keyspaces[k].tables_mut().get_mut(&tname) {
            let vindex = Arc::make_mut(&mut lookups[i].vindex);
            vindex.keyspace = holder;
        }
    }
    Ok(())
}

/// The tables of a keyspace, loaded from a config or from a Vitess file.
trait HasTables {
    fn tables(&self) -> &BTreeMap<String, Table>;
    fn tables_mut(&mut self) -> &mut BTreeMap<String, Table>;
}

impl HasTables for Keyspace {
    fn tables(&self) -> &BTreeMap<String, Table> {
        &self.tables
    }
    fn tables_mut(&mut self) -> &mut BTreeMap<String, Table> {
        &mut self.tables
    }
}

impl HasTables for VitessKeyspaceFile {
    fn tables(&self) -> &BTreeMap<String, Table> {
        &self.tables
    }
    fn tables_mut(&mut self) -> &mut BTreeMap<String, Table> {
        &mut self.tables
    }
}

/// A lookup table lives in an unsharded keyspace, or in a sharded one that declares it with its
/// primary vindex on the lookup's first `from` column (each value's rows on one shard) or on its
/// `to` column (each row on its keyspace ID's shard, next to the row it points at; a read asks
/// every shard).
fn check_lookups(keyspaces: &[Keyspace], file: &Path) -> Result<(), ConfigError> {
    for ks in keyspaces {
        for (tname, table) in &ks.tables {
            let Table::Sharded { lookups, .. } = table else {
                continue;
            };
            for l in lookups {
                let ok = keyspaces.iter().any(|k| {
                    k.name == l.vindex.keyspace
                        && (!k.sharded
                            || matches!(k.table(&l.vindex.table), Some(Table::Sharded { column, .. }) if column.eq_ignore_ascii_case(&l.vindex.from[0]) || column.eq_ignore_ascii_case(&l.vindex.to)))
                });
                if l.vindex.keyspace.is_empty() {
                    return Err(ConfigError {
                        file: file.to_path_buf(),
                        line: None,
                        key: format!(
                            "keyspaces.{}.vindexes.{}.params.table",
                            ks.name, l.vindex.name
                        ),
                        message: format!(
                            "no keyspace lists lookup table {}; name it as keyspace.table",
                            l.vindex.table
                        ),
                    });
                }
                if !ok {
                    return Err(ConfigError {
                        file: file.to_path_buf(),
                        line: None,
                        key: format!("keyspaces.{}.vindexes.{}.table", ks.name, l.vindex.name),
                        message: format!(
                            "the lookup table {} of {tname}.{} must be in an unsharded keyspace, or declared in its sharded keyspace {:?} with a primary vindex on {:?} or {:?}",
                            l.vindex.table, l.display(), l.vindex.keyspace, l.vindex.from[0], l.vindex.to
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// `unlisted_tables` names an unsharded keyspace, and only a sharded keyspace has it (an
/// unsharded one holds every table it is asked for).
fn check_unlisted(
    keyspaces: &[Keyspace],
    ctx: &Ctx<'_>,
    raw: &RawConfig,
) -> Result<(), ConfigError> {
    for ks in keyspaces {
        let Some(target) = &ks.unlisted_tables else {
            continue;
        };
        let spanned = raw.keyspaces[&ks.name]
            .get_ref()
            .unlisted_tables
            .as_ref()
            .expect("set from the raw keyspace");
        let key = format!("keyspaces.{}.unlisted_tables", ks.name);
        let problem = match keyspaces.iter().find(|k| &k.name == target) {
            _ if !ks.sharded => Some("only a sharded keyspace has unlisted_tables".to_string()),
            None => Some(format!("no keyspace {target:?}")),
            Some(k) if k.sharded => Some(format!(
                "keyspace {target:?} is sharded; unlisted tables go to an unsharded keyspace"
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            return Err(ctx.err(spanned, &key, message));
        }
    }
    Ok(())
}

fn resolve_sequences(
    keyspaces: &mut [Keyspace],
    ctx: &Ctx<'_>,
    raw: &RawConfig,
) -> Result<(), ConfigError> {
    let sequences: Vec<(String, String)> = keyspaces
        .iter()
        .filter(|k| !k.sharded)
        .flat_map(|k| {
            k.tables
                .iter()
                .filter(|(_, t)| **t == Table::Sequence)
                .map(move |(n, _)| (k.name.clone(), n.clone()))
        })
        .collect();
    for ks in keyspaces.iter_mut() {
        for (tname, table) in ks.tables.iter_mut() {
            let Table::Sharded {
                auto_increment: Some(ai),
                ..
            } = table
            else {
                continue;
            };
            let key = format!("keyspaces.{}.tables.{tname}.auto_increment", ks.name);
            let line = raw
                .keyspaces
                .get(&ks.name)
                .and_then(|k| k.get_ref().tables.get(tname))
                .and_then(|t| t.get_ref().auto_increment.as_ref())
                .map(|a| ctx.line_of(a.span().start));
            let fail = |message: String| ConfigError {
                file: ctx.file.clone(),
                line,
                key: key.clone(),
                message,
            };
            let candidates: Vec<&(String, String)> = sequences
                .iter()
                .filter(|(k, t)| {
                    *t == ai.sequence.table
                        && (ai.sequence.keyspace.is_empty() || *k == ai.sequence.keyspace)
                })
                .collect();
            match candidates.as_slice() {
                [(k, _)] => ai.sequence.keyspace = k.clone(),
                [] => return Err(fail(format!("no sequence table {:?} in an unsharded keyspace (declare it with type = \"sequence\")", ai.sequence.table))),
                several => {
                    let names: Vec<&str> = several.iter().map(|(k, _)| k.as_str()).collect();
                    return Err(fail(format!(
                        "sequence {:?} exists in several keyspaces ({}); name it as keyspace.table",
                        ai.sequence.table,
                        names.join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A `numeric_static_map`'s entries, from `json` or the file `json_path` (relative to the file
/// that names it); none for the other kinds.
fn static_map(
    kind: VindexKind,
    json_path: Option<&str>,
    json: Option<&str>,
    file: &Path,
) -> Result<BTreeMap<u64, u64>, String> {
    if kind != VindexKind::NumericStaticMap {
        return Ok(BTreeMap::new());
    }
    let text = match (json, json_path) {
        (Some(json), _) => json.to_string(),
        (None, Some(p)) => {
            let p = file.parent().unwrap_or(Path::new(".")).join(p);
            std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
        (None, None) => return Err("numeric_static_map needs json_path (or json)".into()),
    };
    crate::vindex::parse_static_map(&text).map_err(|e| format!("numeric_static_map entries: {e}"))
}

/// A multi-column vindex's params: `multicol`'s columns, `region_json`'s map (a JSON file of
/// text → region, relative to the file naming it) and bytes.
fn multi_column(
    kind: VindexKind,
    params: &BTreeMap<String, String>,
    file: &Path,
) -> Result<Option<MultiColumn>, String> {
    let get = |p: &str| params.get(p).map(String::as_str);
    Ok(Some(match kind {
        VindexKind::Multicol => MultiColumn::hashed(
            get("column_count").ok_or("multicol needs params.column_count")?,
            get("column_vindex"),
            get("column_bytes"),
        )?,
        VindexKind::RegionJson => {
            let bytes = match get("region_bytes") {
                Some("1") => 1,
                Some("2") => 2,
                _ => return Err("region_json needs params.region_bytes, 1 or 2".into()),
            };
            let path = get("region_map").ok_or("region_json needs params.region_map")?;
            let path = file.parent().unwrap_or(Path::new(".")).join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let map = serde_json::from_str(&text)
                .map_err(|e| format!("region_map {}: {e}", path.display()))?;
            MultiColumn::Region { bytes, map }
        }
        _ => return Ok(None),
    }))
}

/// One keyspace of a Vitess VSchema file: its name (none for a file of one keyspace), whether it
/// is sharded, and its tables with their vindexes.
#[derive(Debug)]
pub struct VitessKeyspaceFile {
    pub name: Option<String>,
    pub sharded: bool,
    pub tables: BTreeMap<String, Table>,
}

/// Reads a Vitess VSchema file in any of the forms Vitess writes: one keyspace's `vschema.json`,
/// a map of keyspaces (as vtexplain takes), or an `SrvVSchema` (`{"keyspaces": ...}`). Routing
/// rules and `require_explicit_routing` are refused, not ignored.
pub fn load_vitess_json(path: &Path) -> Result<Vec<VitessKeyspaceFile>, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: key.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("", format!("cannot read vschema.json: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ConfigError {
        line: Some(e.line()),
        ..err("", e.to_string())
    })?;
    let serde_json::Value::Object(top) = value else {
        return Err(err("", "a VSchema is a JSON object".into()));
    };
    const KEYSPACE_KEYS: &[&str] = &[
        "sharded",
        "vindexes",
        "tables",
        "require_explicit_routing",
        "requireExplicitRouting",
        "foreign_key_mode",
        "multi_tenant_spec",
    ];
    let keyspaces: Vec<(Option<String>, serde_json::Value)> =
        if top.contains_key("keyspaces") && !KEYSPACE_KEYS.iter().any(|k| top.contains_key(*k)) {
            // An SrvVSchema: its routing rules change where names resolve.
            for rules in [
                "routing_rules",
                "shard_routing_rules",
                "keyspace_routing_rules",
            ] {
                let set = top.get(rules).is_some_and(|r| {
                    r.get("rules")
                        .and_then(|x| x.as_array())
                        .is_some_and(|x| !x.is_empty())
                });
                if set {
                    return Err(err(rules, format!("{rules} are not supported yet")));
                }
            }
            match top.get("keyspaces") {
                Some(serde_json::Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| (Some(k.clone()), v.clone()))
                    .collect(),
                _ => return Err(err("keyspaces", "keyspaces is a map of VSchemas".into())),
            }
        } else if top.is_empty() || KEYSPACE_KEYS.iter().any(|k| top.contains_key(*k)) {
            vec![(None, serde_json::Value::Object(top))]
        } else if top.values().all(serde_json::Value::is_object) {
            // A map of keyspace names to VSchemas.
            top.into_iter().map(|(k, v)| (Some(k), v)).collect()
        } else {
            return Err(err(
                "",
                "neither one keyspace's VSchema, a map of keyspaces nor an SrvVSchema".into(),
            ));
        };
    let mut loaded = keyspaces
        .into_iter()
        .map(|(name, value)| {
            let prefix = name.as_ref().map(|n| format!("{n}.")).unwrap_or_default();
            let ks: VitessKeyspace = serde_json::from_value(value)
                .map_err(|e| err(prefix.trim_end_matches('.'), e.to_string()))?;
            if ks.require_explicit_routing {
                return Err(err(
                    &format!("{prefix}require_explicit_routing"),
                    "require_explicit_routing is not supported yet".into(),
                ));
            }
            let (sharded, tables) = vitess_keyspace(&ks, path, &prefix)?;
            Ok(VitessKeyspaceFile {
                name,
                sharded,
                tables,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    resolve_file_sequences(&mut loaded).map_err(|(key, message)| err(&key, message))?;
    resolve_lookup_tables(&mut loaded, |k| k.name.as_deref())
        .map_err(|(key, message)| err(&key, message))?;
    Ok(loaded)
}

/// An unqualified sequence names the one unsharded keyspace of the file that holds it, as
/// Vitess's global routing resolves it; several are an error naming them. One the file does not
/// hold stays unqualified (the config resolves it among all keyspaces).
fn resolve_file_sequences(keyspaces: &mut [VitessKeyspaceFile]) -> Result<(), (String, String)> {
    let holders = |seq: &str, keyspaces: &[VitessKeyspaceFile]| -> Vec<String> {
        keyspaces
            .iter()
            .filter(|k| !k.sharded && k.tables.get(seq) == Some(&Table::Sequence))
            .filter_map(|k| k.name.clone())
            .collect()
    };
    let mut resolved = Vec::new();
    for (k, ks) in keyspaces.iter().enumerate() {
        for (tname, table) in &ks.tables {
            let Table::Sharded {
                auto_increment: Some(ai),
                ..
            } = table
            else {
                continue;
            };
            if !ai.sequence.keyspace.is_empty() {
                continue;
            }
            match holders(&ai.sequence.table, keyspaces).as_slice() {
                [] => {}
                [one] => resolved.push((k, tname.clone(), one.clone())),
                several => {
                    return Err((
                        format!(
                            "{}.tables.{tname}.auto_increment",
                            ks.name.as_deref().unwrap_or_default()
                        ),
                        format!(
                            "sequence {} is in several keyspaces ({}); name it as keyspace.table",
                            ai.sequence.table,
                            several.join(", ")
                        ),
                    ))
                }
            }
        }
    }
    for (k, tname, holder) in resolved {
        if let Some(Table::Sharded {
            auto_increment: Some(ai),
            ..
        }) = keyspaces[k].tables.get_mut(&tname)
        {
            ai.sequence.keyspace = holder;
        }
    }
    Ok(())
}

fn vitess_keyspace(
    ks: &VitessKeyspace,
    path: &Path,
    prefix: &str,
) -> Result<(bool, BTreeMap<String, Table>), ConfigError> {
    let err = |_line: Option<usize>, key: &str, message: String| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: format!("{prefix}{key}"),
        message,
    };
    let mut vindexes = BTreeMap::new();
    let mut lookups = BTreeMap::new();
    for (name, v) in &ks.vindexes {
        if let Some(ty) = LookupType::of(&v.kind) {
            let flag = |p: &str| match v.params.get(p).map(String::as_str) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(other) => Err(err(
                    None,
                    &format!("vindexes.{name}.params.{p}"),
                    format!("{p} must be 'true' or 'false', not {other:?}"),
                )),
            };
            let param = |p: &str| {
                v.params.get(p).cloned().ok_or_else(|| {
                    err(
                        None,
                        &format!("vindexes.{name}.params.{p}"),
                        format!("a {} vindex needs params.{p}", v.kind),
                    )
                })
            };
            let table = param("table")?;
            // An unqualified table is the one keyspace's that lists it (global routing).
            let (lks, ltable) = table.split_once('.').unwrap_or(("", &table));
            // `batch_lookup` and `read_lock` only change how Vitess reads; its consistent lookups
            // have no `autocommit`.
            let autocommit =
                !ty.consistent && (flag("autocommit")? || flag("multi_shard_autocommit")?);
            lookups.insert(
                name.clone(),
                (
                    Arc::new(LookupVindex {
                        name: name.clone(),
                        keyspace: lks.into(),
                        table: ltable.into(),
                        from: column_list(&param("from")?),
                        to: param("to")?,
                        unique: ty.unique,
                        consistent: ty.consistent,
                        to_holds: ty.to_holds,
                        write_only: flag("write_only")?,
                        ignore_nulls: flag("ignore_nulls")?,
                        autocommit,
                        no_verify: flag("no_verify")?,
                    }),
                    v.owner.clone(),
                ),
            );
            continue;
        }
        let kind = VindexKind::parse(&v.kind).ok_or_else(|| {
            err(
                None,
                &format!("vindexes.{name}.type"),
                format!(
                    "vindex type {:?} is not supported yet (supported: {})",
                    v.kind,
                    crate::vindex::SUPPORTED
                ),
            )
        })?;
        vindexes.insert(
            name.clone(),
            Arc::new(Vindex {
                static_map: static_map(
                    kind,
                    v.params.get("json_path").map(String::as_str),
                    v.params.get("json").map(String::as_str),
                    path,
                )
                .map_err(|m| err(None, &format!("vindexes.{name}.params"), m))?,
                multi: multi_column(kind, &v.params, path)
                    .map_err(|m| err(None, &format!("vindexes.{name}.params"), m))?,
                ..Vindex::new(name, kind)
            }),
        );
    }
    let mut tables = BTreeMap::new();
    for (name, t) in &ks.tables {
        let key = format!("tables.{name}");
        let table = match (t.kind.as_str(), ks.sharded) {
            ("reference", _) => Table::Reference,
            ("sequence", false) => Table::Sequence,
            ("sequence", true) => {
                return Err(err(
                    None,
                    &format!("{key}.type"),
                    "a sequence table lives in an unsharded keyspace".into(),
                ))
            }
            ("", false) => Table::Unsharded,
            ("", true) => {
                if t.column_vindexes.is_empty() {
                    return Err(err(
                        None,
                        &key,
                        format!("table {name} of a sharded keyspace has no column_vindexes"),
                    ));
                }
                // Rows are placed by the first functional vindex: the first one listed, or, when
                // that is a lookup the table does not own (Vitess maps the value through it), the
                // next functional one, which holds the same keyspace IDs.
                let mut primary = None;
                let mut secondary = Vec::new();
                for (i, cv) in t.column_vindexes.iter().enumerate() {
                    let at = format!("{key}.column_vindexes[{i}]");
                    let columns = match (&cv.column, cv.columns.as_slice()) {
                        (Some(c), []) => vec![c.clone()],
                        (None, many) if !many.is_empty() => many.to_vec(),
                        _ => return Err(err(None, &at, "give `column` or `columns`".into())),
                    };
                    if let Some((vindex, owner)) = lookups.get(&cv.name) {
                        let owned = owner == name;
                        if i == 0 && owned {
                            return Err(err(None, &format!("{at}.name"), format!("the primary vindex of {name} is lookup vindex {} that it owns; a table's rows are placed by its primary vindex before its lookup rows exist", cv.name)));
                        }
                        if columns.len() != vindex.from.len() {
                            return Err(err(
                                None,
                                &at,
                                format!(
                                    "lookup vindex {} maps {} columns ({}), not {}",
                                    cv.name,
                                    vindex.from.len(),
                                    vindex.from.join(", "),
                                    columns.len()
                                ),
                            ));
                        }
                        secondary.push(LookupColumn {
                            columns,
                            vindex: vindex.clone(),
                            owned,
                        });
                        continue;
                    }
                    let vindex = vindexes.get(&cv.name).ok_or_else(|| {
                        err(
                            None,
                            &format!("{at}.name"),
                            format!("unknown vindex {:?} for table {name}", cv.name),
                        )
                    })?;
                    if columns.len() != vindex.column_count() {
                        return Err(err(
                            None,
                            &at,
                            format!(
                                "vindex {} maps {} column(s), not {}",
                                cv.name,
                                vindex.column_count(),
                                columns.len()
                            ),
                        ));
                    }
                    // A later functional vindex only checks, in Vitess, that a row's value maps to
                    // its keyspace ID; shardgate routes by the primary one and lookups.
                    if primary.is_none() {
                        primary = Some((columns, vindex.clone()));
                    }
                }
                let (columns, vindex) = primary.ok_or_else(|| {
                    err(
                        None,
                        &format!("{key}.column_vindexes[0].name"),
                        format!("table {name} has only lookup vindexes; shardgate places rows by a functional vindex (supported: {})", crate::vindex::SUPPORTED),
                    )
                })?;
                let (column, columns) = match columns.as_slice() {
                    [one] => (one.clone(), Vec::new()),
                    _ => (String::new(), columns),
                };
                if let (Some(ai), false) = (&t.auto_increment, columns.is_empty()) {
                    if columns.iter().any(|c| c.eq_ignore_ascii_case(&ai.column)) {
                        return Err(err(None, &format!("{key}.auto_increment"), format!("an AUTO_INCREMENT column ({}) of a multi-column vindex is not supported yet", ai.column)));
                    }
                }
                Table::Sharded {
                    column,
                    columns,
                    vindex,
                    auto_increment: t
                        .auto_increment
                        .as_ref()
                        .map(|a| auto_increment(&a.column, &a.sequence)),
                    lookups: secondary,
                }
            }
            (other, _) => {
                return Err(err(
                    None,
                    &format!("{key}.type"),
                    format!("unknown table type {other:?}"),
                ))
            }
        };
        tables.insert(name.clone(), table);
    }
    Ok((ks.sharded, tables))
}

#[cfg(test)]
mod tests;
