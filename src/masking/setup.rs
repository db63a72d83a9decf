//! The appliance's masking set-up: a validated `[masking]` section with
//! its engine compiled once at start (and by `sluice check-config`, so that
//! a pattern Hyperscan refuses is reported before a start), shared
//! read-only by every worker behind an `Arc`.
//!
//! It also names what the ledger's masking summary says (see
//! [`SummaryText`]): detector names, column names and counts, never values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::config::{ConfigError, MaskingConfig};
use super::engine::Engine;
use super::style::WHOLE_VALUE;
use super::{DetectorId, MaskSummary, Profile};

/// A validated `[masking]` section and its compiled engine.
#[derive(Debug)]
pub struct MaskingSetup {
    pub config: MaskingConfig,
    pub engine: Arc<Engine>,
}

impl MaskingSetup {
    /// Validates the section (every violation, with its key path under
    /// `masking`) and compiles the Hyperscan database.
    pub fn new(config: MaskingConfig) -> Result<Self, Vec<ConfigError>> {
        config.validate("masking")?;
        let engine = Engine::new(config.detectors()).map_err(|e| {
            vec![ConfigError {
                path: "masking.detectors".to_owned(),
                message: format!("the detector set does not compile: {e}"),
            }]
        })?;
        Ok(MaskingSetup {
            config,
            engine: Arc::new(engine),
        })
    }

    /// The profile of an agent that names `name` (its `masking_profile`),
    /// or the section's `default_profile` when it names none.
    pub fn profile(&self, name: Option<&str>) -> Profile {
        let name = name.unwrap_or(&self.config.default_profile);
        self.config.profile(name, &self.engine)
    }

    /// The distinct table names of the column rules (`table` or
    /// `schema.table`), which sessions resolve to OIDs.
    pub fn rule_tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = self
            .config
            .column_rules
            .iter()
            .filter_map(|r| r.table.as_deref())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    }

    /// The name of detector `id` as summaries show it.
    pub fn detector_name(&self, id: DetectorId) -> &str {
        if id == WHOLE_VALUE {
            return "whole_value";
        }
        self.engine
            .detector(id)
            .map(|d| d.name.as_str())
            .unwrap_or("unknown")
    }
}

/// Most distinct (detector, column name) entries a session's summary keeps;
/// further ones are counted under `other`.
pub const SUMMARY_ENTRIES_MAX: usize = 256;

/// What a session masked, by detector and column name, accumulated over
/// every result of the session: the text of the ledger's masking summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryText {
    /// (detector name, column name or None for values outside result
    /// columns: COPY data, error and notice fields, notifications,
    /// parameter statuses) → count.
    entries: BTreeMap<(String, Option<String>), u64>,
    /// Counts that did not fit in `entries`.
    pub other: u64,
    /// Findings plus whole values masked.
    pub values_masked: u64,
    /// Messages re-framed because a redaction changed their length.
    pub reframed_messages: u64,
}

