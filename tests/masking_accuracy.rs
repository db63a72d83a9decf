//! Recall and precision of the built-in detectors on a generated,
//! labelled corpus of sensitive values in many formats and benign
//! look-alikes (UUIDs, timestamps, order numbers, prices, versions, dates,
//! ISBNs, invalid phone numbers, Luhn-invalid card numbers, invalid SSNs,
//! digests, epoch times).

use std::sync::Arc;

use sluice::masking::corpus::labelled;
use sluice::masking::{Builtin, DetectorSet, Engine};

#[test]
fn recall_and_precision() {
    let engine = Arc::new(Engine::builtin().unwrap());
    let mut scanner = engine.scanner().unwrap();
    let samples = labelled(0x5151_2024, 15_000);
    let mut labelled_total = 0usize;
    let mut covered = 0usize;
    let mut right_detector = 0usize;
    let mut true_findings = 0usize;
    let mut false_findings = 0usize;
    let mut missed: Vec<String> = Vec::new();
    let mut false_examples: Vec<String> = Vec::new();
    let mut per_kind = [(0usize, 0usize); 15];
    for s in &samples {
        let scan = scanner.scan(s.text.as_bytes(), DetectorSet::ALL);
        assert!(scan.complete);
        if let Some((kind, range)) = &s.label {
            labelled_total += 1;
            per_kind[*kind as usize].0 += 1;
            let hit = scan
                .findings
                .iter()
                .find(|f| f.start <= range.start && f.end >= range.end);
            if let Some(f) = hit {
                covered += 1;
                per_kind[*kind as usize].1 += 1;
                if f.detector == *kind as u16 {
                    right_detector += 1;
                }
            } else if missed.len() < 10 {
                missed.push(format!("{kind:?}: {:?} -> {:?}", s.text, scan.findings));
            }
        }
        for f in scan.findings {
            let overlaps = s
                .label
                .as_ref()
                .is_some_and(|(_, r)| f.start < r.end && f.end > r.start);
            if overlaps {
                true_findings += 1;
            } else {
                false_findings += 1;
                if false_examples.len() < 10 {
                    false_examples.push(format!(
                        "{:?} [{}..{}] det {}",
                        s.text, f.start, f.end, f.detector
                    ));
                }
            }
        }
    }
    let recall = covered as f64 / labelled_total as f64;
    let precision = true_findings as f64 / (true_findings + false_findings) as f64;
    println!(
        "masking accuracy over {} samples ({} sensitive, {} look-alikes)",
        samples.len(),
        labelled_total,
        samples.len() - labelled_total
    );
    println!(
        "recall    {:.4}% ({covered}/{labelled_total}; right detector {right_detector})",
        recall * 100.0
    );
    println!(
        "precision {:.4}% ({true_findings} true, {false_findings} false findings)",
        precision * 100.0
    );
    for (i, (n, hit)) in per_kind.iter().enumerate() {
        println!(
            "  {:<18} recall {:.2}% ({hit}/{n})",
            Builtin::ALL[i].name(),
            *hit as f64 * 100.0 / *n as f64
        );
    }
    for m in &missed {
        println!("missed: {m}");
    }
    for f in &false_examples {
        println!("false: {f}");
    }
    assert!(recall >= 0.995, "recall {recall}");
    assert!(precision >= 0.98, "precision {precision}");
}
