//! The layering of the sources, checked, so a refactor that made imports point one way cannot
//! be undone quietly.
//!
//! The checks read the sources under `gateway/src` and `registry/src` and build each crate's
//! module import graph:
//! - A module is a file: `a/b.rs` and `a/b/mod.rs` are both `a::b`; `lib.rs` is the crate root.
//!   Items of an inline `mod tests { .. }` belong to the file's module.
//! - Every path that starts with `crate::` or `super::` is an edge from the module it is
//!   written in to the deepest module the path names, whether in a `use` item (grouped ones such
//!   as `use crate::{a::B, c::D}` included) or inline in code (`crate::x::f(..)`). A child that
//!   uses its parent's items is an edge child → parent; a parent declaring `mod child` or
//!   naming its children by relative path (`child::f`, `self::child`) is not, as a parent is
//!   where its children are gathered.
//!
//! And asserts that:
//! - Backends move bytes and know nothing of S3 requests or the registry: nothing under
//!   `backend` imports `s3`, `server`, `admin`, `console`, `cli`, `worker` or the `registry` crate.
//! - No two modules of a crate import each other, directly or around a loop: what both need
//!   belongs in a module below them.
//!
//! The parser knows just enough Rust for this: it skips comments, string and character
//! literals, and reads paths as identifiers joined by `::`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// Top-level gateway modules a backend must not import.
const ABOVE_BACKENDS: &[&str] = &["s3", "server", "admin", "console", "cli", "worker"];

/// One source file: its path as shown in messages, its module and its text.
struct SourceFile {
    file: String,
    module: String,
    text: String,
}

/// One path in a source file that names another module.
#[derive(Debug, Clone)]
struct Import {
    /// The file and line it is written on, `gateway/src/backend/fs.rs:42`.
    at: String,
    /// The path as written, `crate::s3::checksum::Checksums`.
    path: String,
    /// The module it is written in, `backend::fs`.
    from: String,
    /// The deepest module it names, `s3::checksum`; `None` for another crate's path.
    to: Option<String>,
}

/// Reads every `.rs` file under `root`; `shown` prefixes the paths in messages.
fn read_tree(root: &Path, shown: &str) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
                let text =
                    fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
                files.push((relative, text));
            }
        }
    }
    source_files(shown, files)
}

/// Names each file's module. `main.rs` is left out: it is the binary's own crate root and
/// reaches the library by name, never by `crate::`.
fn source_files(shown: &str, files: Vec<(String, String)>) -> Vec<SourceFile> {
    let mut sources: Vec<SourceFile> = files
        .into_iter()
        .filter(|(relative, _)| relative != "main.rs")
        .map(|(relative, text)| {
            let mut segments: Vec<&str> = relative.trim_end_matches(".rs").split('/').collect();
            if matches!(segments.last(), Some(&("mod" | "lib"))) {
                segments.pop();
            }
            SourceFile { file: format!("{shown}/{relative}"), module: segments.join("::"), text }
        })
        .collect();
    sources.sort_by(|a, b| a.file.cmp(&b.file));
    sources
}

/// A token of Rust source, as far as paths need: identifiers (with their line) and the
/// punctuation that shapes a path or a `use` tree. Everything else is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String, usize),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// Splits `text` into tokens, skipping comments and string and character literals, so a path
/// in a doc comment or a message is not taken for an import.
fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                } else if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('a', '\n', '"'); otherwise a lifetime, whose name is read
            // as an identifier next.
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let hashes = (i..).take_while(|&j| at(j) == '#').count();
            if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == '"' {
                // A raw string: ends at a quote followed by as many `#` as opened it.
                i += hashes + 1;
                while i < chars.len() && !(chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                i += hashes + 1;
            } else if matches!(word.as_str(), "b" | "c") && matches!(at(i), '"' | '\'') {
                // A byte or C string: the literal itself is skipped on the next turn.
            } else {
                out.push(Token::Ident(word, line));
            }
        } else {
            out.push(match c {
                ':' if at(i + 1) == ':' => {
                    i += 1;
                    Token::PathSep
                }
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                ';' => Token::Semi,
                '*' => Token::Star,
                _ => Token::Other,
            });
            i += 1;
        }
    }
    out
}

/// A path as written and the line it starts on.
struct WrittenPath {
    segments: Vec<String>,
    line: usize,
}

