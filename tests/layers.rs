//! The module graph of `src/` and `sim/src/`, checked: every import of another top-level
//! module of the crate goes downwards, so nothing forms a cycle.
//!
//! `src/`'s and `sim/src/`'s layers are declared below (top to bottom, as README's
//! "Architecture" section draws them). A module may import modules of lower layers only: not
//! its own layer, not a higher one.
//!
//! An import is any path in code that names a top-level module through `crate::` (also in
//! `use crate::{a, b::c}` groups) or through enough `super::` to leave the top-level module.
//! Comments, string and character literals, and `#[cfg(test)]` items are not imports.
//! The crate roots (`lib.rs`, `main.rs`) only declare and wire the modules: they are not
//! checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// `src/`'s top-level modules, top to bottom.
const LAYERS: &[&[&str]] = &[
    // Glue: flags to typed options, call the rollout, hand results to output.
    &["commands"],
    // clap types only.
    &["cli"],
    // Everything printed: renders domain values into words.
    &["output"],
    // Many clusters: selection, stages, the scheduler, the fleet run record.
    &["fleet"],
    &["notify", "metrics"],
    // Plan, pre-flight, gates, the node state machine, the run record, resume policy.
    &["rollout"],
    // How a node is reached: SSH, node-shell pods, run commands.
    &["transport"],
    // ARM and Entra ID; its AKS token source plugs into the Kubernetes client's bearer layer.
    &["azure"],
    // The Kubernetes client and SSH sessions.
    &["kube", "ssh"],
    // Node-level scripts, parsers and types.
    &["node"],
    // The environment, the HTTPS client builder.
    &["settings", "http"],
    // The one retry policy of every outbound call, durations.
    &["retry", "duration"],
];

/// Edges of `src/` that break the layers today and are being removed. Each entry must still
/// be needed (the test fails on an entry nothing uses any more: delete it then).
const SRC_ALLOWED: &[(&str, &str)] = &[];

/// Directories of `src/` whose modules form no cycle among themselves either.
const SRC_ACYCLIC_DIRS: &[&str] = &["azure", "kube", "node", "output", "ssh", "transport"];

/// `sim/src/`'s top-level modules, top to bottom.
const SIM_LAYERS: &[&[&str]] = &[
    // A fleet of clusters: each a whole emulator, behind one ARM front that spans them.
    &["fleet"],
    // The routers: ARM, the Kubernetes API server, the control endpoint, the webhook sink.
    &["arm", "kube_api", "control", "webhook"],
    // The Entra token endpoint (served beside ARM) and what the state directory holds.
    &["entra", "state_dir"],
    // The control loops.
    &["controllers"],
    // The machines: chroots, sshd, kubelets, containers.
    &["nodes"],
    // What the API server and the cluster's actors share about objects.
    &["objects"],
    // Node objects, tokens, Kubernetes Events.
    &["model", "tokens", "recorder"],
    &["store"],
    &["scenario"],
    &[
        "resources",
        "faults",
        "cron",
        "rbac",
        "api_versions",
        "tls",
        "events",
        "server",
        "ids",
    ],
    &["time"],
];

#[test]
fn src_imports_only_go_to_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = Graph::read(&root, &[]);
    let problems = layer_violations(&graph, LAYERS, SRC_ALLOWED);
    assert!(problems.is_empty(), "{}", report("src/", &problems));
}

#[test]
fn modules_inside_the_lower_layers_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut text = String::new();
    for dir in SRC_ACYCLIC_DIRS {
        let problems = cycles(&Graph::read(&src.join(dir), &[dir]), &[]);
        if !problems.is_empty() {
            text.push_str(&report(&format!("src/{dir}/"), &problems));
        }
    }
    assert!(text.is_empty(), "{text}");
}

#[test]
fn sim_imports_only_go_to_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src");
    let graph = Graph::read(&root, &[]);
    let problems = layer_violations(&graph, SIM_LAYERS, &[]);
    assert!(problems.is_empty(), "{}", report("sim/src/", &problems));
}

// ---------------------------------------------------------------------------------------
// The check proves it can fail: on a tree made for it.

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    dir
}

const TOY_LAYERS: &[&[&str]] = &[&["top"], &["middle"], &["bottom"]];

