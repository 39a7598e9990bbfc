//! The dependency rule, as a check: the operators are pure logic, so nothing that does
//! I/O or runs a runtime may reach them (in the spirit of DataFusion's depcheck).

use std::process::Command;

const FORBIDDEN: [&str; 7] = [
    "tokio",
    "rdkafka",
    "object_store",
    "parquet",
    "datafusion",
    "arrow",
    "rumqttc",
];

#[test]
fn operators_depend_on_no_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "stationflow-operators",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"stationflow-schemas"),
        "the tree lists the operators' dependencies:\n{tree}"
    );
    let found: Vec<&&str> = FORBIDDEN
        .iter()
        .filter(|f| {
            crates
                .iter()
                .any(|c| c == *f || c.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(found.is_empty(), "operators must not depend on {found:?}");
}
