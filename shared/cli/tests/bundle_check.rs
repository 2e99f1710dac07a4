//! `executor bundle check`: the repository's bundles pass; a deliberately broken bundle is
//! rejected with the file, the path, the message and a hint, and the exit status says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["bundle", "check"])
        .arg(path)
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

fn repo_bundle(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../bundles")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_repository_bundles_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bundles");
    let (code, out) = check(&dir);
    assert_eq!(code, 0, "{out}");
    let valid: usize = out
        .lines()
        .find_map(|l| l.strip_suffix(" bundle(s) valid")?.parse().ok())
        .unwrap_or(0);
    assert!(valid >= 60, "{out}");
    assert!(out.contains("ok  runway/gen4-turbo"), "{out}");
}

#[test]
fn broken_bundles_are_rejected_with_file_path_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    // The model files extend the provider files beside them.
    let providers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bundles/providers");
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    for e in std::fs::read_dir(&providers).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(
            &p,
            dir.path().join("providers").join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    // An unknown field.
    let unknown = dir.path().join("unknown-field.yaml");
    std::fs::write(
        &unknown,
        repo_bundle("runway-gen4-turbo.yaml").replacen(
            "modality: video",
            "modality: video\ncolour: blue",
            1,
        ),
    )
    .unwrap();
    let (code, out) = check(&unknown);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown-field.yaml: "), "{out}");
    assert!(out.contains("unknown field `colour`"), "{out}");
    assert!(out.contains("(hint: "), "{out}");
    // An adapter that does not exist.
    let adapter = dir.path().join("adapter.yaml");
    std::fs::write(
        &adapter,
        repo_bundle("runway-gen4-turbo.yaml").replacen(
            "extends: runway",
            "extends: runway\nadapter: runwayy",
            1,
        ),
    )
    .unwrap();
    let (code, out) = check(&adapter);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("adapter.yaml: adapter: unknown adapter `runwayy`"),
        "{out}"
    );
    // Both at once through the directory: every problem is listed.
    let (code, out) = check(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 problem(s) in 2 bundle file(s)"), "{out}");
}
