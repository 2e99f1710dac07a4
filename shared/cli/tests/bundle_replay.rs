//! `executor bundle test` and `executor bundle record`: every committed bundle's fixtures
//! replay green against the real lifecycle; a fixture whose expectation is wrong fails with a
//! diff; a fixture recorded against the simulators replays green; input refused at submit
//! (an oversize image, a private URL) never reaches the provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn executor(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_bundle_passes_its_fixtures() {
    let (code, out) = executor(&["bundle", "test", "all"]);
    assert_eq!(code, 0, "{out}");
    let bundles = executor_bundles::catalog::bundle_files(&repo().join("bundles")).unwrap();
    for b in &bundles {
        let id = executor_bundles::catalog::check_file(b).unwrap().id;
        assert!(
            out.contains(&format!("ok   {id} success ")),
            "{id} success: {out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("ok   {id} ")) && l.contains(" drift")),
            "{id} has no drifted-answer fixture: {out}"
        );
        // At least one failure kind and one refusal or empty output per bundle.
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("ok   {id} ")) && l.contains("failed, ")),
            "{id} has no failure fixture: {out}"
        );
    }
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("runway-gen4-turbo");
    std::fs::create_dir_all(&target).unwrap();
    let text =
        std::fs::read_to_string(repo().join("bundles/fixtures/runway-gen4-turbo/success.yaml"))
            .unwrap();
    let wrong = text.replace("outcome: succeeded", "outcome: failed");
    assert_ne!(text, wrong);
    std::fs::write(target.join("success.yaml"), wrong).unwrap();
    let (code, out) = executor(&[
        "bundle",
        "test",
        "bundles/runway-gen4-turbo.yaml",
        "--fixtures",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL runway/gen4-turbo success"), "{out}");
    assert!(out.contains("-outcome: failed"), "{out}");
    assert!(out.contains("+outcome: succeeded"), "{out}");
    assert!(out.contains("0 fixture(s) passed, 1 failed"), "{out}");

    // A bundle without fixtures fails too.
    let (code, out) = executor(&[
        "bundle",
        "test",
        "luma/ray-2",
        "--fixtures",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no fixtures"), "{out}");
}

#[test]
fn a_recorded_fixture_replays() {
    let dir = tempfile::tempdir().unwrap();
    let fx = dir.path().to_str().unwrap();
    let (code, out) = executor(&[
        "bundle",
        "record",
        "runway/gen4-turbo",
        "--name",
        "recorded",
        "--input",
        r#"{"promptImage":"https://example.com/f.png","promptText":"waves sim:poll_error=1"}"#,
        "--fixtures",
        fx,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(succeeded)"), "{out}");
    let file = dir.path().join("runway-gen4-turbo/recorded.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("path: /v1/image_to_video"), "{text}");
    assert!(
        text.contains("status: 503"),
        "the poll error is recorded: {text}"
    );
    assert!(!text.contains("Bearer"), "no credentials in fixtures");
    assert!(
        !text.contains("127.0.0.1"),
        "no loopback URLs in fixtures: {text}"
    );
    let (code, out) = executor(&["bundle", "test", "runway/gen4-turbo", "--fixtures", fx]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok   runway/gen4-turbo recorded (succeeded)"),
        "{out}"
    );
}
