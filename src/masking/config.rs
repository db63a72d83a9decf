//! The `[masking]` configuration section of the appliance configuration
//! (`src/config.rs`; every key is documented in deploy/sluice.example.toml).
//!
//! ```toml
//! [masking]
//! enabled = true                 # default when the section is present
//! default_profile = "default"    # for agents without masking_profile
//! pending_binds_max = 4096       # responses awaited per session (bound)
//! statement_shapes_max = 4096    # prepared result shapes per session (bound)
//! catalog_timeout_ms = 5000      # resolving column-rule tables (bound)
//! # Style per detector: "stars" (default), "keep_last4" (default for
//! # cards) or "redact" (replaces the value by its label; re-frames).
//! styles = { email = "redact" }
//! labels = { email = "[EMAIL]" }
//!
//! [[masking.detectors]]          # custom detectors
//! name = "employee_id"
//! pattern = "EMP-[0-9]{6}"
//! validator = "luhn"             # optional: luhn | mod97 | ssn
//! style = "stars"                # optional
//!
//! [[masking.column_rules]]       # whole-value masks
//! table = "public.customers"     # optional; resolved to an OID
//! column = "ssn"
//! action = "mask"                # mask | null
//!
//! [masking.profiles.analyst]     # per-agent profiles
//! detectors = ["all"]            # names, or "all"
//! except = ["ipv4", "ipv6"]
//! column_rules = true
//! ```
//!
//! [`MaskingConfig::validate`] reports every violation with its key path;
//! [`MaskingConfig::detectors`] and [`MaskingConfig::profile`] turn a valid
//! section into what the engine and the sessions use.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::detectors::Builtin;
use super::engine::{
    builtin_detectors, CustomDetector, CustomValidator, DetectorDef, DetectorKind, Engine,
};
use super::message::{ColumnAction, ColumnRule};
use super::style::Style;
use super::{DetectorSet, Profile, DETECTORS_MAX, LABEL_BYTES_MAX};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Whether masking applies at all; a present section enables it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Profile of agents that name none (`masking_profile`). "default"
    /// masks everything, "none" nothing, unless the section redefines them.
    #[serde(default = "default_profile_name")]
    pub default_profile: String,
    /// Bind, Describe, Execute and Sync messages whose responses have not
    /// arrived yet that a session remembers, so that result formats and
    /// the portal rows belong to are known when rows arrive; an agent
    /// that pipelines more is refused.
    #[serde(default = "bind_formats_max")]
    pub pending_binds_max: usize,
    /// Result shapes a session remembers, for each kind separately: one
    /// per described prepared statement still open (drivers such as
    /// asyncpg describe a statement once and bind it many times without a
    /// Describe) and one per portal executed in a later batch than its
    /// Bind (asyncpg's cursors, fetched in row-limited steps). An agent
    /// that keeps more open is refused: its rows could not be masked by
    /// their columns.
    #[serde(default = "statement_shapes_max")]
    pub statement_shapes_max: usize,
    /// Time allowed to resolve the table names of column rules on a new
    /// session's upstream connection.
    #[serde(default = "catalog_timeout_ms")]
    pub catalog_timeout_ms: u64,
    /// Style per detector name.
    #[serde(default)]
    pub styles: BTreeMap<String, String>,
    /// Redaction label per detector name.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub detectors: Vec<CustomDetectorConfig>,
    #[serde(default)]
    pub column_rules: Vec<ColumnRuleConfig>,
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    pub name: String,
    pub pattern: String,
    #[serde(default)]
    pub validator: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ColumnRuleConfig {
    /// `schema.table` or `table`; any table when absent.
    #[serde(default)]
    pub table: Option<String>,
    pub column: String,
    #[serde(default)]
    pub action: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Detector names, or `"all"`.
    #[serde(default = "all_detectors")]
    pub detectors: Vec<String>,
    #[serde(default)]
    pub except: Vec<String>,
    #[serde(default = "yes")]
    pub column_rules: bool,
}

fn all_detectors() -> Vec<String> {
    vec!["all".to_owned()]
}

fn yes() -> bool {
    true
}

fn default_profile_name() -> String {
    "default".to_owned()
}

