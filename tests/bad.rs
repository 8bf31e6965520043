//! Malformed inputs (`data/bad/NNNN_what.rules`, one mistake each, every one refused by
//! `iptables-legacy-restore`): fwverify must report at least one error, and the rendered
//! diagnostics (plain ASCII) are snapshotted in `snapshots/`. Review each snapshot: it must
//! name `file:line:column`, underline the offending text and say how to fix it.

use fwverify::diag::{render, RenderOptions, SourceFile};

#[test]
fn bad_inputs_render_clear_diagnostics() {
    let mut without_error: Vec<String> = Vec::new();
    insta::glob!("data/bad/*.rules", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is UTF-8");
        let name = path.file_name().expect("a file").to_string_lossy().into_owned();
        let parsed = fwverify::load(&text);
        let file = SourceFile::new(name.clone(), text);
        let rendered = render(&parsed.diagnostics, &file, RenderOptions { fancy: false }, 50);
        if !parsed.has_errors() {
            without_error.push(format!("{name}:\n{rendered}"));
        }
        insta::assert_snapshot!(rendered);
    });
    assert!(
        without_error.is_empty(),
        "iptables-restore refuses these files but fwverify found no error:\n{}",
        without_error.join("\n")
    );
}

#[test]
fn there_are_enough_bad_inputs() {
    let n = std::fs::read_dir(crate::common::data_dir("bad"))
        .expect("tests/data/bad exists")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "rules")))
        .count();
    assert!(n >= 25, "only {n} bad inputs");
}