/// Every path in `tokens` that may name a module: the leaves of `use` trees, and paths of
/// two or more segments elsewhere. Each comes with the inline modules (`mod tests { .. }`)
/// it is written in, which `super::` climbs out of first.
fn paths(tokens: &[Token]) -> Vec<(Vec<String>, WrittenPath)> {
    let mut out = Vec::new();
    // Inline modules open around the current token, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let inside = || inline.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
        match &tokens[i] {
            Token::Ident(word, _) if word == "mod" => {
                if let (Some(Token::Ident(name, _)), Some(Token::Open)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                    depth += 1;
                    inline.push((name.clone(), depth));
                    i += 3;
                    continue;
                }
            }
            Token::Ident(word, line) if word == "use" => {
                let mut leaves = Vec::new();
                i = use_tree(tokens, i + 1, &[], &mut leaves);
                for segments in leaves {
                    out.push((inside(), WrittenPath { segments, line: *line }));
                }
                continue;
            }
            Token::Ident(word, line) if i == 0 || tokens[i - 1] != Token::PathSep => {
                // `pub(in crate::a)` is a visibility, not an import.
                let visibility = i > 0 && matches!(&tokens[i - 1], Token::Ident(w, _) if w == "in");
                let mut segments = vec![word.clone()];
                let mut j = i + 1;
                while let (Some(Token::PathSep), Some(Token::Ident(next, _))) = (tokens.get(j), tokens.get(j + 1)) {
                    segments.push(next.clone());
                    j += 2;
                }
                if segments.len() > 1 && !visibility {
                    out.push((inside(), WrittenPath { segments, line: *line }));
                }
                i = j;
                continue;
            }
            Token::Open => depth += 1,
            Token::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads one `use` tree from `tokens[i]` under `prefix`, adding each leaf path to `leaves`;
/// returns the index after it (after the `;` at the top level).
fn use_tree(tokens: &[Token], mut i: usize, prefix: &[String], leaves: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(i) {
            Some(Token::Ident(word, _)) if word == "as" => i += 2,
            // `use a::{self, B}`: `self` is `a` itself.
            Some(Token::Ident(word, _)) if word == "self" && !path.is_empty() => i += 1,
            Some(Token::Ident(word, _)) => {
                path.push(word.clone());
                i += 1;
            }
            Some(Token::PathSep) => i += 1,
            Some(Token::Star) => i += 1,
            Some(Token::Open) => {
                i += 1;
                while !matches!(tokens.get(i), Some(Token::Close) | None) {
                    i = use_tree(tokens, i, &path, leaves);
                    if tokens.get(i) == Some(&Token::Comma) {
                        i += 1;
                    }
                }
                // Past the `}`: the group is the whole tree.
                i += 1;
                if tokens.get(i) == Some(&Token::Semi) {
                    i += 1;
                }
                return i;
            }
            Some(Token::Comma | Token::Close) | None => {
                leaves.push(path);
                return i;
            }
            Some(Token::Semi) => {
                leaves.push(path);
                return i + 1;
            }
            Some(Token::Other) => i += 1,
        }
    }
}

/// The imports written in `sources`: each `crate::`/`super::` path resolved to the deepest
/// module it names, and other crates' paths kept with no module.
fn imports(sources: &[SourceFile]) -> Vec<Import> {
    let modules: BTreeSet<&str> = sources.iter().map(|s| s.module.as_str()).collect();
    let mut out = Vec::new();
    for source in sources {
        let here: Vec<String> = source.module.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        for (inline, written) in paths(&tokens(&source.text)) {
            let first = written.segments[0].as_str();
            let mut base: Vec<String> = here.iter().chain(&inline).cloned().collect();
            let rest = match first {
                "crate" => {
                    base.clear();
                    &written.segments[1..]
                }
                "super" => {
                    let climbs = written.segments.iter().take_while(|s| *s == "super").count();
                    base.truncate(base.len().saturating_sub(climbs));
                    &written.segments[climbs..]
                }
                _ => {
                    out.push(Import {
                        at: format!("{}:{}", source.file, written.line),
                        path: written.segments.join("::"),
                        from: source.module.clone(),
                        to: None,
                    });
                    continue;
                }
            };
            let full: Vec<String> = base.into_iter().chain(rest.iter().cloned()).collect();
            let to = (0..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|candidate| modules.contains(candidate.as_str()))
                .expect("the crate root is a module");
            if to != source.module {
                out.push(Import {
                    at: format!("{}:{}", source.file, written.line),
                    path: written.segments.join("::"),
                    from: source.module.clone(),
                    to: Some(to),
                });
            }
        }
    }
    out
}

/// What backends import that they must not, one line each.
fn backend_violations(imports: &[Import]) -> Vec<String> {
    imports
        .iter()
        .filter(|import| import.from == "backend" || import.from.starts_with("backend::"))
        .filter_map(|import| {
            let reached = match &import.to {
                Some(to) => {
                    let top = to.split("::").next().unwrap_or_default();
                    ABOVE_BACKENDS.contains(&top).then(|| format!("the `{top}` module"))
                }
                None => import.path.starts_with("registry::").then(|| "the registry crate".to_owned()),
            }?;
            Some(format!("{}: `{}` imports {reached}", import.at, import.path))
        })
        .collect()
}

/// Every import cycle among the modules of one crate, one message each: the modules in it and
/// the imports that close one loop through them.
fn cycles(imports: &[Import]) -> Vec<String> {
    // One witness per edge: the first import written.
    let mut graph: BTreeMap<&str, BTreeMap<&str, &Import>> = BTreeMap::new();
    for import in imports {
        if let Some(to) = &import.to {
            graph.entry(import.from.as_str()).or_default().entry(to.as_str()).or_insert(import);
        }
    }
    let mut messages = Vec::new();
    for component in strongly_connected(&graph) {
        let start = component[0];
        let members: BTreeSet<&str> = component.iter().copied().collect();
        let mut message = format!("import cycle among {}:", component.join(", "));
        for import in shortest_loop(&graph, &members, start) {
            let to = import.to.as_deref().unwrap_or_default();
            write!(message, "\n  {} -> {}  ({}: `{}`)", import.from, to, import.at, import.path).expect("to a string");
        }
        messages.push(message);
    }
    messages
}

/// The groups of two or more modules that reach each other (Tarjan's algorithm), each sorted.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, BTreeMap<&'a str, &Import>>) -> Vec<Vec<&'a str>> {
    struct Walk<'a, 'g> {
        graph: &'g BTreeMap<&'a str, BTreeMap<&'a str, &'g Import>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<&'a str>>,
    }
    impl<'a> Walk<'a, '_> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            let graph = self.graph;
            for &next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let at = self.stack.iter().position(|&m| m == node).expect("on the stack");
                let mut component = self.stack.split_off(at);
                if component.len() > 1 {
                    component.sort_unstable();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for &node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found.sort();
    walk.found
}

/// The imports of a shortest loop from `start` back to it within `members`.
fn shortest_loop<'g>(
    graph: &BTreeMap<&str, BTreeMap<&str, &'g Import>>,
    members: &BTreeSet<&str>,
    start: &str,
) -> Vec<&'g Import> {
    // Breadth first from `start`, remembering the import that first reached each module.
    let mut reached_by: BTreeMap<String, &Import> = BTreeMap::new();
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(node) = queue.pop_front() {
        let Some(out) = graph.get(node.as_str()) else { continue };
        for (_, &import) in out.iter().filter(|(to, _)| members.contains(**to)) {
            let to = import.to.clone().unwrap_or_default();
            if to == start {
                let mut path = vec![import];
                let mut at = node.clone();
                while at != start {
                    let back = reached_by[&at];
                    path.push(back);
                    at.clone_from(&back.from);
                }
                path.reverse();
                return path;
            }
            if !reached_by.contains_key(&to) {
                reached_by.insert(to.clone(), import);
                queue.push_back(to);
            }
        }
    }
    unreachable!("{start} is in a cycle")
}