fn bind_formats_max() -> usize {
    4096
}

fn catalog_timeout_ms() -> u64 {
    5000
}

fn statement_shapes_max() -> usize {
    4096
}

/// Bounds of the numeric keys, so that a typo cannot configure something
/// absurd.
pub const PENDING_BINDS_MAX_LIMIT: usize = 1 << 20;
pub const STATEMENT_SHAPES_MAX_LIMIT: usize = 1 << 20;
pub const CATALOG_TIMEOUT_MS_MAX: u64 = 600_000;

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            enabled: true,
            default_profile: default_profile_name(),
            pending_binds_max: bind_formats_max(),
            statement_shapes_max: statement_shapes_max(),
            catalog_timeout_ms: catalog_timeout_ms(),
            styles: BTreeMap::new(),
            labels: BTreeMap::new(),
            detectors: Vec::new(),
            column_rules: Vec::new(),
            profiles: BTreeMap::new(),
        }
    }
}

/// One violation, with the key path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Labels end up inside text values, COPY rows, CSV fields and JSON
/// strings, so they may only hold printable ASCII that is special in none
/// of them.
fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() || label.len() > LABEL_BYTES_MAX {
        return Some(format!("must be 1 to {LABEL_BYTES_MAX} bytes long"));
    }
    if let Some(c) = label
        .chars()
        .find(|&c| !c.is_ascii_graphic() && c != ' ' || matches!(c, '\\' | '"' | ',' | '\''))
    {
        return Some(format!(
            "contains {c:?}: labels may only hold printable ASCII without backslash, quotes or commas"
        ));
    }
    None
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl MaskingConfig {
    fn all_names(&self) -> Vec<String> {
        Builtin::ALL
            .iter()
            .map(|b| b.name().to_owned())
            .chain(self.detectors.iter().map(|d| d.name.clone()))
            .collect()
    }

    /// Every violation in the section, each with its key path under
    /// `prefix` (e.g. `"masking"`).
    pub fn validate(&self, prefix: &str) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let names = self.all_names();
        if self.pending_binds_max == 0 || self.pending_binds_max > PENDING_BINDS_MAX_LIMIT {
            errors.push(err(
                format!("{prefix}.pending_binds_max"),
                format!(
                    "{} is out of range (allowed 1 to {PENDING_BINDS_MAX_LIMIT})",
                    self.pending_binds_max
                ),
            ));
        }
        if self.statement_shapes_max == 0 || self.statement_shapes_max > STATEMENT_SHAPES_MAX_LIMIT
        {
            errors.push(err(
                format!("{prefix}.statement_shapes_max"),
                format!(
                    "{} is out of range (allowed 1 to {STATEMENT_SHAPES_MAX_LIMIT})",
                    self.statement_shapes_max
                ),
            ));
        }
        if self.catalog_timeout_ms == 0 || self.catalog_timeout_ms > CATALOG_TIMEOUT_MS_MAX {
            errors.push(err(
                format!("{prefix}.catalog_timeout_ms"),
                format!(
                    "{} is out of range (allowed 1 to {CATALOG_TIMEOUT_MS_MAX})",
                    self.catalog_timeout_ms
                ),
            ));
        }
        if !self.has_profile(&self.default_profile) {
            errors.push(err(
                format!("{prefix}.default_profile"),
                format!(
                    "no profile is called {:?} (define it under {prefix}.profiles, or use \"default\" or \"none\")",
                    self.default_profile
                ),
            ));
        }
        let known = |n: &str| names.iter().any(|k| k == n);
        for (name, style) in &self.styles {
            if !known(name) {
                errors.push(err(
                    format!("{prefix}.styles.{name}"),
                    "no detector has this name",
                ));
            }
            if Style::from_name(style).is_none() {
                errors.push(err(
                    format!("{prefix}.styles.{name}"),
                    format!("unknown style {style:?}; expected stars, keep_last4 or redact"),
                ));
            }
        }
        for (name, label) in &self.labels {
            if !known(name) {
                errors.push(err(
                    format!("{prefix}.labels.{name}"),
                    "no detector has this name",
                ));
            }
            if let Some(p) = label_problem(label) {
                errors.push(err(format!("{prefix}.labels.{name}"), p));
            }
        }
        let total = Builtin::ALL.len() + self.detectors.len();
        if total > DETECTORS_MAX {
            errors.push(err(
                format!("{prefix}.detectors"),
                format!(
                    "{} custom detectors exceed the maximum of {}",
                    self.detectors.len(),
                    DETECTORS_MAX - Builtin::ALL.len()
                ),
            ));
        }
        for (i, d) in self.detectors.iter().enumerate() {
            let path = format!("{prefix}.detectors[{i}]");
            if !name_ok(&d.name) {
                errors.push(err(
                    format!("{path}.name"),
                    "must be 1 to 64 bytes of lowercase letters, digits and underscores",
                ));
            }
            if names.iter().filter(|n| **n == d.name).count() > 1 {
                errors.push(err(
                    format!("{path}.name"),
                    format!("{:?} is already a detector name", d.name),
                ));
            }
            let validator = match d.validator.as_deref() {
                None => None,
                Some(v) => match CustomValidator::from_name(v) {
                    Some(v) => Some(v),
                    None => {
                        errors.push(err(
                            format!("{path}.validator"),
                            format!("unknown validator {v:?}; expected luhn, mod97 or ssn"),
                        ));
                        None
                    }
                },
            };
            if let Err(reason) = CustomDetector::new(&d.pattern, validator) {
                errors.push(err(format!("{path}.pattern"), reason));
            } else if let Err(e) = hyperscan_accepts(&d.pattern) {
                errors.push(err(
                    format!("{path}.pattern"),
                    format!("Hyperscan refuses it: {e}"),
                ));
            }
            if let Some(s) = &d.style {
                if Style::from_name(s).is_none() {
                    errors.push(err(
                        format!("{path}.style"),
                        format!("unknown style {s:?}; expected stars, keep_last4 or redact"),
                    ));
                }
            }
            if let Some(p) = d.label.as_deref().and_then(label_problem) {
                errors.push(err(format!("{path}.label"), p));
            }
        }
        for (i, r) in self.column_rules.iter().enumerate() {
            let path = format!("{prefix}.column_rules[{i}]");
            if r.column.is_empty() {
                errors.push(err(format!("{path}.column"), "must not be empty"));
            }
            if let Some(t) = &r.table {
                // Names are matched exactly as the catalog stores them
                // (case-sensitive, unquoted), and go into a catalog query as
                // string literals: quotes, backslashes and control
                // characters have no place in them.
                let bad_part = |p: &str| {
                    p.is_empty()
                        || p.len() > 63
                        || p.chars()
                            .any(|c| c.is_control() || matches!(c, '\'' | '"' | '\\'))
                };
                if t.is_empty() || t.split('.').count() > 2 || t.split('.').any(bad_part) {
                    errors.push(err(
                        format!("{path}.table"),
                        "must be `table` or `schema.table` (each 1 to 63 bytes, without quotes, backslashes or control characters)",
                    ));
                }
            }
            if let Some(a) = &r.action {
                if !matches!(a.as_str(), "mask" | "null") {
                    errors.push(err(
                        format!("{path}.action"),
                        format!("unknown action {a:?}; expected mask or null"),
                    ));
                }
            }
        }
        for (name, p) in &self.profiles {
            let path = format!("{prefix}.profiles.{name}");
            for (list, key) in [(&p.detectors, "detectors"), (&p.except, "except")] {
                for (j, d) in list.iter().enumerate() {
                    if d != "all" && !known(d) {
                        errors.push(err(
                            format!("{path}.{key}[{j}]"),
                            format!("no detector is called {d:?}"),
                        ));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The engine's detector list (call after a successful `validate`).
    pub fn detectors(&self) -> Vec<DetectorDef> {
        let mut defs = builtin_detectors();
        for d in &self.detectors {
            let validator = d.validator.as_deref().and_then(CustomValidator::from_name);
            let Ok(custom) = CustomDetector::new(&d.pattern, validator) else {
                continue;
            };
            defs.push(DetectorDef {
                name: d.name.clone(),
                kind: DetectorKind::Custom(custom),
                style: d
                    .style
                    .as_deref()
                    .and_then(Style::from_name)
                    .unwrap_or_default(),
                label: d
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("[{}]", d.name.to_ascii_uppercase())),
            });
        }
        for def in &mut defs {
            if let Some(s) = self.styles.get(&def.name).and_then(|s| Style::from_name(s)) {
                def.style = s;
            }
            if let Some(l) = self.labels.get(&def.name) {
                def.label = l.clone();
            }
        }
        defs
    }

    /// Whether `name` is a profile: a defined one, or the built-in
    /// "default" (everything) and "none" (nothing).
    pub fn has_profile(&self, name: &str) -> bool {
        self.profiles.contains_key(name) || matches!(name, "default" | "none")
    }

    /// The profile called `name` for `engine` (the built-in "all" profile
    /// when the configuration does not define it).
    pub fn profile(&self, name: &str, engine: &Engine) -> Profile {
        let Some(p) = self.profiles.get(name) else {
            if name == "none" {
                return Profile::none();
            }
            return Profile {
                name: name.to_owned(),
                ..Profile::all()
            };
        };
        let mut set = DetectorSet::EMPTY;
        for d in &p.detectors {
            if d == "all" {
                set = DetectorSet::ALL;
            } else if let Some(id) = engine.detector_id(d) {
                set = set.with(id);
            }
        }
        for d in &p.except {
            if d == "all" {
                set = DetectorSet::EMPTY;
            } else if let Some(id) = engine.detector_id(d) {
                set = set.without(id);
            }
        }
        Profile {
            name: name.to_owned(),
            detectors: set,
            column_rules: p.column_rules,
        }
    }

    /// Column rules with table names resolved by `resolve_table` (a rule
    /// whose table does not resolve is kept with an OID that matches no
    /// table, so it can never silently widen to every table).
    pub fn column_rules(&self, resolve_table: impl Fn(&str) -> Option<u32>) -> Vec<ColumnRule> {
        self.column_rules
            .iter()
            .map(|r| ColumnRule {
                table_oid: r.table.as_deref().map(|t| resolve_table(t).unwrap_or(0)),
                column_attribute: None,
                column: r.column.clone(),
                action: match r.action.as_deref() {
                    Some("null") => ColumnAction::Null,
                    _ => ColumnAction::Mask,
                },
            })
            .collect()
    }
}

/// Compiles one pattern alone, so a refusal names its detector.
fn hyperscan_accepts(pattern: &str) -> Result<(), String> {
    use hyperscan::prelude::*;
    let p = Pattern::new(pattern).map_err(|e| e.to_string())?;
    let _: BlockDatabase = p.build().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_reports_key_paths() {
        let cfg: MaskingConfig = toml::from_str(
            r#"
            styles = { email = "redact", nope = "stars" }
            labels = { email = "[E,MAIL]" }
            [[detectors]]
            name = "Bad Name"
            pattern = "^x"
            validator = "crc"
            [[column_rules]]
            table = "a..b"
            column = "ssn"
            action = "drop"
            [profiles.analyst]
            except = ["ipv9"]
            "#,
        )
        .unwrap();
        let errors = cfg.validate("masking").unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "masking.styles.nope",
                "masking.labels.email",
                "masking.detectors[0].name",
                "masking.detectors[0].validator",
                "masking.detectors[0].pattern",
                "masking.column_rules[0].table",
                "masking.column_rules[0].action",
                "masking.profiles.analyst.except[0]",
            ]
        );
    }

    #[test]
    fn valid_config_builds_engine_and_profile() {
        let cfg: MaskingConfig = toml::from_str(
            r#"
            styles = { email = "redact" }
            [[detectors]]
            name = "employee_id"
            pattern = "EMP-[0-9]{6}"
            [profiles.analyst]
            except = ["ipv4"]
            "#,
        )
        .unwrap();
        cfg.validate("masking").unwrap();
        let engine = Engine::new(cfg.detectors()).unwrap();
        let p = cfg.profile("analyst", &engine);
        assert!(!p.detectors.contains(Builtin::Ipv4 as u16));
        assert!(p
            .detectors
            .contains(engine.detector_id("employee_id").unwrap()));
    }
}
