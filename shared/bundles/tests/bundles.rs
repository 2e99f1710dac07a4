//! The committed bundles load and pass their checks; the committed JSON Schema matches the
//! format; a broken bundle is refused with the file, the field and a hint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_bundles::catalog::{CatalogOptions, check_file};
use executor_bundles::{BundleCatalog, BundleError};
use executor_lifecycle::Catalog;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dev_options() -> CatalogOptions {
    let mut o = CatalogOptions::from_env();
    o.allow_missing_credentials = true;
    o
}

/// The provider-file and model-file schemas (docs/provider.schema.json, docs/model.schema.json).
#[test]
fn committed_provider_and_model_schemas_match_the_format() {
    let (provider, model) = executor_bundles::compose::json_schemas();
    for (name, schema) in [("provider", provider), ("model", model)] {
        let path = repo().join(format!("docs/{name}.schema.json"));
        let rendered = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            rendered,
            "docs/{name}.schema.json drifted; run UPDATE_DOCS=1 cargo test -p executor-bundles"
        );
    }
}

#[test]
fn committed_schema_matches_the_format() {
    let path = repo().join("docs/bundle.schema.json");
    let rendered =
        serde_json::to_string_pretty(&executor_bundles::format::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, rendered,
        "docs/bundle.schema.json drifted; run UPDATE_DOCS=1 cargo test -p executor-bundles"
    );
}

/// `docs/bundles/<stem>.md` per bundle and `docs/bundles/README.md`, as generated.
#[test]
fn committed_bundle_pages_match_the_generator() {
    let dir = repo().join("docs/bundles");
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut all = Vec::new();
    let mut expected_files = vec!["README.md".to_string()];
    for f in executor_bundles::catalog::bundle_files(&repo().join("bundles")).unwrap() {
        let bundle = check_file(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let page = executor_bundles::docs::page(&bundle, &name);
        let path = dir.join(format!("{stem}.md"));
        if update {
            std::fs::write(&path, &page).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            page,
            "{} drifted from bundles/{name}; run UPDATE_DOCS=1 cargo test -p executor-bundles --test bundles",
            path.display()
        );
        // The page says what matters to a user.
        assert!(
            page.contains(&bundle.id) && page.contains("## Pricing") && page.contains("## Errors")
        );
        expected_files.push(format!("{stem}.md"));
        all.push((name, bundle));
    }
    let index = executor_bundles::docs::index(&all);
    if update {
        std::fs::write(dir.join("README.md"), &index).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap_or_default(),
        index,
        "docs/bundles/README.md drifted; run UPDATE_DOCS=1 cargo test -p executor-bundles --test bundles"
    );
    // No page for a bundle that is gone.
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "stale pages in docs/bundles");
}

/// Every class the adapters document is a real class of the taxonomy.
#[test]
fn documented_error_classes_exist() {
    for name in executor_bundles::adapters::NAMES {
        let a = executor_bundles::adapters::by_name(name).unwrap();
        assert!(!a.error_table().is_empty(), "{name} documents no errors");
        for (signal, class, _) in a.error_table() {
            if class.starts_with('(') || *class == "by type" {
                continue;
            }
            for c in class.split(" / ") {
                assert!(
                    executor_lifecycle::ErrorClass::parse(c).is_some(),
                    "{name}: {signal}: unknown class {c}"
                );
            }
        }
    }
}

#[test]
fn every_committed_bundle_loads() {
    let catalog = BundleCatalog::load(&repo().join("bundles"), dev_options()).unwrap();
    let ids: Vec<String> = catalog.list().iter().map(|d| d.spec().id.clone()).collect();
    assert!(ids.len() >= 8, "{ids:?}");
    for shape in ["immediate", "polling", "callback"] {
        assert!(
            catalog
                .list()
                .iter()
                .any(|d| d.spec().shape.as_str() == shape),
            "no {shape} bundle"
        );
    }
}

#[test]
fn missing_credentials_are_refused_unless_allowed() {
    let mut o = CatalogOptions::from_env();
    o.secrets = std::sync::Arc::new(executor_bundles::catalog::MapSecrets(Default::default()));
    match BundleCatalog::load(&repo().join("bundles"), o) {
        Err(BundleError::Invalid(issues)) => assert!(
            issues.iter().any(|i| i.message.contains("is not set")),
            "{issues:?}"
        ),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded without credentials"),
    }
}

