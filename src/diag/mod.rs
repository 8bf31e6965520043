//! Diagnostics: what went wrong, where (`file:line:column`), why, and how to fix it.
//!
//! A [`Diagnostic`] carries data, not preformatted output; [`render`] draws it with
//! miette's graphical handler (ASCII without colour when asked, e.g. for snapshots and
//! non-terminals). Architecture invariant: no I/O here; rendering writes to a `String`.

use std::fmt;
use std::sync::Arc;

use crate::model::Span;

/// How bad a diagnostic is. Errors make the input invalid (exit 2); warnings never block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; the file still loads.
    Warning,
    /// iptables-restore would refuse the file (or fwverify cannot read it).
    Error,
}

/// One finding about an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, e.g. `E0103`; listed in [`CODES`].
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// A lowercase phrase, no final period.
    pub message: String,
    /// Where; `None` for whole-file problems.
    pub span: Option<Span>,
    /// Text under the underline.
    pub label: Option<String>,
    /// Why it is a problem (`= note:`).
    pub note: Option<String>,
    /// What to do (`help:`).
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            label: None,
            note: None,
            help: None,
        }
    }
    /// A warning at `span`.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, span, message) }
    }
    /// Adds the underline text.
    pub fn label(mut self, s: impl Into<String>) -> Self {
        self.label = Some(s.into());
        self
    }
    /// Adds a note.
    pub fn note(mut self, s: impl Into<String>) -> Self {
        self.note = Some(s.into());
        self
    }
    /// Adds a fix hint.
    pub fn help(mut self, s: impl Into<String>) -> Self {
        self.help = Some(s.into());
        self
    }
    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Every diagnostic code with a one-line description (documentation and `--explain`).
pub const CODES: &[(&str, &str)] = &[
    ("E0001", "line not understood"),
    ("E0002", "CRLF (Windows) line endings"),
    ("E0003", "missing or malformed COMMIT"),
    ("E0004", "unknown table"),
    ("E0005", "line outside a *table block"),
    ("E0006", "malformed chain header or counters"),
    ("E0101", "unknown option or stray argument"),
    ("E0102", "option needs a value"),
    ("E0103", "option given without its -m module"),
    ("E0104", "misplaced or unsupported `!`"),
    ("E0105", "bad option value"),
    ("E0106", "conflicting options"),
    ("E0107", "option given twice"),
    ("E0108", "missing required option"),
    ("E0109", "unknown match or target module"),
    ("E0201", "bad policy"),
    ("E0202", "chain defined twice"),
    ("E0203", "policy on a user-defined chain or unknown built-in"),
    ("E0204", "rule appended to a chain that does not exist"),
    ("E0205", "jump or goto to a chain that does not exist"),
    ("E0206", "bad chain name"),
    ("E0207", "chain loop reachable from a built-in chain"),
    ("E0208", "goto or jump to a built-in chain"),
    ("E0209", "interface option not allowed in this chain"),
    ("E0210", "target or match not allowed in this table or chain"),
    ("E0301", "property not understood"),
    ("W0001", "module kept without modelling"),
    ("W0002", "unterminated double quote"),
    ("W0003", "value silently truncated by iptables"),
    ("W0004", "range that never matches"),
    ("W0005", "table given twice; the last block wins"),
    ("W0006", "ipset must exist when the ruleset is loaded"),
];

/// A named source text with a line index, for positions and rendering.
#[derive(Clone, Debug)]
pub struct SourceFile {
    name: String,
    text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Indexes `text`, shown as `name` in diagnostics.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> SourceFile {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { name: name.into(), text, line_starts }
    }
    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map(|s| s.chars().count()).unwrap_or(offset - start) + 1;
        (line, col)
    }
    /// `file:line:col` of a span.
    pub fn location(&self, span: Span) -> String {
        let (l, c) = self.line_col(span.start as usize);
        format!("{}:{}:{}", self.name, l, c)
    }
    /// The text of 1-based line `n`, without its line break.
    pub fn line_text(&self, n: usize) -> &str {
        let start = self.line_starts.get(n - 1).copied().unwrap_or(self.text.len());
        let end = self.line_starts.get(n).copied().unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
}

/// How to draw diagnostics.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    /// Use colour and Unicode (for terminals); plain ASCII otherwise.
    pub fancy: bool,
}

struct MietteDiag<'a> {
    d: &'a Diagnostic,
    src: miette::NamedSource<Arc<str>>,
    location: String,
}

impl fmt::Debug for MietteDiag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}
impl fmt::Display for MietteDiag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.d.is_error() { "error" } else { "warning" };
        if self.d.span.is_some() {
            write!(f, "{kind}[{}]: {}", self.d.code, self.d.message)
        } else {
            write!(f, "{kind}[{}]: {}\n  --> {}", self.d.code, self.d.message, self.location)
        }
    }
}
impl std::error::Error for MietteDiag<'_> {}

impl miette::Diagnostic for MietteDiag<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        match (&self.d.note, &self.d.help) {
            (None, None) => None,
            (Some(n), None) => Some(Box::new(format!("note: {n}"))),
            (None, Some(h)) => Some(Box::new(h.clone())),
            (Some(n), Some(h)) => Some(Box::new(format!("{h}\nnote: {n}"))),
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.d.span.map(|_| &self.src as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.d.span?;
        let label = miette::LabeledSpan::new(
            Some(self.d.label.clone().unwrap_or_else(|| "here".into())),
            span.start as usize,
            span.len().max(1),
        );
        Some(Box::new(std::iter::once(label)))
    }
}

/// Renders diagnostics for `file`, most severe order kept as given, followed by
/// "… and N more" after `max` entries.
pub fn render(diags: &[Diagnostic], file: &SourceFile, opts: RenderOptions, max: usize) -> String {
    let handler = if opts.fancy {
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
    } else {
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::none())
    }
    .with_context_lines(1)
    .with_width(100);
    let src = miette::NamedSource::new(file.name(), file.text.clone());
    let mut out = String::new();
    for d in diags.iter().take(max) {
        let md = MietteDiag {
            d,
            src: src.clone(),
            location: d.span.map(|s| file.location(s)).unwrap_or_else(|| file.name().to_string()),
        };
        let _ = handler.render_report(&mut out, &md);
        out.push('\n');
    }
    if diags.len() > max {
        out.push_str(&format!("… and {} more\n", diags.len() - max));
    }
    out
}

/// Renders one diagnostic as a single line: `file:line:col: error[CODE]: message`.
pub fn short(d: &Diagnostic, file: &SourceFile) -> String {
    let kind = if d.is_error() { "error" } else { "warning" };
    match d.span {
        Some(s) => format!("{}: {kind}[{}]: {}", file.location(s), d.code, d.message),
        None => format!("{}: {kind}[{}]: {}", file.name(), d.code, d.message),
    }
}
