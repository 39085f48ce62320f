//! What the package says of itself matches what it is: the Rust version it declares is the
//! one its locked dependencies need, and its license file is the license it declares.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// `cargo metadata` of the workspace, for Linux, from the lock file as committed.
fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata writes JSON")
}

/// A `major.minor[.patch]` version as a comparable triple.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Every package the bridge's binary is built from (normal and build dependencies, not the
/// ones only its tests use), by id, from the bridge itself.
fn built_from(meta: &Value, root: &str) -> BTreeSet<String> {
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("a resolve graph")
        .iter()
        .map(|n| (n["id"].as_str().expect("an id"), n))
        .collect();
    let mut seen = BTreeSet::new();
    let mut next = vec![root.to_owned()];
    while let Some(id) = next.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in nodes[id.as_str()]["deps"].as_array().into_iter().flatten() {
            let needed = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if needed {
                next.push(dep["pkg"].as_str().expect("a package id").to_owned());
            }
        }
    }
    seen
}

#[test]
fn the_declared_rust_version_is_what_the_locked_dependencies_need() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let bridge = packages
        .iter()
        .find(|p| p["name"] == "converja-bridge")
        .expect("the bridge's package");
    let declared = bridge["rust_version"]
        .as_str()
        .expect("Cargo.toml declares rust-version");
    let ids = built_from(&meta, bridge["id"].as_str().expect("an id"));
    let (neediest, needed) = packages
        .iter()
        .filter(|p| ids.contains(p["id"].as_str().unwrap_or_default()))
        .filter_map(|p| Some((p["name"].as_str()?, p["rust_version"].as_str()?)))
        .max_by_key(|(_, v)| version(v))
        .expect("some dependency declares a Rust version");
    assert_eq!(
        version(declared),
        version(needed),
        "Cargo.toml declares rust-version {declared}, but {neediest} needs {needed}: declare \
         what the lock file needs, no less (Cargo would refuse to build) and no more"
    );
}

#[test]
fn the_license_file_is_the_declared_license() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let license = std::fs::read_to_string(root.join("LICENSE")).expect("a LICENSE file");
    assert_eq!(env!("CARGO_PKG_LICENSE"), "MIT");
    assert!(license.starts_with("MIT License"), "LICENSE is not MIT");
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).expect("a changelog");
    assert!(
        changelog.contains(&format!("## [{}]", env!("CARGO_PKG_VERSION"))),
        "CHANGELOG.md has no entry for version {}",
        env!("CARGO_PKG_VERSION")
    );
}