/// With `missing_credentials_fail_executions` (the Lambda functions) the catalog loads without
/// FAL_KEY: fal's model names it among the missing credentials and its submit, poll, cancel
/// and lookup fail with `pipeline_configuration` (code `missing_credential`) without a call;
/// a model whose credential is there is unaffected.
#[tokio::test]
async fn a_missing_credential_fails_only_its_models_calls() {
    use executor_lifecycle::{
        CallContext, ErrorClass, ExecutionRequest, JobCreation, LookupOutcome, PollOutcome,
        SubmitOutcome,
    };
    let mut o = CatalogOptions::from_env();
    o.missing_credentials_fail_executions = true;
    // Every credential any model names, but fal's.
    let all = BundleCatalog::load(&repo().join("bundles"), dev_options()).unwrap();
    let keys: std::collections::BTreeSet<String> = all
        .drivers()
        .flat_map(|d| d.bundle().credentials.clone())
        .filter(|k| k != "FAL_KEY")
        .collect();
    o.secrets = std::sync::Arc::new(executor_bundles::catalog::MapSecrets(
        keys.iter().map(|k| (k.clone(), "k".to_string())).collect(),
    ));
    let catalog = BundleCatalog::load(&repo().join("bundles"), o).unwrap();
    let fal: Vec<(String, String)> = all
        .drivers()
        .filter(|d| d.bundle().provider == "fal")
        .map(|d| (d.bundle().id.clone(), "FAL_KEY".to_string()))
        .collect();
    assert!(fal.len() >= 2);
    assert_eq!(catalog.missing_credentials(), fal);
    let fal = catalog.get("fal-ai/flux-dev").unwrap();
    let ctx = CallContext {
        final_look: false,
        request: ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: "ex_nokey".into(),
            tenant: "t".into(),
            model: "fal-ai/flux-dev".into(),
            input: fal.validate(&serde_json::json!({"prompt": "x"})).unwrap(),
            webhook_url: None,
            idempotency_key: None,
            max_duration_ms: 60_000,
            created_at_ms: 0,
        },
        attempt: 1,
        job_id: Some("job".into()),
        // Unreachable: a call would fail differently (provider_unavailable).
        callback_url: "http://127.0.0.1:9/cb".into(),
        deadline_ms: i64::MAX,
    };
    let check = |f: &executor_lifecycle::Failure| {
        assert_eq!(f.class, ErrorClass::PipelineConfiguration, "{f:?}");
        assert_eq!(f.provider_code.as_deref(), Some("missing_credential"));
        assert!(f.message.contains("FAL_KEY"), "{}", f.message);
    };
    let reply = fal.submit(&ctx).await;
    assert!(reply.calls.is_empty());
    match reply.outcome {
        SubmitOutcome::Rejected {
            failure, creation, ..
        } => {
            check(&failure);
            assert_eq!(creation, JobCreation::NotCreated);
        }
        other => panic!("{other:?}"),
    }
    match fal.poll(&ctx).await.outcome {
        PollOutcome::CallFailed(f) => check(&f),
        other => panic!("{other:?}"),
    }
    check(&fal.cancel(&ctx).await.outcome.unwrap_err());
    match fal.lookup(&ctx).await.outcome {
        LookupOutcome::Failed(f) => check(&f),
        LookupOutcome::Unsupported => {}
        other => panic!("{other:?}"),
    }
    assert!(
        catalog
            .drivers()
            .filter(|d| d.bundle().provider != "fal")
            .all(|d| d.missing_credentials().is_empty())
    );
}

