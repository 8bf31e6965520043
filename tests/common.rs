//! Helpers shared by the test modules: locating data, printing, normalising models,
//! line diffs, and the skip-or-fail rule for tests that need external resources.

use std::path::{Path, PathBuf};

use fwverify::model::{PrintOptions, Ruleset, SavePrinter};

/// `tests/data/…` of this crate.
pub fn data_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(sub)
}

/// The shared real-world corpus, read in place (its licences forbid copying it here).
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// True when the environment demands that every external resource be present (like
/// cargo's `#[cargo_test(requires = …)]`): a missing resource is then a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Skips a test for a missing external resource with `SKIPPED <what>: <reason>`, or fails
/// it when `CI` is set.
pub fn skip_or_fail(what: &str, reason: &str) {
    if in_ci() {
        panic!("{what}: {reason} (CI is set, so this is a failure rather than a skip)");
    }
    eprintln!("SKIPPED {what}: {reason}");
}

/// One row of `MANIFEST.tsv`.
#[derive(Clone, Debug)]
pub struct CorpusEntry {
    /// File name under `files/`.
    pub file: String,
    /// The `notes` column.
    pub notes: String,
    /// Exit status of `iptables-legacy-restore --test` (0 = the kernel's parser accepts it).
    pub kernel_test: i32,
    /// The `kernel_test` column as written (status plus the first error line).
    pub kernel_said: String,
}

impl CorpusEntry {
    /// The file's path.
    pub fn path(&self) -> PathBuf {
        corpus_dir().join("files").join(&self.file)
    }
    /// The file's text.
    pub fn text(&self) -> String {
        let p = self.path();
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }
}

/// Reads `MANIFEST.tsv`, or says why the corpus is unavailable.
pub fn corpus_manifest() -> Result<Vec<CorpusEntry>, String> {
    let dir = corpus_dir();
    if !dir.join("files").is_dir() {
        return Err(format!("corpus directory {} not found", dir.join("files").display()));
    }
    let path = dir.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("MANIFEST.tsv is empty")?.split('\t').collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| format!("MANIFEST.tsv has no `{name}` column"))
    };
    let (c_file, c_notes, c_kernel) = (col("file")?, col("notes")?, col("kernel_test")?);
    let mut out = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |c: usize| cells.get(c).copied().ok_or_else(|| format!("MANIFEST.tsv:{}: too few columns", i + 2));
        let said = cell(c_kernel)?.to_string();
        let status = said.split(':').next().unwrap_or("").trim();
        let kernel_test =
            status.parse().map_err(|_| format!("MANIFEST.tsv:{}: kernel_test `{said}` has no status", i + 2))?;
        out.push(CorpusEntry {
            file: cell(c_file)?.to_string(),
            notes: cell(c_notes)?.to_string(),
            kernel_test,
            kernel_said: said,
        });
    }
    Ok(out)
}

/// The canonical `iptables-save` text of a ruleset.
pub fn print(rs: &Ruleset, counters: bool) -> String {
    SavePrinter { ruleset: rs, options: PrintOptions { counters } }.to_string()
}

/// A model stripped of what printing and reloading legitimately change, as `Debug` text
/// with one line per ruleset, table, chain and rule: spans (any `Span { .. }`, however
/// deep), the table order (save lists the most recently created table first), the order of
/// user chains (save sorts them by name), the counters of user chains (always saved as
/// `[0:0]`) and absent rule counters (printed as `[0:0]`).
pub fn normalized(rs: &Ruleset) -> String {
    let mut rs = rs.clone();
    let mut tables = std::mem::take(&mut rs.tables);
    let mut out = format!("{rs:?}\n");
    tables.sort_by_key(|t| t.name);
    for mut t in tables {
        let mut chains = std::mem::take(&mut t.chains);
        out.push_str(&format!("{t:?}\n"));
        chains.sort_by(|a, b| {
            (a.hook.is_none(), a.hook, a.name.as_bytes()).cmp(&(b.hook.is_none(), b.hook, b.name.as_bytes()))
        });
        for mut c in chains {
            if c.hook.is_none() {
                c.counters = Default::default();
            }
            let rules = std::mem::take(&mut c.rules);
            out.push_str(&format!("  {c:?}\n"));
            for mut r in rules {
                r.counters.get_or_insert_with(Default::default);
                out.push_str(&format!("    {r:?}\n"));
            }
        }
    }
    strip_spans(&out)
}

/// Replaces every `Span { … }` in `Debug` output by `Span`.
fn strip_spans(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        out.push_str("Span");
        let after = &rest[i..];
        let close = after.find('}').expect("a Span's Debug output closes its brace");
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A line diff of `expected` against `got` (LCS, `-` expected only, `+` got only, two
/// lines of context), or `None` when they are equal.
pub fn line_diff(expected: &str, got: &str) -> Option<String> {
    if expected == got {
        return None;
    }
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    // Trim the common prefix and suffix so the quadratic table stays small.
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..].iter().rev().zip(b[pre..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    if am.len() * bm.len() > 1_000_000 {
        // Too big for the table: show the first 20 lines of each side of the changed region.
        let mut out = format!("--- expected\n+++ got\n@@ from line {} (large change, first lines only)\n", pre + 1);
        am.iter().take(20).for_each(|l| out.push_str(&format!("-{l}\n")));
        bm.iter().take(20).for_each(|l| out.push_str(&format!("+{l}\n")));
        return Some(out);
    }
    let mut lcs = vec![vec![0u32; bm.len() + 1]; am.len() + 1];
    for i in (0..am.len()).rev() {
        for j in (0..bm.len()).rev() {
            lcs[i][j] = if am[i] == bm[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = a[..pre].iter().map(|l| (' ', *l)).collect();
    let (mut i, mut j) = (0, 0);
    while i < am.len() || j < bm.len() {
        if i < am.len() && j < bm.len() && am[i] == bm[j] {
            ops.push((' ', am[i]));
            i += 1;
            j += 1;
        } else if i < am.len() && (j == bm.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', am[i]));
            i += 1;
        } else {
            ops.push(('+', bm[j]));
            j += 1;
        }
    }
    ops.extend(a[a.len() - suf..].iter().map(|l| (' ', *l)));
    let mut out = String::from("--- expected\n+++ got\n");
    let near = |k: usize| ops[k.saturating_sub(2)..(k + 3).min(ops.len())].iter().any(|(c, _)| *c != ' ');
    let mut skipped = false;
    for (k, (c, l)) in ops.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("@@\n");
                skipped = false;
            }
            out.push_str(&format!("{c}{l}\n"));
        } else {
            skipped = true;
        }
    }
    if expected.ends_with('\n') != got.ends_with('\n') {
        out.push_str("(the texts differ in their final line break)\n");
    }
    Some(out)
}

#[test]
fn line_diff_marks_changed_lines_with_context() {
    assert_eq!(line_diff("a\nb\n", "a\nb\n"), None);
    let d = line_diff("1\n2\n3\n4\n5\n6\n7\n", "1\n2\n3\nX\n5\n6\n7\n").unwrap();
    assert_eq!(d, "--- expected\n+++ got\n@@\n 2\n 3\n-4\n+X\n 5\n 6\n");
    assert!(line_diff("a", "a\n").unwrap().contains("final line break"));
}

#[test]
fn strip_spans_removes_nested_spans() {
    let s = "Rule { span: Span { start: 1, end: 2, line: 3 }, x: Foo { span: Span {\n start: 4,\n} } }";
    assert_eq!(strip_spans(s), "Rule { span: Span, x: Foo { span: Span } }");
}