fn gateway_imports() -> Vec<Import> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    imports(&read_tree(&root, "gateway/src"))
}

fn assert_none(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

#[test]
fn backends_import_nothing_above_them() {
    assert_none(
        &backend_violations(&gateway_imports()),
        "backends move bytes and know nothing of S3 requests or the registry; move what they need \
         below both (as `digest` is)",
    );
}

#[test]
fn gateway_modules_import_without_cycles() {
    assert_none(
        &cycles(&gateway_imports()),
        "gateway modules import each other; move what both sides need into a module below them",
    );
}

#[test]
fn registry_modules_import_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/src");
    assert_none(
        &cycles(&imports(&read_tree(&root, "registry/src"))),
        "registry modules import each other; move what both sides need into a module below them",
    );
}

/// The checks themselves, on small trees written here.
mod checker {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Vec<Import> {
        let files = files.iter().map(|(path, text)| ((*path).to_owned(), (*text).to_owned())).collect();
        imports(&source_files("src", files))
    }

    /// Edges as `from -> to`, sorted and without repeats.
    fn edges(imports: &[Import]) -> Vec<String> {
        let edges: BTreeSet<String> = imports
            .iter()
            .filter_map(|i| {
                i.to.as_ref().map(|to| format!("{} -> {}", i.from, if to.is_empty() { "crate" } else { to.as_str() }))
            })
            .collect();
        edges.into_iter().collect()
    }

