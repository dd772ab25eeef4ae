//! The workspace's layers run one way, and no crate has an import cycle between its
//! modules. Read from the sources and manifests alone (no build, no database):
//!
//! ```text
//! shared/api ← shared/base ← shared/client ← shared ← shared/participant ← services/*
//!   ← tools/loadgen ← tools/txlab ← tests
//!                                                       shared/testing: [dev-dependencies] only
//! ```
//!
//! - a crate's `[dependencies]` name only workspace crates of a lower layer, so no
//!   service depends on another service or on a tool, and the test-support crate is
//!   compiled into no service binary (the end-to-end test crate aside);
//! - a crate's `[dev-dependencies]` name no tool, unless the crate is a tool or the
//!   end-to-end tests;
//! - inside each crate, the modules' `crate::…` references form no cycle;
//! - each library's `lib.rs` opens with a module map naming every module it declares.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Every workspace crate: its folder, the name code and manifests use for it, and its
/// layer (lower layers never depend on higher ones).
const CRATES: &[(&str, &str, u8)] = &[
    ("shared/api", "api", 0),
    ("shared/base", "base", 1),
    ("shared/client", "client", 2),
    ("shared", "shared", 3),
    ("shared/participant", "participant", 4),
    ("shared/testing", "testing", 5),
    ("services/order", "order-service", 6),
    ("services/inventory", "inventory-service", 6),
    ("services/payment", "payment-service", 6),
    ("services/email", "email-service", 6),
    ("services/coordinator", "coordinator", 6),
    ("services/console", "console", 6),
    ("tools/loadgen", "loadgen", 7),
    ("tools/txlab", "txlab", 8),
    ("tests", "txlab-tests", 9),
];

const TESTING: &str = "testing";
const END_TO_END: u8 = 9;

fn is_tool(dir: &str) -> bool {
    dir.starts_with("tools/")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn the_table_above_lists_every_workspace_member() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members = section(&manifest, "workspace");
    let listed: BTreeSet<String> = members
        .split("members")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    let known: BTreeSet<String> = CRATES.iter().map(|(dir, _, _)| (*dir).to_owned()).collect();
    assert_eq!(
        listed, known,
        "the workspace members and this test's layer table differ"
    );
}

