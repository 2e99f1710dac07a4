//! `bundle infer` against providers it was not written against: for every committed model
//! read by the declared adapter, the output mapping proposed from its recorded fixtures is
//! compared with the one its model file declares (the written reference). At least five
//! providers' mappings must be proposed exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::replay;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// The comparable core of an output rule: where the array is, what the item is, and the
/// pointer that holds the media or text.
fn core(rule: &Value) -> (String, String, String) {
    let each = rule["each"].as_str().unwrap_or("").to_string();
    let kind = rule["kind"].as_str().unwrap_or("").to_string();
    let at = ["url", "base64", "hex", "text", "json"]
        .iter()
        .find_map(|k| rule[*k].as_str().map(|p| format!("{k}:{p}")))
        .unwrap_or_default();
    (each, kind, at)
}

#[test]
fn infer_proposes_the_output_mapping_of_at_least_five_providers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bundles");
    let all = replay::bundles_by_id(&dir).unwrap();
    let mut exact_providers = BTreeSet::new();
    let mut report = Vec::new();
    for (id, (file, bundle)) in &all {
        let Some(interpret) = bundle
            .interpret
            .as_ref()
            .filter(|_| bundle.adapter == "declared")
        else {
            continue;
        };
        let fixtures_dir = replay::fixtures_of(&dir.join("fixtures"), file);
        let fixtures: Vec<_> = replay::fixture_files(&fixtures_dir)
            .unwrap_or_default()
            .iter()
            .map(|f| replay::read_fixture(f).unwrap())
            .collect();
        if fixtures.is_empty() {
            continue;
        }
        let proposal = executor_cli::infer::propose(&fixtures);
        let proposed: BTreeSet<_> = proposal["interpret"]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(core)
            .collect();
        let declared: BTreeSet<_> = interpret
            .outputs
            .iter()
            .map(|o| core(&serde_json::to_value(o).unwrap()))
            .collect();
        // Exact: every declared output rule proposed (extra proposals are for the reviewer).
        let exact = declared.is_subset(&proposed);
        if exact {
            exact_providers.insert(bundle.provider.clone());
        }
        report.push(format!(
            "{} {id}: declared {declared:?} proposed {proposed:?}",
            if exact { "ok  " } else { "MISS" }
        ));
    }
    println!("{}", report.join("\n"));
    assert!(
        exact_providers.len() >= 5,
        "exact proposals for {} provider(s) only: {exact_providers:?}\n{}",
        exact_providers.len(),
        report.join("\n")
    );
}