    const LIB: &str = "pub mod backend;\npub mod s3;\n";

    #[test]
    fn a_backend_importing_the_s3_layer_fails_naming_the_file_and_import() {
        let imports = tree(&[
            ("lib.rs", LIB),
            ("backend/mod.rs", "pub mod fs;\n"),
            ("backend/fs.rs", "//! Files.\n\nuse super::BlobError;\nuse crate::s3::checksum::Checksums;\n"),
            ("s3/mod.rs", "pub mod checksum;\n"),
            ("s3/checksum.rs", "pub struct Checksums;\n"),
        ]);
        let violations = backend_violations(&imports);
        assert_eq!(violations, ["src/backend/fs.rs:4: `crate::s3::checksum::Checksums` imports the `s3` module"]);
    }

    #[test]
    fn a_backend_naming_the_registry_crate_inline_fails() {
        let imports = tree(&[
            ("lib.rs", LIB),
            ("backend/mod.rs", "fn f() -> registry::Result<()> { Ok(()) }\n"),
            ("s3/mod.rs", ""),
        ]);
        assert_eq!(
            backend_violations(&imports),
            ["src/backend/mod.rs:1: `registry::Result` imports the registry crate"]
        );
    }

    #[test]
    fn grouped_and_inline_paths_count_but_comments_strings_and_tests_super_do_not() {
        let imports = tree(&[
            ("lib.rs", LIB),
            (
                "backend/mod.rs",
                "//! See [`crate::s3`].\n\
                 use crate::{digest::Md5, s3::{self, wire::X}};\n\
                 fn f() { let s = \"crate::admin::x\"; let c = '\"'; crate::clock::now(); }\n\
                 /* crate::server /* nested */ crate::cli */\n\
                 fn g<'a>(x: &'a str) -> &'a str { x }\n\
                 #[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::outer;\n}\n",
            ),
            ("digest.rs", ""),
            ("clock.rs", ""),
            ("s3/mod.rs", "pub(in crate::s3) fn h() {}\n"),
            ("s3/wire.rs", "use super::{Gateway, caller};\nfn f() { r#\"crate::worker\"#; }\n"),
        ]);
        assert_eq!(
            edges(&imports),
            [
                "backend -> clock",
                "backend -> crate",
                "backend -> digest",
                "backend -> s3",
                "backend -> s3::wire",
                "s3::wire -> s3"
            ]
        );
    }

    #[test]
    fn a_cycle_is_named_with_the_imports_that_close_it() {
        let imports = tree(&[
            ("lib.rs", "pub mod s3;\npub mod server;\n"),
            ("server.rs", "use crate::s3::Gateway;\n"),
            ("s3/mod.rs", "mod object;\nmod inline;\nuse crate::server::RequestId;\n"),
            ("s3/object.rs", "use super::{Gateway, inline};\n"),
            ("s3/inline.rs", "\nuse super::object::Stored;\n"),
        ]);
        assert_eq!(
            cycles(&imports),
            [
                "import cycle among s3, server:\n  \
                 s3 -> server  (src/s3/mod.rs:3: `crate::server::RequestId`)\n  \
                 server -> s3  (src/server.rs:1: `crate::s3::Gateway`)",
                "import cycle among s3::inline, s3::object:\n  \
                 s3::inline -> s3::object  (src/s3/inline.rs:2: `super::object::Stored`)\n  \
                 s3::object -> s3::inline  (src/s3/object.rs:1: `super::inline`)",
            ]
        );
    }

    #[test]
    fn imports_that_point_one_way_pass() {
        let imports = tree(&[
            ("lib.rs", "pub mod s3;\npub mod server;\npub mod request;\n"),
            ("server.rs", "use crate::s3::Gateway;\nuse crate::request::RequestId;\n"),
            ("s3/mod.rs", "pub mod object;\nuse crate::request::RequestId;\npub use self::object::put;\n"),
            ("s3/object.rs", "use super::Gateway;\n"),
            ("request.rs", ""),
        ]);
        assert!(cycles(&imports).is_empty());
        assert!(backend_violations(&imports).is_empty());
    }
}
