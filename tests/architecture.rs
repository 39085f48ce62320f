//! The layout written in `docs/architecture.toml`, enforced: every source file belongs to one
//! part, and each part imports only the parts it lists. A test reads the source and names
//! every import that crosses a line, with the reason when it breaks one of the `never` arrows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The layout as the data file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layout {
    parts: BTreeMap<String, Part>,
    #[serde(default)]
    never: Vec<Never>,
}

/// One part of the crate: its files, what it may import, what it never imports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    files: Vec<String>,
    #[allow(dead_code)]
    about: String,
    uses: Vec<String>,
    crates_never: Vec<String>,
}

/// An arrow that must never exist, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Never {
    from: String,
    to: String,
    why: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn layout() -> Layout {
    let text = std::fs::read_to_string(root().join("docs/architecture.toml"))
        .expect("docs/architecture.toml is readable");
    toml::from_str(&text).expect("docs/architecture.toml is a valid layout")
}

impl Layout {
    /// The part a file (a path relative to the repository, `src/...`) belongs to: the one
    /// with the longest matching prefix.
    fn part_of(&self, file: &str) -> Option<&str> {
        self.parts
            .iter()
            .flat_map(|(name, part)| part.files.iter().map(move |f| (name, f)))
            .filter(|(_, prefix)| {
                file == prefix.as_str() || (prefix.ends_with('/') && file.starts_with(*prefix))
            })
            .max_by_key(|(_, prefix)| prefix.len())
            .map(|(name, _)| name.as_str())
    }

    /// The part of the crate's top-level module `module`, by the file that declares it.
    fn part_of_module(&self, module: &str) -> Option<&str> {
        self.part_of(&format!("src/{module}.rs"))
            .or_else(|| self.part_of(&format!("src/{module}/mod.rs")))
    }

    /// What is wrong with the data itself: unknown parts, and `never` arrows a part uses.
    fn inconsistencies(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, part) in &self.parts {
            for used in &part.uses {
                if !self.parts.contains_key(used) {
                    out.push(format!("part {name} uses {used}, which is no part"));
                }
            }
        }
        for never in &self.never {
            match self.parts.get(&never.from) {
                None => out.push(format!("never-arrow from unknown part {}", never.from)),
                Some(part) if part.uses.contains(&never.to) => out.push(format!(
                    "part {} uses {}, an arrow that must never exist: {}",
                    never.from, never.to, never.why
                )),
                Some(_) => {}
            }
            if !self.parts.contains_key(&never.to) {
                out.push(format!("never-arrow to unknown part {}", never.to));
            }
        }
        out
    }

    /// Every import of `source` (the text of `file`) that its part may not make.
    fn violations_in(&self, file: &str, source: &str) -> Vec<String> {
        let Some(own) = self.part_of(file) else {
            return vec![format!("{file} belongs to no part")];
        };
        let part = &self.parts[own];
        let mut out = Vec::new();
        for module in reached_modules(file, source) {
            let Some(target) = self.part_of_module(&module) else {
                out.push(format!(
                    "{file} uses crate::{module}, which belongs to no part"
                ));
                continue;
            };
            if target == own || part.uses.iter().any(|u| u == target) {
                continue;
            }
            let why = self
                .never
                .iter()
                .find(|n| n.from == own && n.to == target)
                .map_or_else(
                    || format!("{own} does not list {target} in its uses"),
                    |n| n.why.clone(),
                );
            out.push(format!(
                "{file} ({own}) uses crate::{module} ({target}): {why}"
            ));
        }
        for name in reached_crates(source, &part.crates_never) {
            out.push(format!("{file} ({own}) uses the crate {name}"));
        }
        out
    }
}

/// Every `.rs` file under `src/`, as a path relative to the repository.
fn source_files() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable").flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root()).expect("under the repository");
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    files
}