#[test]
fn an_upward_import_is_named_by_file_line_and_path() {
    let dir = tree(&[
        ("lib.rs", "pub mod top;\npub mod middle;\npub mod bottom;\n"),
        ("top.rs", "use crate::middle::M;\n"),
        ("middle/mod.rs", "pub mod inner;\npub struct M;\n"),
        (
            "middle/inner.rs",
            "use crate::bottom::B;\n\npub fn f() -> crate::top::T {\n    todo!()\n}\n",
        ),
        ("bottom.rs", "pub struct B;\n"),
    ]);
    let problems = layer_violations(&Graph::read(dir.path(), &[]), TOY_LAYERS, &[]);
    let text = report("toy/", &problems);
    assert_eq!(problems.len(), 1, "{text}");
    assert!(
        text.contains("middle/inner.rs:3: `crate::top` (middle imports top, a higher layer)"),
        "{text}"
    );
}

#[test]
fn imports_within_one_layer_and_undeclared_modules_are_refused() {
    let dir = tree(&[
        ("a.rs", "use crate::b::X;\n"),
        ("b.rs", "pub struct X;\n"),
        ("stray.rs", "pub struct S;\n"),
    ]);
    let problems = layer_violations(&Graph::read(dir.path(), &[]), &[&["a", "b"]], &[]);
    let text = report("toy/", &problems);
    assert!(
        text.contains("a.rs:1: `crate::b` (a imports b, of its own layer)"),
        "{text}"
    );
    assert!(text.contains("stray: a top-level module in no layer"), "{text}");
}

#[test]
fn use_groups_and_super_paths_that_leave_the_module_are_imports() {
    let dir = tree(&[
        ("bottom/mod.rs", "pub mod x;\n"),
        (
            "bottom/x.rs",
            "use crate::{middle::M, self as me};\nuse super::super::top::T;\nuse super::y;\n",
        ),
        ("middle.rs", ""),
        ("top.rs", ""),
    ]);
    let graph = Graph::read(dir.path(), &[]);
    let seen: BTreeSet<(String, String)> = graph.edges.iter().map(|e| (e.from.clone(), e.to.clone())).collect();
    assert_eq!(
        seen,
        [("bottom", "middle"), ("bottom", "top")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    );
}

#[test]
fn a_cycle_inside_a_module_directory_is_found_through_crate_and_super_paths() {
    let dir = tree(&[
        ("m/mod.rs", "pub mod a;\npub mod b;\n"),
        ("m/a.rs", "use super::b::B;\npub struct A;\n"),
        (
            "m/b.rs",
            "pub struct B;\nfn f(_: crate::m::a::A) {}\nfn g(_: crate::other::O) {}\n",
        ),
    ]);
    let graph = Graph::read(&dir.path().join("m"), &["m"]);
    let text = report("toy/m/", &cycles(&graph, &[]));
    assert!(
        text.contains("toy/m/a.rs:1: `super::b` (a -> b closes a cycle)"),
        "{text}"
    );
    assert!(
        text.contains("toy/m/b.rs:2: `crate::m::a` (b -> a closes a cycle)"),
        "{text}"
    );
    assert!(!text.contains("other"), "{text}");
}

#[test]
fn comments_strings_and_test_code_are_not_imports() {
    let dir = tree(&[
        (
            "bottom.rs",
            r##"//! See [`crate::top`].
/* a block comment naming crate::top::T /* nested */ crate::top */
const S: &str = "crate::top::T";
const R: &str = r#"crate::top"#;
const C: char = '"';
fn lifetime<'a>(x: &'a str) -> &'a str { x }

#[cfg(test)]
mod tests {
    use crate::top::T;
    fn f() { let _ = "}"; }
}

#[cfg(test)]
use crate::top::U;
"##,
        ),
        ("top.rs", ""),
    ]);
    let graph = Graph::read(dir.path(), &[]);
    assert!(graph.edges.is_empty(), "{:?}", graph.edges);
}

