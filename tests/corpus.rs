//! The real-world corpus (`../shared/corpus`, read in place, never copied): files the
//! kernel accepts load without errors, survive print → parse → print and simulate (but
//! for [`NOT_SIMULATED`]); files the kernel refuses get at least one error, or the
//! documented deliberate behaviour in [`REFUSED`].

use fwverify::diag::Severity;

use crate::common::{corpus_manifest, normalized, print, skip_or_fail, CorpusEntry};

/// What fwverify must do with a file `iptables-legacy-restore --test` refuses.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// At least one error with this code.
    Error(&'static str),
    /// No error, and at least one warning with this code: the file is refused only because
    /// of something outside the ruleset text that fwverify cannot know about.
    WarningOnly(&'static str),
}

/// Every corpus file the kernel refuses, with the reason from MANIFEST.tsv's notes.
const REFUSED: &[(&str, Expect)] = &[
    // Final `COMMIT` has no trailing newline (restore: Bad argument `COMMIT').
    ("ext_ddos_defender.v4", Expect::Error("E0003")),
    // Needs the ipset `iana-allocated`; passes when it exists. Sets live outside the file,
    // so fwverify warns (W0006) instead of failing.
    ("ext_ipv6_testbed.v6", Expect::WarningOnly("W0006")),
    // Lines truncated with a literal `$` (editor copy artefact): `-j $` is no target.
    ("ext_oracle_cloud_default.v4", Expect::Error("E0205")),
    // DNS names in `-d` (*.ustc.edu.cn); fwverify resolves no names, like restore in a
    // namespace without a hosts entry.
    ("ext_ustc_liimstrap.v4", Expect::Error("E0105")),
    // DNS name ntp.example.net in an address.
    ("found_jvehent_afw.v4", Expect::Error("E0105")),
    // CRLF line endings (table read as 'mangle<CR>').
    ("found_lafibre.v4", Expect::Error("E0002")),
    // Obsolete pre-1.4 `-m time --days` syntax: unknown option.
    ("found_linux_gda_pl.v4", Expect::Error("E0101")),
    // CRLF line endings, and a broken address `192.16` on line 23.
    ("found_openwrt_org.v4", Expect::Error("E0002")),
    // Hand-made parser test with an unknown option `--something-else`.
    ("parser_test.v4", Expect::Error("E0101")),
    // Needs the ipset `whitelist`; passes when it exists (see ext_ipv6_testbed.v6).
    ("serverfault_759927_ipset.v4", Expect::WarningOnly("W0006")),
    // MAC addresses anonymised to XX:XX:XX:XX:XX:XX: `Invalid MAC address specified`.
    ("tum_i8_2013-10-20.v4", Expect::Error("E0105")),
    // Same anonymised MAC addresses.
    ("tum_i8_2014-07-25.v4", Expect::Error("E0105")),
    // iptables 1.3.5 syntax `-d ! 192.168.122.0/255.255.255.0` (negation after the option).
    ("ugent.v4", Expect::Error("E0104")),
    // `COMMIT ` with trailing whitespace.
    ("veroneau_net.v4", Expect::Error("E0003")),
    // CRLF line endings (table read as 'nat<CR>').
    ("vsrv.v4", Expect::Error("E0002")),
];

fn manifest() -> Option<Vec<CorpusEntry>> {
    match corpus_manifest() {
        Ok(m) => Some(m),
        Err(reason) => {
            skip_or_fail("corpus", &reason);
            None
        }
    }
}

/// Codes of a diagnostic list, for messages.
fn codes(d: &[fwverify::diag::Diagnostic]) -> String {
    d.iter().map(|d| format!("{}@{}", d.code, d.span.map_or(0, |s| s.line))).collect::<Vec<_>>().join(" ")
}

#[test]
fn corpus_files_the_kernel_accepts_load_and_round_trip() {
    let Some(entries) = manifest() else { return };
    let mut failures = Vec::new();
    let mut checked = 0;
    for e in entries.iter().filter(|e| e.kernel_test == 0) {
        checked += 1;
        let parsed = fwverify::load(&e.text());
        let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).cloned().collect();
        if !errors.is_empty() {
            let file = fwverify::diag::SourceFile::new(e.file.clone(), e.text());
            let shown: Vec<String> = errors.iter().take(5).map(|d| fwverify::diag::short(d, &file)).collect();
            failures.push(format!("{}: the kernel accepts it but fwverify reports:\n  {}", e.file, shown.join("\n  ")));
            continue;
        }
        // Print with counters so that nothing in the model is lost, reload, compare.
        for counters in [true, false] {
            let first = print(&parsed.ruleset, counters);
            let again = fwverify::load(&first);
            if again.has_errors() {
                failures.push(format!(
                    "{}: its canonical print (counters: {counters}) does not load: {}",
                    e.file,
                    codes(&again.diagnostics)
                ));
                continue;
            }
            // Save lists the most recently created table first, so a second print lists
            // the tables in reverse; compare table blocks in a fixed order.
            let second = print(&again.ruleset, counters);
            if sorted_blocks(&first) != sorted_blocks(&second) {
                let diff =
                    crate::common::line_diff(&sorted_blocks(&first), &sorted_blocks(&second)).unwrap_or_default();
                failures.push(format!("{}: print → parse → print changed the text:\n{diff}", e.file));
            }
            if counters {
                assert_eq!(parsed.ruleset.rule_count(), again.ruleset.rule_count(), "{}", e.file);
                let (a, b) = (normalized(&parsed.ruleset), normalized(&again.ruleset));
                if let Some(diff) = crate::common::line_diff(&a, &b) {
                    failures.push(format!("{}: the reloaded model differs:\n{diff}", e.file));
                }
            }
        }
    }
    assert!(checked >= 40, "only {checked} accepted corpus files found; is MANIFEST.tsv complete?");
    assert!(failures.is_empty(), "{} corpus problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

/// The `*table … COMMIT` blocks of a save text, sorted.
fn sorted_blocks(text: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('*') || blocks.is_empty() {
            blocks.push(String::new());
        }
        let b = blocks.last_mut().expect("pushed above");
        b.push_str(line);
        b.push('\n');
    }
    blocks.sort();
    blocks.concat()
}

#[test]
fn corpus_files_the_kernel_refuses_get_an_error_or_a_documented_warning() {
    let Some(entries) = manifest() else { return };
    let mut failures = Vec::new();
    for e in entries.iter().filter(|e| e.kernel_test != 0) {
        let Some(&(_, expect)) = REFUSED.iter().find(|(f, _)| *f == e.file) else {
            failures.push(format!(
                "{}: refused by the kernel ({}) but missing from REFUSED; notes: {}",
                e.file, e.kernel_said, e.notes
            ));
            continue;
        };
        let parsed = fwverify::load(&e.text());
        let has = |code: &str, sev: Severity| parsed.diagnostics.iter().any(|d| d.code == code && d.severity == sev);
        match expect {
            Expect::Error(code) => {
                if !has(code, Severity::Error) {
                    failures.push(format!(
                        "{}: expected error {code} (kernel: {}), got [{}]",
                        e.file,
                        e.kernel_said,
                        codes(&parsed.diagnostics)
                    ));
                }
            }
            Expect::WarningOnly(code) => {
                if parsed.has_errors() || !has(code, Severity::Warning) {
                    failures.push(format!(
                        "{}: expected no error and warning {code} (kernel: {}), got [{}]",
                        e.file,
                        e.kernel_said,
                        codes(&parsed.diagnostics)
                    ));
                }
            }
        }
    }
    for (file, _) in REFUSED {
        match entries.iter().find(|e| e.file == *file) {
            None => failures.push(format!("{file}: listed in REFUSED but not in MANIFEST.tsv")),
            Some(e) if e.kernel_test == 0 => {
                failures.push(format!("{file}: listed in REFUSED but the kernel accepts it"))
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{} corpus problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

/// Every corpus file the kernel loads that the simulator refuses, with what it cannot
/// evaluate: scenarios carry no MAC addresses, payloads or IPv6 extension headers, and
/// the contents of ipsets are not in the ruleset.
const NOT_SIMULATED: &[(&str, &str)] = &[
    ("ext_captive_portal.v4", "match mac"),
    ("ext_kvmpbx_string.v4", "match string"),
    ("ipv6_mailserver.v6", "match rt"),
    ("ipv6_nat64_router.v6", "match rt"),
];

#[test]
fn corpus_files_the_kernel_accepts_simulate_or_say_why_not() {
    use fwverify::sim::{Engine, Ifaces, SimConfig};
    let Some(entries) = manifest() else { return };
    let (mut simulated, mut refused) = (0, Vec::new());
    for e in entries.iter().filter(|e| e.kernel_test == 0) {
        let parsed = fwverify::load(&e.text());
        match Engine::new(&parsed.ruleset, SimConfig::default(), Ifaces::default()) {
            Ok(_) => simulated += 1,
            Err(why) => {
                let mut whats: Vec<String> = why.iter().map(|u| u.what.clone()).collect();
                whats.sort();
                whats.dedup();
                refused.push((e.file.clone(), whats));
            }
        }
    }
    let mut unexpected = Vec::new();
    for (file, whats) in &refused {
        match NOT_SIMULATED.iter().find(|(f, _)| f == file) {
            Some((_, want)) if whats.iter().all(|w| w.starts_with(want)) => {}
            _ => unexpected.push(format!("{file}: {}", whats.join("; "))),
        }
    }
    for (file, _) in NOT_SIMULATED {
        if !refused.iter().any(|(f, _)| f == file) {
            unexpected.push(format!("{file} now simulates: take it off NOT_SIMULATED"));
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    assert!(simulated >= 40, "only {simulated} corpus files simulate");
}
