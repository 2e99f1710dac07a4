//! Embeds the repository's bundles into the Lambda binaries, so a deployment zip carries the
//! exact bundles it was built and tested with.
use std::fmt::Write as _;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bundles");
    let providers = dir.join("providers");
    println!("cargo:rerun-if-changed={}", providers.display());
    println!("cargo:rerun-if-changed={}", dir.display());
    // A zip without bundles serves nothing: refuse to build one (a stale build-script output
    // from another checkout once embedded an empty list and every model was "unknown").
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => fail(&format!(
            "cannot read the bundles directory {}: {e}",
            dir.display()
        )),
    };
    // Provider files (bundles/providers/*.yaml), which the model files extend.
    if let Ok(rd) = std::fs::read_dir(&providers) {
        files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
    }
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "yaml" || x == "yml"));
    files.sort();
    if files.is_empty() {
        fail(&format!("no bundle (*.yaml) in {}", dir.display()));
    }
    let mut out = String::from(
        "/// Bundles embedded at build time: (file name, YAML).\npub const BUNDLES: &[(&str, &str)] = &[\n",
    );
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .strip_prefix(&dir)
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("bundles.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=could not write embedded bundles: {e}");
    }
}

/// Stops the build with one line naming what is wrong.
fn fail(why: &str) -> ! {
    eprintln!("error: {why}");
    std::process::exit(1)
}