#[test]
fn a_cycle_is_named_with_the_imports_that_close_it() {
    let dir = tree(&[
        ("a.rs", "use crate::b::X;\n"),
        ("b.rs", "pub struct X;\nuse crate::c::Y;\n"),
        ("c.rs", "pub struct Y;\nfn f() { crate::a::g() }\n"),
        ("d.rs", "use crate::a::X;\n"),
    ]);
    let graph = Graph::read(dir.path(), &[]);
    let problems = cycles(&graph, &[]);
    let text = report("toy/", &problems);
    assert_eq!(problems.len(), 3, "{text}");
    for want in ["a.rs:1: `crate::b`", "b.rs:2: `crate::c`", "c.rs:2: `crate::a`"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(
        !text.contains("d.rs"),
        "d imports into the cycle but is not in it: {text}"
    );
    // Allowing one edge of the cycle breaks it; an allowance nothing needs is a problem.
    assert!(cycles(&graph, &[("c", "a")]).is_empty());
    let stale = cycles(&graph, &[("c", "a"), ("d", "c")]);
    assert!(report("toy/", &stale).contains("allowed d -> c, but nothing imports"));
}

// ---------------------------------------------------------------------------------------
// The reader and the checks.

/// One import of a top-level module by another.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
    /// The path as written, up to the module named (`crate::rollout`).
    path: String,
}

#[derive(Debug)]
struct Graph {
    /// Top-level modules (files and directories beside the crate roots).
    modules: BTreeSet<String>,
    edges: Vec<Edge>,
}

enum Problem {
    Import { edge: Edge, why: String },
    Undeclared(String),
    StaleAllowance(String, String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Import { edge, why } => {
                write!(f, "{}:{}: `{}` ({why})", edge.file.display(), edge.line, edge.path)
            }
            Problem::Undeclared(m) => write!(f, "{m}: a top-level module in no layer; add it to LAYERS"),
            Problem::StaleAllowance(a, b) => write!(
                f,
                "allowed {a} -> {b}, but nothing imports {b} from {a} any more: remove the allowance"
            ),
        }
    }
}

fn report(what: &str, problems: &[Problem]) -> String {
    let mut s = format!(
        "{what}: {} problem(s) with the module graph (see the layers in tests/layers.rs):\n",
        problems.len()
    );
    for p in problems {
        match p {
            // Files are named from the repository's root: `src/kube/mark.rs:41`.
            Problem::Import { .. } => s.push_str(&format!("  {what}{p}\n")),
            _ => s.push_str(&format!("  {p}\n")),
        }
    }
    s
}

fn layer_of(layers: &[&[&str]], m: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&m))
}

fn layer_violations(graph: &Graph, layers: &[&[&str]], allowed: &[(&str, &str)]) -> Vec<Problem> {
    let mut out: Vec<Problem> = graph
        .modules
        .iter()
        .filter(|m| layer_of(layers, m).is_none())
        .map(|m| Problem::Undeclared(m.clone()))
        .collect();
    let mut used: BTreeSet<(&str, &str)> = BTreeSet::new();
    for e in &graph.edges {
        let (Some(from), Some(to)) = (layer_of(layers, &e.from), layer_of(layers, &e.to)) else {
            continue;
        };
        if to > from {
            continue;
        }
        if let Some(a) = allowed.iter().find(|(a, b)| *a == e.from && *b == e.to) {
            used.insert(*a);
            continue;
        }
        let why = if to == from {
            format!("{} imports {}, of its own layer", e.from, e.to)
        } else {
            format!("{} imports {}, a higher layer", e.from, e.to)
        };
        out.push(Problem::Import { edge: e.clone(), why });
    }
    out.extend(stale(allowed, &used));
    out
}

fn stale(allowed: &[(&str, &str)], used: &BTreeSet<(&str, &str)>) -> Vec<Problem> {
    allowed
        .iter()
        .filter(|a| !used.contains(*a))
        .map(|(a, b)| Problem::StaleAllowance(a.to_string(), b.to_string()))
        .collect()
}

