//! The layout in `src/lib.rs`, enforced: each part of the bridge may only reach the parts
//! beneath it. A test reads the source and names every import that crosses a line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each part must not import: external crates by name, and this crate's modules.
const RULES: &[(&str, &[&str], &[&str])] = &[
    (
        // The domain knows no transport, and no database: it records changes in a journal.
        "agents",
        &[
            "socketioxide",
            "axum",
            "tower_http",
            "tokio_xmpp",
            "xmpp_parsers",
            "hyper",
            "sqlx",
        ],
        &[
            "gateway", "platform", "xmpp", "pending", "bridge", "app", "http", "sim", "demo",
        ],
    ),
    (
        // Protocol types are values: no I/O, no transport, no knowledge of their users.
        "converja",
        &[
            "socketioxide",
            "axum",
            "tokio",
            "tokio_xmpp",
            "xmpp_parsers",
            "hyper",
        ],
        &[
            "agents", "gateway", "platform", "xmpp", "pending", "bridge", "app", "sim",
        ],
    ),
    (
        // socket.io talks to the core only, never to XMPP.
        "gateway",
        &["tokio_xmpp", "xmpp_parsers", "hyper"],
        &["platform", "xmpp", "pending", "bridge", "sim"],
    ),
    (
        "platform",
        &["socketioxide", "axum"],
        &["agents", "gateway", "bridge", "app", "sim"],
    ),
    (
        "xmpp",
        &["socketioxide", "axum"],
        &["agents", "gateway", "platform", "bridge", "app", "sim"],
    ),
    (
        // The store keeps values for the core; it knows neither the core nor any transport.
        "store",
        &[
            "socketioxide",
            "axum",
            "tokio_xmpp",
            "xmpp_parsers",
            "hyper",
        ],
        &[
            "agents", "gateway", "platform", "xmpp", "pending", "bridge", "app", "http", "sim",
        ],
    ),
    (
        // Sign-in proofs are checked for the gateway; they know no transport and no core.
        "signin",
        &["socketioxide", "axum", "tokio_xmpp", "xmpp_parsers", "sqlx"],
        &[
            "agents", "gateway", "platform", "xmpp", "pending", "bridge", "app", "http", "sim",
            "store",
        ],
    ),
    (
        // The simulator plays the platform: it knows the protocol and XMPP, not the bridge.
        "sim",
        &["socketioxide", "axum"],
        &["agents", "gateway", "bridge", "app", "http"],
    ),
];

/// The `.rs` files of a module: `src/<name>.rs` or everything under `src/<name>/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Source without comments, so that prose may name anything.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every item in a `{a, b::c, d::{e}}` group starting at `s`.
fn group_heads(s: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                heads.push(ident_at(s[start..i].trim_start()));
                start = i + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    heads.into_iter().filter(|h| !h.is_empty()).collect()
}

/// Every module of this crate that `source` names (`crate::x`, `crate::{x, y}`), and every
/// external crate among `crates` it names as a path (`x::...`).
fn reached(source: &str, crates: &[&str]) -> BTreeSet<String> {
    let code = code(source);
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `converja_bridge::`
        }
        let rest = &code[i + "crate::".len()..];
        if rest.starts_with('{') {
            found.extend(group_heads(rest).into_iter().map(|h| format!("crate::{h}")));
        } else {
            found.insert(format!("crate::{}", ident_at(rest)));
        }
    }
    for name in crates {
        let needle = format!("{name}::");
        for (i, _) in code.match_indices(&needle) {
            let before = code[..i].chars().last();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                found.insert((*name).to_owned());
            }
        }
    }
    found
}

fn violations() -> Vec<String> {
    let mut out = Vec::new();
    for (module, crates, modules) in RULES {
        let files = files_of(module);
        assert!(!files.is_empty(), "no source found for {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source is readable");
            for name in reached(&text, crates) {
                let forbidden = crates.contains(&name.as_str())
                    || name
                        .strip_prefix("crate::")
                        .is_some_and(|m| modules.contains(&m));
                if forbidden {
                    out.push(format!("{} uses {name}", file.display()));
                }
            }
        }
    }
    out
}

#[test]
fn each_part_imports_only_what_the_layout_allows() {
    let found = violations();
    assert!(
        found.is_empty(),
        "imports across the layout:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_plain_grouped_and_external_imports() {
    let source = "use crate::gateway::Sink;\n\
                  use crate::{converja::CallId, platform::{Platform, Update}};\n\
                  // crate::xmpp in a comment is prose\n\
                  let x = socketioxide::SocketIo::new();\n\
                  use converja_bridge::sim;\n";
    let found = reached(source, &["socketioxide", "tokio_xmpp"]);
    let expected: BTreeSet<String> = [
        "crate::gateway",
        "crate::converja",
        "crate::platform",
        "socketioxide",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(found, expected);
}
