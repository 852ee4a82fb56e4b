//! A keyspace's VSchema as a branch changes it: its `vindexes` and `tables`, in the config's
//! TOML. Compared entry by entry (`tables.orders`, `vindexes.hash`), three-way like the schema:
//! the branch's changed entries laid over main's, an entry both changed a conflict.

use std::collections::BTreeMap;
use std::path::Path;

use engine::EngineError;

use super::refused;

/// A VSchema's entries: `tables.<name>` and `vindexes.<name>` → the entry's TOML value.
type Entries = BTreeMap<String, toml::Value>;

pub(crate) fn entries(fragment: &str) -> Result<Entries, EngineError> {
    let table: toml::Table =
        toml::from_str(fragment).map_err(|e| refused(format!("the VSchema: {}", e.message())))?;
    let mut out = Entries::new();
    for section in ["vindexes", "tables"] {
        if let Some(toml::Value::Table(items)) = table.get(section) {
            for (name, value) in items {
                out.insert(format!("{section}.{name}"), value.clone());
            }
        }
    }
    Ok(out)
}

fn render(entries: &Entries) -> String {
    let mut table = toml::Table::new();
    for (key, value) in entries {
        let (section, name) = key.split_once('.').expect("section.name");
        table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a section is a table")
            .insert(name.to_string(), value.clone());
    }
    toml::to_string(&table).expect("a VSchema serialises")
}

/// One entry as a line of TOML: `tables.orders = { ... }`.
fn line(key: &str, value: Option<&toml::Value>) -> String {
    match value {
        Some(v) => format!("{key} = {}", inline(v)),
        None => format!("{key} (removed)"),
    }
}

fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// What a deploy changes in one keyspace's VSchema.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub keyspace: String,
    /// Main's VSchema before, and after (TOML).
    pub before: String,
    pub after: String,
    /// The entries that change, one line each.
    pub lines: Vec<String>,
    /// Tables whose primary vindex changes.
    pub moved: Vec<String>,
}

/// The change that brings `branch`'s VSchema entries (changed from `base`) to `main`'s: `None`
/// when there is none; the conflicts when main changed an entry the branch changed too.
pub(crate) fn three_way(
    keyspace: &str,
    base: &str,
    main: &str,
    branch: &str,
) -> Result<Option<Change>, Vec<String>> {
    let parse = |f: &str| entries(f).map_err(|e| vec![format!("{keyspace}: {e}")]);
    let (base, now, wanted) = (parse(base)?, parse(main)?, parse(branch)?);
    let mut target = now.clone();
    let mut conflicts = Vec::new();
    let keys: std::collections::BTreeSet<&String> = base.keys().chain(wanted.keys()).collect();
    for key in keys {
        let (was, mine) = (base.get(key), wanted.get(key));
        if was == mine {
            continue;
        }
        let theirs = now.get(key);
        if theirs != was && theirs != mine {
            conflicts.push(format!(
                "{keyspace}: VSchema {key} changed on main since the branch was made ({}) and on \
                 the branch ({})",
                line(key, theirs),
                line(key, mine)
            ));
            continue;
        }
        match mine {
            Some(v) => target.insert(key.clone(), v.clone()),
            None => target.remove(key),
        };
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    if target == now {
        return Ok(None);
    }
    let changed: Vec<&String> = target
        .keys()
        .chain(now.keys())
        .filter(|k| target.get(*k) != now.get(*k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let moved = changed
        .iter()
        .filter_map(|k| {
            let table = k.strip_prefix("tables.")?;
            let vindex = |e: &Entries| e.get(*k).and_then(|v| v.get("primary_vindex")).cloned();
            (now.contains_key(*k) && vindex(&now) != vindex(&target)).then(|| table.to_string())
        })
        .collect();
    Ok(Some(Change {
        keyspace: keyspace.to_string(),
        before: render(&now),
        after: render(&target),
        lines: changed.iter().map(|k| line(k, target.get(*k))).collect(),
        moved,
    }))
}

/// Keyspace `keyspace`'s VSchema as main serves it now.
pub(crate) fn main_vschema(config: Option<&Path>, keyspace: &str) -> Result<String, EngineError> {
    let config = config
        .ok_or_else(|| refused("VSchema changes on a proxy started without a config file"))?;
    vschema::current_vschema(config, keyspace).map_err(|e| refused(e.to_string()))
}

/// Main's VSchema with keyspace `keyspace`'s vindexes and tables from `fragment`, validated.
pub(crate) fn with_fragment(
    config: &Path,
    base: &vschema::VSchema,
    keyspace: &str,
    fragment: &str,
) -> Result<vschema::VSchema, EngineError> {
    let text = std::fs::read_to_string(config).map_err(|e| refused(e.to_string()))?;
    let merged = vschema::with_keyspace_vschema(&text, keyspace, fragment, config)
        .map_err(|e| refused(e.to_string()))?;
    let parsed = vschema::parse_config(&merged, config).map_err(|e| refused(e.to_string()))?;
    Ok(base.with_tables(keyspace, &parsed.vschema))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"vindexes.hash = { type = "hash" }
tables.a = { primary_vindex = { column = "id", vindex = "hash" } }
tables.b = { primary_vindex = { column = "id", vindex = "hash" } }
"#;

    #[test]
    fn the_branch_entries_are_laid_over_main() {
        // Main added c; the branch added d and moved b.
        let main = format!("{BASE}tables.c = {{ type = \"reference\" }}\n");
        let branch = BASE.replace(
            "tables.b = { primary_vindex = { column = \"id\"",
            "tables.b = { primary_vindex = { column = \"k\"",
        ) + "tables.d = { type = \"reference\" }\n";
        let change = three_way("ks", BASE, &main, &branch).unwrap().unwrap();
        let after = entries(&change.after).unwrap();
        assert!(after.contains_key("tables.c") && after.contains_key("tables.d"));
        assert_eq!(
            after["tables.b"]["primary_vindex"]["column"].as_str(),
            Some("k")
        );
        assert_eq!(change.moved, ["b"]);
        assert_eq!(change.lines.len(), 2, "{:?}", change.lines);
        // Nothing the branch changed: no change.
        assert!(three_way("ks", BASE, &main, BASE).unwrap().is_none());
    }

    #[test]
    fn an_entry_both_changed_is_a_conflict() {
        let main = BASE.replace(
            "tables.a = { primary_vindex = { column = \"id\"",
            "tables.a = { primary_vindex = { column = \"x\"",
        );
        let branch = BASE.replace(
            "tables.a = { primary_vindex = { column = \"id\"",
            "tables.a = { primary_vindex = { column = \"y\"",
        );
        let conflicts = three_way("ks", BASE, &main, &branch).unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert!(conflicts[0].contains("tables.a"), "{conflicts:?}");
        // The same change on both sides is none.
        assert!(three_way("ks", BASE, &main, &main).unwrap().is_none());
    }
}