/// The imports that lie on a cycle of top-level modules (those between modules of one
/// strongly connected component), leaving out the allowed ones.
fn cycles(graph: &Graph, allowed: &[(&str, &str)]) -> Vec<Problem> {
    let mut used: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &graph.edges {
        if let Some(a) = allowed.iter().find(|(a, b)| *a == e.from && *b == e.to) {
            used.insert(*a);
            continue;
        }
        next.entry(e.from.as_str()).or_default().insert(e.to.as_str());
    }
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for n in next.get(m.as_str()).into_iter().flatten() {
                if seen.insert(n.to_string()) {
                    todo.push(n.to_string());
                }
            }
        }
        seen
    };
    let mut out: Vec<Problem> = graph
        .edges
        .iter()
        .filter(|e| !allowed.iter().any(|(a, b)| *a == e.from && *b == e.to))
        .filter(|e| reach(&e.to).contains(&e.from))
        .map(|e| Problem::Import {
            edge: e.clone(),
            why: format!("{} -> {} closes a cycle", e.from, e.to),
        })
        .collect();
    out.extend(stale(allowed, &used));
    out
}

impl Graph {
    /// The graph of the modules directly under `root`, the directory of module `prefix`
    /// (`[]` for a crate's `src/`, `["kube"]` for `src/kube`).
    fn read(root: &Path, prefix: &[&str]) -> Graph {
        let mut modules = BTreeSet::new();
        for entry in std::fs::read_dir(root).expect("the source directory") {
            let p = entry.expect("a directory entry").path();
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            if p.is_dir() || p.extension().is_some_and(|e| e == "rs") {
                modules.insert(name);
            }
        }
        for root_file in ["lib", "main", "mod"] {
            modules.remove(root_file);
        }
        let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        let mut edges = vec![];
        let mut files = vec![];
        rust_files(root, &mut files);
        for file in files {
            let rel = file.strip_prefix(root).expect("under the root").to_path_buf();
            let path: Vec<String> = prefix.iter().cloned().chain(module_path(&rel)).collect();
            let Some(top) = path.get(prefix.len()).cloned() else {
                continue; // the root module's own file: it declares and wires the modules
            };
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            for import in imports(&text, &path) {
                if !import.target.starts_with(&prefix) {
                    continue;
                }
                let Some(target) = import.target.get(prefix.len()) else {
                    continue;
                };
                if *target != top && modules.contains(target) {
                    edges.push(Edge {
                        from: top.clone(),
                        to: target.clone(),
                        file: rel.clone(),
                        line: import.line,
                        path: import.written_up_to(prefix.len()),
                    });
                }
            }
        }
        Graph { modules, edges }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module a file is: `kube/drain/mod.rs` → `[kube, drain]`, `cli.rs` → `[cli]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") || !parts.is_empty() && stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// A path in code that names a module of the crate.
struct Import {
    line: usize,
    /// How it starts, as written: `crate::`, `super::super::`.
    head: String,
    /// The module it starts from (`[]`: the crate root).
    base: Vec<String>,
    /// The module path it names, from the crate root (`[kube, drain, PodRef]`).
    target: Vec<String>,
}

impl Import {
    /// The path as written, up to its segment `n` from the crate root (`crate::kube::drain`).
    fn written_up_to(&self, n: usize) -> String {
        let after: Vec<&str> = self
            .target
            .iter()
            .take(n + 1)
            .skip(self.base.len())
            .map(String::as_str)
            .collect();
        format!("{}{}", self.head, after.join("::"))
    }
}

/// The paths `text` (the file of module `path`) names through `crate::` or through
/// `super::` up to the crate root or a module above `path`'s top-level one.
fn imports(text: &str, path: &[String]) -> Vec<Import> {
    let code = without_tests(&code_only(text));
    let inline = inline_modules(&code);
    let b = code.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let starts_path = (b[i] == b'c' || b[i] == b's') && (i == 0 || !is_ident(b[i - 1]) && b[i - 1] != b'$');
        if !starts_path {
            i += 1;
            continue;
        }
        let start = i;
        let base: Vec<String> = if code[i..].starts_with("crate::") {
            i += "crate::".len();
            vec![]
        } else if code[i..].starts_with("super::") {
            // Where this occurrence sits: the file's module plus the inline modules around it.
            let mut here: Vec<String> = path.to_vec();
            here.extend(
                inline
                    .iter()
                    .filter(|(s, e, _)| *s < i && i < *e)
                    .map(|(_, _, n)| n.clone()),
            );
            let mut ups = 0;
            while code[i..].starts_with("super::") {
                ups += 1;
                i += "super::".len();
            }
            here.truncate(here.len().saturating_sub(ups));
            here
        } else {
            i += 1;
            continue;
        };
        let line = code[..start].matches('\n').count() + 1;
        let head = code[start..i].to_string();
        for target in expand(&code[i..], &base) {
            out.push(Import {
                line,
                head: head.clone(),
                base: base.clone(),
                target,
            });
        }
    }
    out
}

/// The module paths a path names from `base`: `a::b` → one, `{a::b, c}` (a `use` group) →
/// one per item.
fn expand(s: &str, base: &[String]) -> Vec<Vec<String>> {
    let mut path = base.to_vec();
    let mut rest = s;
    loop {
        let name = ident_at(rest);
        if name.is_empty() {
            break;
        }
        rest = &rest[name.len()..];
        if name != "self" {
            path.push(name);
        }
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with('{') || r.as_bytes().first().is_some_and(|c| is_ident(*c)) => rest = r,
            _ => break,
        }
    }
    let Some(group) = rest.strip_prefix('{') else {
        return vec![path];
    };
    let end = matching(group, '{', '}').unwrap_or(group.len());
    split_top(&group[..end])
        .into_iter()
        .flat_map(|item| expand(item.trim_start(), &path))
        .collect()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(s: &str) -> String {
    s.bytes().take_while(|c| is_ident(*c)).map(char::from).collect()
}

/// The length of `s` up to the `close` that closes an already opened `open`.
fn matching(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// The items of a `use` group, split at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = vec![];
    let (mut depth, mut from) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

/// Inline `mod name { … }` blocks: (start, end, name).
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let b = code.as_bytes();
    let mut out = vec![];
    let mut from = 0;
    while let Some(k) = code[from..].find("mod ") {
        let at = from + k;
        from = at + 4;
        if at > 0 && is_ident(b[at - 1]) {
            continue;
        }
        let name = ident_at(&code[at + 4..]);
        let after = code[at + 4 + name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let end = matching(&code[open + 1..], '{', '}').map_or(code.len(), |e| open + 1 + e);
        out.push((open, end, name));
    }
    out
}

/// `#[cfg(test)]` and the item it is on, blanked (newlines kept).
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(k) = out[from..].find("#[cfg(test)]") {
        let start = from + k;
        let rest = &out[start..];
        // The item ends at its block's closing brace, or at a `;` before any block.
        let end = match (rest.find('{'), rest.find(';')) {
            (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                start + open + 1 + matching(&rest[open + 1..], '{', '}').map_or(rest.len() - open - 1, |e| e + 1)
            }
            (_, Some(semi)) => start + semi + 1,
            _ => out.len(),
        };
        let blank: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blank);
        from = end;
    }
    out
}