impl SummaryText {
    /// Adds a message-level summary whose per-column entries refer to
    /// columns of a result named by `column_name`.
    pub fn absorb(
        &mut self,
        setup: &MaskingSetup,
        summary: &MaskSummary,
        column_name: impl Fn(u16) -> Option<String>,
    ) {
        self.values_masked += summary.total();
        self.reframed_messages += summary.reframed_messages;
        // Per-column counts first; what remains of each detector's total
        // was found outside result columns.
        let mut outside: Vec<(DetectorId, u64)> = summary
            .by_detector
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(id, &n)| (id as DetectorId, n))
            .collect();
        if summary.whole_values > 0 {
            outside.push((WHOLE_VALUE, summary.whole_values));
        }
        for &(column, detector, count) in summary.columns() {
            if let Some(entry) = outside.iter_mut().find(|e| e.0 == detector) {
                entry.1 = entry.1.saturating_sub(count);
            }
            self.add(setup.detector_name(detector), column_name(column), count);
        }
        // Counts the message summary could not attribute to a column
        // (its column table was full) stay attributed to no column.
        for (detector, count) in outside {
            if count > 0 {
                self.add(setup.detector_name(detector), None, count);
            }
        }
    }

    fn add(&mut self, detector: &str, column: Option<String>, count: u64) {
        let key = (detector.to_owned(), column);
        if let Some(n) = self.entries.get_mut(&key) {
            *n += count;
        } else if self.entries.len() < SUMMARY_ENTRIES_MAX {
            self.entries.insert(key, count);
        } else {
            self.other += count;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values_masked == 0
    }

    /// The `rules` text of the ledger record (grammar in
    /// ledger/FORMAT.md): `profile=NAME` then `; DETECTOR COLUMN COUNT`
    /// entries, COLUMN being a JSON string or `-`, then `; other COUNT`
    /// and `; reframed COUNT` when non-zero.
    pub fn render(&self, profile: &str) -> String {
        let mut out = format!("profile={profile}");
        for ((detector, column), count) in &self.entries {
            let _ = write!(out, "; {detector} ");
            match column {
                // Any JSON string encoding will do (FORMAT.md); serde_json's
                // escapes every quote, backslash and control character.
                Some(c) => out.push_str(&serde_json::Value::from(c.as_str()).to_string()),
                None => out.push('-'),
            }
            let _ = write!(out, " {count}");
        }
        if self.other > 0 {
            let _ = write!(out, "; other {}", self.other);
        }
        if self.reframed_messages > 0 {
            let _ = write!(out, "; reframed {}", self.reframed_messages);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::Builtin;

    fn setup(text: &str) -> MaskingSetup {
        MaskingSetup::new(toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn profiles_resolve_with_builtin_default_and_none() {
        let s = setup(
            r#"
            default_profile = "analyst"
            [profiles.analyst]
            except = ["ipv4"]
            "#,
        );
        let analyst = s.profile(None);
        assert_eq!(analyst.name, "analyst");
        assert!(!analyst.detectors.contains(Builtin::Ipv4 as u16));
        assert!(analyst.detectors.contains(Builtin::Email as u16));
        assert!(s.profile(Some("none")).detectors.is_empty());
        assert!(!s.profile(Some("none")).column_rules);
        assert_eq!(
            s.profile(Some("default")).detectors,
            Profile::all().detectors
        );
    }

    #[test]
    fn unknown_default_profile_is_refused_with_its_key_path() {
        let cfg: MaskingConfig = toml::from_str("default_profile = \"nobody\"").unwrap();
        let errors = MaskingSetup::new(cfg).unwrap_err();
        assert_eq!(errors[0].path, "masking.default_profile");
    }

    #[test]
    fn bounds_are_checked() {
        let cfg: MaskingConfig = toml::from_str(
            "pending_binds_max = 0\nstatement_shapes_max = 0\ncatalog_timeout_ms = 0",
        )
        .unwrap();
        let errors = MaskingSetup::new(cfg).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "masking.pending_binds_max",
                "masking.statement_shapes_max",
                "masking.catalog_timeout_ms"
            ]
        );
    }

    #[test]
    fn table_names_with_quotes_are_refused() {
        let cfg: MaskingConfig =
            toml::from_str("[[column_rules]]\ntable = \"x'; drop table y; --\"\ncolumn = \"c\"")
                .unwrap();
        let errors = MaskingSetup::new(cfg).unwrap_err();
        assert_eq!(errors[0].path, "masking.column_rules[0].table");
    }

    #[test]
    fn summary_text_names_detectors_and_columns_never_values() {
        let s = setup("");
        let email = s.engine.detector_id("email").unwrap();
        let card = s.engine.detector_id("card").unwrap();
        let mut m = MaskSummary::default();
        m.record(email, Some(1));
        m.record(email, Some(1));
        m.record(email, None);
        m.record(card, Some(0));
        m.record_whole(Some(2));
        let mut text = SummaryText::default();
        let names = ["card_number", "e\"mail", "ssn"];
        text.absorb(&s, &m, |c| names.get(usize::from(c)).map(|n| n.to_string()));
        assert_eq!(text.values_masked, 5);
        let card_name = s.detector_name(card).to_owned();
        let rendered = text.render("default");
        assert!(rendered.starts_with("profile=default; "), "{rendered}");
        assert!(rendered.contains("; email \"e\\\"mail\" 2"), "{rendered}");
        assert!(rendered.contains("; email - 1"), "{rendered}");
        assert!(
            rendered.contains(&format!("; {card_name} \"card_number\" 1")),
            "{rendered}"
        );
        assert!(rendered.contains("; whole_value \"ssn\" 1"), "{rendered}");
    }
}
