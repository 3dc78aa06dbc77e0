//! Hostile and unusual input to the binaries, run for real: each case asserts the exit status,
//! that the message names the culprit, that nothing panicked, and that no output file exists
//! (or a previous one is intact). Values that the models cannot use (infinite, beyond f32) are
//! forecast as missing with a note naming the series.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A table of two hourly series of 40 points from 2024-01-01 00:00; `edit(series, step)` may
/// replace a value's text.
fn table(dir: &Path, name: &str, edit: impl Fn(usize, usize) -> Option<String>) -> PathBuf {
    let mut text = String::from("item_id,timestamp,target\n");
    for s in 0..2 {
        for t in 0..40 {
            let value = edit(s, t).unwrap_or_else(|| format!("{}", 100 + (t * 7 + s * 3) % 17));
            let (day, hour) = (1 + t / 24, t % 24);
            text.push_str(&format!("s{s},2024-01-{day:02} {hour:02}:00:00,{value}\n"));
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn predict(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_predict"), args)
}

/// `predict --input <input> --output <out> --prediction-length <h>` with the bundled model.
fn forecast(input: &Path, out: &Path, h: &str) -> Output {
    predict(&[
        "--input",
        s(input),
        "--output",
        s(out),
        "--prediction-length",
        h,
    ])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a failure whose stderr contains every one of `needles`, without a panic.
fn assert_refused(case: &str, out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{case}: succeeded\n{stderr}");
    // 1: our error, 2: clap's usage error; never an abort or a signal.
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{case}: {:?}\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{case}: panicked\n{stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{case}: no '{needle}' in\n{stderr}"
        );
    }
}

#[test]
fn predict_refuses_bad_flags_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let input = table(dir.path(), "in.csv", |_, _| None);
    let out = dir.path().join("out.csv");
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "negative horizon",
            &["--prediction-length", "-5"],
            &["--prediction-length", "positive", "-5"],
        ),
        (
            "zero horizon",
            &["--prediction-length", "0"],
            &["--prediction-length", "positive"],
        ),
        (
            "text horizon",
            &["--prediction-length", "ten"],
            &["--prediction-length", "'ten'"],
        ),
        (
            "zero batch",
            &["--batch-size", "0"],
            &["--batch-size", "positive"],
        ),
        (
            "negative batch",
            &["--batch-size", "-1"],
            &["--batch-size", "-1"],
        ),
        (
            "zero plot series",
            &["--plot-series", "0"],
            &["--plot-series"],
        ),
        (
            "negative context",
            &["--context-length", "-3"],
            &["--context-length", "-3"],
        ),
        (
            "negative samples",
            &["--num-samples", "-2"],
            &["--num-samples", "-2"],
        ),
        (
            "negative top-k",
            &["--top-k", "-1"],
            &["--top-k", "at least 0"],
        ),
        (
            "zero threads",
            &["--threads", "0"],
            &["--threads", "positive"],
        ),
        ("level above 1", &["--quantiles", "0.5,1.5"], &["1.5"]),
        ("unknown dtype", &["--dtype", "f8"], &["f8"]),
        ("unknown device", &["--device", "tpu"], &["tpu"]),
        (
            "horizon beyond memory",
            &["--prediction-length", "1000000000"],
            &["--prediction-length 1000000000", "GB", "at most"],
        ),
        (
            "horizon beyond memory, limited",
            &[
                "--prediction-length",
                "1000000000",
                "--limit-prediction-length",
            ],
            &["1000000000"],
        ),
    ];
    for (case, extra, needles) in cases {
        let mut args = vec!["--input", s(&input), "--output", s(&out)];
        args.extend_from_slice(extra);
        assert_refused(case, &predict(&args), needles);
        assert!(!out.exists(), "{case}: an output file was written");
    }
}