#[test]
fn dependencies_run_one_way() {
    let mut errors = Vec::new();
    for (dir, name, layer) in CRATES {
        let manifest = fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
        for dep in dependency_names(&section(&manifest, "dependencies")) {
            let Some((_, _, dep_layer)) = CRATES.iter().find(|(_, n, _)| *n == dep) else {
                continue;
            };
            if dep == TESTING && *layer != END_TO_END {
                errors.push(format!(
                    "{name} names the test-support crate in [dependencies]: it would be compiled into its binary"
                ));
            } else if dep_layer >= layer {
                errors.push(format!(
                    "{name} (layer {layer}) depends on {dep} (layer {dep_layer}): dependencies must run down the layers"
                ));
            }
        }
        for dep in dependency_names(&section(&manifest, "dev-dependencies")) {
            let Some((dep_dir, _, _)) = CRATES.iter().find(|(_, n, _)| *n == dep) else {
                continue;
            };
            if is_tool(dep_dir) && !is_tool(dir) && *layer != END_TO_END {
                errors.push(format!("{name} names the tool {dep}, even as a dev-dependency"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn no_crate_has_an_import_cycle() {
    let mut errors = Vec::new();
    for (dir, name, _) in CRATES {
        let graph = module_graph(&root().join(dir).join("src"));
        if let Some(cycle) = find_cycle(&graph) {
            errors.push(format!("{name}: {}", cycle.join(" → ")));
        }
    }
    assert!(
        errors.is_empty(),
        "modules that import each other in a ring:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_a_ring_and_passes_a_chain() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned()).or_default().insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("web", "telemetry"), ("fault", "web")])), None);
    let ring = find_cycle(&graph(&[("web", "fault"), ("fault", "health"), ("health", "web")])).unwrap();
    assert_eq!(ring.first(), ring.last());
    assert_eq!(ring.len(), 4, "{ring:?}");
    let src =
        "use crate::{ErrorCode, web::{ok, OptionalJson}, fault};\nfn f() { crate::db::begin(); }\n// crate::startup\n";
    let refs = references(src, false);
    assert_eq!(refs, ["ErrorCode", "db", "fault", "web"].map(str::to_owned).into());
}

#[test]
fn every_library_opens_with_a_module_map() {
    let mut errors = Vec::new();
    for (dir, name, _) in CRATES {
        let Ok(lib) = fs::read_to_string(root().join(dir).join("src/lib.rs")) else {
            continue;
        };
        if !lib.starts_with("//!") {
            errors.push(format!("{name}: lib.rs does not open with a //! module map"));
            continue;
        }
        let map: String = lib
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for module in declared_modules(&lib) {
            if !map.contains(&format!("`{module}`")) && !map.contains(&format!("[`{module}`]")) {
                errors.push(format!("{name}: the module map of lib.rs does not name `{module}`"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ---------------------------------------------------------------------------------
// Manifests

/// The body of `[name]` in a manifest, up to the next table header.
fn section(manifest: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let mut body = String::new();
    let mut inside = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            inside = line.trim() == header;
        } else if inside {
            body.push_str(line);
            body.push('\n');
        }
    }
    body
}

fn dependency_names(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| {
            let key = l.split(['=', '.']).next()?.trim();
            (!key.is_empty() && !key.starts_with('#')).then(|| key.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Modules

/// Each top-level module of the crate and the other top-level modules its code names
/// (`crate::x`, and `super::x` from a module's own file). Comments and `#[cfg(test)]`
/// modules aside; a name the crate root re-exports counts as its module.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let lib = fs::read_to_string(src.join("lib.rs")).or_else(|_| fs::read_to_string(src.join("main.rs")));
    let reexports = lib.map(|l| root_reexports(&l)).unwrap_or_default();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut raw: Vec<(String, BTreeSet<String>)> = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if parts.first().is_some_and(|p| p == "bin") || parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let top = parts[0].clone();
        let own_file = parts.len() == 1 || (parts.len() == 2 && parts[1] == "mod");
        let text = fs::read_to_string(&file).unwrap();
        graph.entry(top.clone()).or_default();
        raw.push((top, references(&text, own_file)));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (top, refs) in raw {
        for r in refs {
            let target = reexports.get(&r).cloned().unwrap_or(r);
            if target != top && modules.contains(&target) {
                graph.get_mut(&top).unwrap().insert(target);
            }
        }
    }
    graph
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `pub use module::{A, B};` in the crate root: `A` and `B` belong to `module`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in code(lib).split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        for name in first_segments(rest.trim_start_matches('{').trim_end_matches('}')) {
            map.insert(name, module.trim().to_owned());
        }
    }
    map
}

/// The first path segment after every `crate::` (and `super::` when `own_file`).
fn references(text: &str, own_file: bool) -> BTreeSet<String> {
    let code = code(text);
    let mut out = BTreeSet::new();
    let prefixes: &[&str] = if own_file {
        &["crate::", "super::"]
    } else {
        &["crate::"]
    };
    for prefix in prefixes {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let preceded = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '{' => 1,
                            '}' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(group.len(), |(i, _)| i);
                out.extend(first_segments(&group[..end]));
            } else {
                out.extend(first_segments(
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or(""),
                ));
            }
        }
    }
    out.remove("self");
    out
}

/// The first identifier of each top-level, comma-separated item of a `use` group.
fn first_segments(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
        .into_iter()
        .filter_map(|item| {
            let ident: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!ident.is_empty()).then_some(ident)
        })
        .collect()
}

/// The code of a file: comment lines dropped, `#[cfg(test)] mod …` blocks cut.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skipping: Option<i32> = None;
    let mut cfg_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(depth) = skipping.as_mut() {
            *depth += brace_balance(line);
            if *depth <= 0 {
                skipping = None;
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            cfg_test = true;
            continue;
        }
        if cfg_test && trimmed.starts_with("mod ") && trimmed.contains('{') {
            let depth = brace_balance(line);
            skipping = (depth > 0).then_some(depth);
            cfg_test = false;
            continue;
        }
        cfg_test = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn brace_balance(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

fn declared_modules(lib: &str) -> Vec<String> {
    code(lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// One cycle of the graph (first node repeated at the end), if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::OnPath);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::Unvisited) {
                Mark::OnPath => {
                    let from = path.iter().position(|n| n == next).unwrap();
                    let mut ring = path[from..].to_vec();
                    ring.push(next.clone());
                    return Some(ring);
                }
                Mark::Unvisited => {
                    if let Some(ring) = visit(next, graph, marks, path) {
                        return Some(ring);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::Unvisited) == Mark::Unvisited
            && let Some(ring) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(ring);
        }
    }
    None
}