/// Source without comments, so that prose may name anything.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The path of each item in a `{a, b::c, d::{e}}` group starting at `s`, up to its first
/// nested group.
fn group_items(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                items.push(s[start..i].trim());
                start = i + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    items.into_iter().filter(|h| !h.is_empty()).collect()
}

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`; the crate
/// roots are `[]`.
fn module_of(file: &str) -> Vec<String> {
    let inner = file.trim_start_matches("src/").trim_end_matches(".rs");
    if matches!(inner, "lib" | "main") || inner.starts_with("bin/") {
        return Vec::new();
    }
    let mut path: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if path.last().is_some_and(|l| l == "mod") {
        path.pop();
    }
    path
}

/// The top-level module a path names, from the module `base` it is written in: `crate::x::y`
/// and `converja_bridge::x` name `x`; `super::` climbs from `base`. `None` for the crate
/// root itself (its items are re-exports) and for paths that stay in `base`.
fn top_module(base: &[String], path: &str) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").map(str::trim).collect();
    let mut absolute: Vec<String> = match segments.first().copied() {
        Some("crate" | "converja_bridge") => {
            segments.remove(0);
            Vec::new()
        }
        Some("super") => {
            let mut at = base.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                at.pop();
            }
            at
        }
        _ => return None,
    };
    // Modules are lowercase; the first other segment is an item.
    for segment in segments {
        let name = ident_at(segment);
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            break;
        }
        absolute.push(name.to_owned());
    }
    absolute.into_iter().next()
}

/// Every top-level module of this crate that `source`, the text of `file`, imports or names
/// by path. A `super::` after an inline `mod name {` climbs from that inline module.
fn reached_modules(file: &str, source: &str) -> BTreeSet<String> {
    let code = code(source);
    let base = module_of(file);
    let inline_at = code.find("\nmod ").filter(|&i| {
        let line = code[i + 1..].lines().next().unwrap_or("");
        line.trim_end().ends_with('{')
    });
    let mut found = BTreeSet::new();
    for head in ["crate::", "converja_bridge::", "super::"] {
        for (i, _) in code.match_indices(head) {
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut base = base.clone();
            if head == "super::" && inline_at.is_some_and(|at| i > at) {
                base.push("inline".into());
            }
            let rest = &code[i + head.len()..];
            let prefix = head.trim_end_matches("::");
            let paths: Vec<String> = if rest.starts_with('{') {
                group_items(rest)
                    .into_iter()
                    .map(|item| format!("{prefix}::{item}"))
                    .collect()
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                vec![format!("{prefix}::{}", &rest[..end])]
            };
            for path in paths {
                found.extend(top_module(&base, &path));
            }
        }
    }
    found
}

/// Every crate among `crates` that `source` names as a path (`x::...`).
fn reached_crates(source: &str, crates: &[String]) -> BTreeSet<String> {
    let code = code(source);
    let mut found = BTreeSet::new();
    for name in crates {
        let needle = format!("{name}::");
        for (i, _) in code.match_indices(&needle) {
            let before = code[..i].chars().last();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                found.insert(name.clone());
            }
        }
    }
    found
}

#[test]
fn the_layout_file_is_consistent() {
    let found = layout().inconsistencies();
    assert!(
        found.is_empty(),
        "docs/architecture.toml:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_source_file_belongs_to_a_part() {
    let layout = layout();
    let unplaced: Vec<String> = source_files()
        .into_iter()
        .filter(|f| layout.part_of(f).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "files of no part in docs/architecture.toml:\n{}",
        unplaced.join("\n")
    );
}

#[test]
fn each_part_imports_only_what_the_layout_allows() {
    let layout = layout();
    let mut found = Vec::new();
    for file in source_files() {
        let text = std::fs::read_to_string(root().join(&file)).expect("source is readable");
        found.extend(layout.violations_in(&file, &text));
    }
    assert!(
        found.is_empty(),
        "imports across the layout:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_forbidden_import_is_reported_with_its_reason() {
    let layout = layout();
    let found = layout.violations_in("src/xmpp/link/mod.rs", "use crate::converja::Request;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("knows no Converja JSON"),
        "the never-arrow's reason: {found:?}"
    );
    let found = layout.violations_in("src/pending/mod.rs", "use super::gateway::SocketSink;\n");
    assert_eq!(found.len(), 1, "super:: is resolved: {found:?}");
    assert!(found[0].contains("knows no socket"), "{found:?}");
    let found = layout.violations_in(
        "src/agents/handlers/end_call.rs",
        "use super::super::super::platform::Client;\n",
    );
    assert_eq!(found.len(), 1, "super::super:: is resolved: {found:?}");
}

#[test]
fn allowed_and_local_imports_pass() {
    let layout = layout();
    let source = "use crate::converja::CallId;\n\
                  use super::registry::Registry;\n\
                  // crate::gateway in a comment is prose\n\
                  #[cfg(test)]\nmod tests {\n    use super::*;\n}\n";
    assert_eq!(
        layout.violations_in("src/agents/handlers/end_call.rs", source),
        Vec::<String>::new()
    );
    assert_eq!(
        layout.violations_in("src/nowhere.rs", ""),
        vec!["src/nowhere.rs belongs to no part".to_string()]
    );
}

#[test]
fn the_checker_sees_grouped_and_external_imports() {
    let source = "use crate::{converja::CallId, platform::{Client, Update}};\n\
                  let x = socketioxide::SocketIo::new();\n\
                  use converja_bridge::sim;\n";
    let modules = reached_modules("src/app.rs", source);
    let expected: BTreeSet<String> = ["converja", "platform", "sim"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(modules, expected);
    let crates = reached_crates(source, &["socketioxide".into(), "tokio_xmpp".into()]);
    assert_eq!(crates, BTreeSet::from(["socketioxide".to_string()]));
}
