//! The layer order of `src/` (ARCHITECTURE.md), enforced: a module may use modules of its own
//! layer or below, never above. Every `crate::<module>` path in every file of `src/` is read
//! (in `use` lines and in code alike); a file's own module is the first part of its path
//! under `src/` (`src/tracker/detect.rs` → `tracker`), and the crate root (`lib.rs`, `main.rs`
//! and the binary's own modules) is the top.

use std::path::{Path, PathBuf};

/// From the ground up. Keep in step with ARCHITECTURE.md.
const LAYERS: &[(&str, &[&str])] = &[
    ("vocabulary", &["time", "tls", "model", "schedule"]),
    ("config", &["config"]),
    ("observability", &["internal_events", "metrics"]),
    ("platforms", &["platform"]),
    ("tracker", &["tracker"]),
    ("alert semantics", &["alert"]),
    ("store", &["store"]),
    ("notify", &["notify"]),
    ("daemon", &["daemon"]),
    ("api", &["api"]),
    ("app", &["app", "ctl", "lib", "main", "progress"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to: the first part of its path under `src/`, without `.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Every module named as `crate::<module>` in `text`, with its line, comments left out.
/// `crate::name` where `name` is not a module (an item of the crate root) counts as the root.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `$crate::` in macros and `my_crate::` are other things.
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
        }
    }
    found
}

#[test]
fn no_module_uses_a_module_of_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(own) = layer_of(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no layer: add it to LAYERS here and to ARCHITECTURE.md",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in uses(&text) {
            // A name that is no module is an item of the crate root (the app layer).
            let layer = layer_of(&used).unwrap_or(LAYERS.len() - 1);
            if layer > own {
                violations.push(format!(
                    "{}:{line}: `{module}` ({}) uses `crate::{used}` ({}), a higher layer",
                    file.strip_prefix(&src).unwrap().display(),
                    LAYERS[own].0,
                    LAYERS[layer].0,
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "{} upward import(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn architecture_md_lists_the_same_layers() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    // The table rows, in order: `| <n> | <layer> | <modules> |`.
    let rows: Vec<Vec<String>> = doc
        .lines()
        .filter(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
        .collect();
    assert_eq!(
        rows.len(),
        LAYERS.len(),
        "one row per layer in ARCHITECTURE.md"
    );
    for (row, (name, modules)) in rows.iter().zip(LAYERS) {
        assert_eq!(&row[2], name, "{row:?}");
        let listed: Vec<&str> = row[3]
            .split(',')
            .map(|m| m.trim().trim_matches('`'))
            .collect();
        assert_eq!(&listed, modules, "{row:?}");
    }
}

#[test]
fn the_scanner_sees_an_upward_import() {
    let text = "use crate::model::Host;\nuse crate::daemon::Runner; // up\n// crate::api in a comment\nlet x = $crate::y;";
    assert_eq!(
        uses(text),
        vec![(1, "model".to_owned()), (2, "daemon".to_owned())]
    );
}