#[test]
fn a_broken_bundle_is_refused_with_file_field_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let model = std::fs::read_to_string(repo().join("bundles/runway-gen4-turbo.yaml")).unwrap();
    let provider = std::fs::read_to_string(repo().join("bundles/providers/runway.yaml")).unwrap();
    // (file, model file text, provider file text, expected message)
    let cases = [
        (
            "unknown-field.yaml",
            model.replace(
                "id: runway/gen4-turbo",
                "id: runway/gen4-turbo
modle: typo",
            ),
            provider.clone(),
            "unknown field `modle`",
        ),
        (
            "bad-adapter.yaml",
            model.clone(),
            provider.replace("adapter: runway", "adapter: nosuch"),
            "unknown adapter `nosuch`",
        ),
        (
            "undefined-var.yaml",
            model.clone(),
            provider.replace("{{ job.id }}", "{{ jobb.id }}"),
            "undefined variable `jobb`",
        ),
        (
            "bad-template.yaml",
            model.clone(),
            provider.replace("{{ job.id }}", "{{ job.id "),
            "bad template",
        ),
        (
            "no-poll.yaml",
            model.clone(),
            provider.replace("  poll:\n", "  pol_removed:\n"),
            "unknown field",
        ),
        (
            "conflict.yaml",
            model.replace(
                "extends: runway",
                "extends: runway\nbase_url: https://elsewhere",
            ),
            provider.clone(),
            "conflicting override: `base_url` belongs to the provider file",
        ),
        (
            "no-provider.yaml",
            model.replace("extends: runway", "extends: runwai"),
            provider.clone(),
            "no provider file for `runwai`",
        ),
        (
            "unused-endpoint.yaml",
            model.clone(),
            provider.replace("{{ model.endpoint }}", "/v1/image_to_video"),
            "the endpoint is not used",
        ),
    ];
    for (i, (name, model_text, provider_text, expected)) in cases.into_iter().enumerate() {
        let case = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(case.join("providers")).unwrap();
        std::fs::write(case.join("providers/runway.yaml"), provider_text).unwrap();
        let file = case.join(name);
        std::fs::write(&file, model_text).unwrap();
        let issues = check_file(&file).expect_err(name);
        let all = issues
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains(expected), "{name}: {all}");
        assert!(
            all.contains(name) || all.contains("runway.yaml"),
            "names the file: {all}"
        );
        assert!(all.contains("hint"), "gives a hint: {all}");
        // The catalog refuses the whole directory.
        assert!(
            matches!(
                BundleCatalog::load(&case, dev_options()),
                Err(BundleError::Invalid(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn input_validation_names_the_field() {
    let catalog = BundleCatalog::load(&repo().join("bundles"), dev_options()).unwrap();
    let d = catalog.get("openai/gpt-image-1").unwrap();
    let missing = d.validate(&serde_json::json!({})).unwrap_err();
    assert_eq!(missing.field.as_deref(), Some("/input/prompt"));
    let wrong = d
        .validate(&serde_json::json!({"prompt": "x", "n": "two"}))
        .unwrap_err();
    assert_eq!(wrong.field.as_deref(), Some("/input/n"));
    let extra = d
        .validate(&serde_json::json!({"prompt": "x", "colour": 1}))
        .unwrap_err();
    assert_eq!(extra.class.as_str(), "validation_error");
    let ok = d.validate(&serde_json::json!({"prompt": "x"})).unwrap();
    assert_eq!(ok["size"], "1024x1024", "defaults applied");
}

/// gpt-image-1 prices text and image input tokens apart (list prices per million tokens at
/// https://developers.openai.com/api/docs/models/gpt-image-1: text input $5, image input $10,
/// image output $40); the answer splits its input in `usage.input_tokens_details` (openai-python
/// `ImagesResponse.Usage.input_tokens_details {text_tokens, image_tokens}`).
#[test]
fn gpt_image_1_prices_text_and_image_input_tokens_apart() {
    use executor_bundles::{adapters::by_name, http::HttpResponse, pricing};
    let bundle = check_file(&repo().join("bundles/openai-gpt-image-1.yaml")).unwrap();
    let answer = HttpResponse {
        status: 200,
        headers: serde_json::Map::new(),
        body: serde_json::json!({"created": 1, "data": [{"b64_json": "iVBOR"}], "size": "1024x1024", "output_format": "png",
            "usage": {"total_tokens": 5210, "input_tokens": 1050, "output_tokens": 4160,
                "input_tokens_details": {"text_tokens": 50, "image_tokens": 1000}}}),
    };
    let result = by_name("openai")
        .unwrap()
        .normalize_immediate(&answer, &serde_json::Value::Null)
        .unwrap();
    let cost = pricing::compute(&bundle.pricing, &result);
    // 50 × $5 + 1000 × $10 + 4160 × $40 per million, in micro-dollars.
    assert_eq!(cost.provider_usd_micros, 250 + 10_000 + 166_400, "{cost:?}");
    let units: Vec<&str> = cost.lines.iter().map(|l| l.unit.as_str()).collect();
    assert_eq!(
        units,
        ["input_text_token", "input_image_token", "output_token"]
    );
}