/// The source with comments and the insides of string and character literals blanked
/// (newlines kept, so that lines still count).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (c[i] == 'r' || (c[i] == 'b' && next == Some('r')))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
            && raw_string_hashes(&c[i..]).is_some()
        {
            // r"…", r#"…"#, br"…": no escapes inside.
            let skip = if c[i] == 'b' { 2 } else { 1 };
            let hashes = raw_string_hashes(&c[i..]).unwrap_or(0);
            for _ in 0..skip + hashes + 1 {
                out.push(c[i]);
                i += 1;
            }
            let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while i < c.len() && !c[i..].starts_with(&closing) {
                blank(&mut out, c[i]);
                i += 1;
            }
            for _ in 0..closing.len().min(c.len() - i) {
                out.push(c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                out.push('"');
                i += 1;
            }
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\''), or a lifetime ('a) left as it is.
            let len = if next == Some('\\') {
                c[i + 2..].iter().position(|&x| x == '\'').map(|p| p + 3)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(n) => {
                    out.push('\'');
                    for _ in 1..n - 1 {
                        out.push(' ');
                    }
                    out.push('\'');
                    i += n;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// At `r"`, `r#"`, `br"`, …: the number of `#`.
fn raw_string_hashes(c: &[char]) -> Option<usize> {
    let rest = if c.first() == Some(&'b') { &c[1..] } else { c };
    if rest.first() != Some(&'r') {
        return None;
    }
    let hashes = rest[1..].iter().take_while(|&&x| x == '#').count();
    (rest.get(1 + hashes) == Some(&'"')).then_some(hashes)
}