#[test]
fn predict_never_overwrites_its_input_or_a_previous_output_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let input = table(dir.path(), "in.csv", |_, _| None);
    let before = std::fs::read_to_string(&input).unwrap();
    let same = dir.path().join(".").join("in.csv");
    for (case, args) in [
        (
            "output is the input",
            vec!["--input", s(&input), "--output", s(&same)],
        ),
        (
            "plot is the input",
            vec![
                "--input",
                s(&input),
                "--output",
                "unused.csv",
                "--plot",
                s(&input),
            ],
        ),
    ] {
        assert_refused(case, &predict(&args), &["same file", "in.csv"]);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), before, "{case}");
    }
    // A failing run leaves an existing output as it was.
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "previous").unwrap();
    let bad = table(dir.path(), "bad.csv", |s, t| {
        (s == 1 && t == 5).then(|| "abc".into())
    });
    assert_refused(
        "non-numeric target",
        &predict(&["--input", s(&bad), "--output", s(&out)]),
        &["bad.csv"],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
    let missing = dir.path().join("nope.csv");
    assert_refused(
        "missing input",
        &predict(&["--input", s(&missing), "--output", s(&out)]),
        &["nope.csv"],
    );
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert_refused(
        "empty input",
        &predict(&["--input", s(&empty), "--output", s(&out)]),
        &["empty.csv"],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
    // Only the output remains in the folder: no temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");
}

#[test]
fn infinite_and_overflowing_targets_are_missing_values_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    for (case, value) in [("inf", "inf"), ("-inf", "-inf"), ("beyond f32", "1e308")] {
        let input = table(dir.path(), "in.csv", |s, t| {
            (s == 1 && t == 30).then(|| value.into())
        });
        let out = dir.path().join("out.csv");
        let result = forecast(&input, &out, "4");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(result.status.success(), "{case}: {stderr}");
        assert!(
            stderr.contains("series 's1'") && stderr.contains("infinite or beyond float32"),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains("2024-01-02 06:00:00"),
            "{case}: the note names the row: {stderr}"
        );
        assert!(!stderr.contains("series 's0'"), "{case}: {stderr}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().count(), 1 + 2 * 4, "{case}");
        for line in text.lines().skip(1) {
            assert!(
                !line.contains(",,") && !line.ends_with(',') && !line.contains("NaN"),
                "{case}: {line}"
            );
        }
    }
}

#[test]
fn kernel_synth_and_evaluate_refuse_zero_and_negative_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth.arrow");
    for (case, extra, needle) in [
        ("zero series", vec!["-N", "0"], "positive"),
        ("negative series", vec!["-N", "-3"], "-3"),
        ("zero kernels", vec!["-J", "0"], "positive"),
        ("zero length", vec!["--length", "0"], "positive"),
    ] {
        let mut args = vec!["--output", s(&out)];
        args.extend(extra);
        assert_refused(
            case,
            &run(env!("CARGO_BIN_EXE_kernel-synth"), &args),
            &[needle],
        );
        assert!(!out.exists(), "{case}");
    }
    let config = dir.path().join("bench.yaml");
    std::fs::write(&config, "[]\n").unwrap();
    let result = run(
        env!("CARGO_BIN_EXE_evaluate"),
        &[
            "--config",
            s(&config),
            "--model",
            "seasonal-naive",
            "--batch-size",
            "0",
        ],
    );
    assert_refused(
        "evaluate zero batch",
        &result,
        &["--batch-size", "positive"],
    );
}

#[test]
fn a_killed_kernel_synth_leaves_no_file_under_the_requested_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth.arrow");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kernel-synth"))
        .args(["--output", s(&out), "-N", "1000000", "--length", "1024"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it is writing (its temporary file exists), then kill it.
    let start = std::time::Instant::now();
    while std::fs::read_dir(dir.path()).unwrap().count() == 0 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!out.exists(), "a killed run left {}", out.display());
}

#[test]
fn mixed_utc_offsets_in_one_column_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let with_offsets = |name: &str, odd: &str| {
        let path = table(dir.path(), name, |_, _| None);
        let text = std::fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .enumerate()
            .map(|(i, line)| match i {
                0 => format!("{line}\n"),
                // the timestamp is the second field
                _ => {
                    let mut f: Vec<&str> = line.split(',').collect();
                    let stamp = format!("{}{}", f[1], if i == 50 { odd } else { "+00:00" });
                    f[1] = &stamp;
                    format!("{}\n", f.join(","))
                }
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    for (case, odd) in [("+05:00 among +00:00", "+05:00"), ("none among +00:00", "")] {
        let input = with_offsets("mixed.csv", odd);
        let result = predict(&["--input", s(&input), "--output", s(&out)]);
        let expected = if odd.is_empty() { "none" } else { odd };
        assert_refused(
            case,
            &result,
            &[
                "mixed.csv",
                "row 50",
                "series 's1'",
                "mixes UTC offsets",
                expected,
                "+00:00",
            ],
        );
        assert!(!out.exists(), "{case}");
    }
    // One offset throughout is fine (read as wall time).
    let input = with_offsets("same.csv", "+00:00");
    let result = forecast(&input, &out, "2");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}
