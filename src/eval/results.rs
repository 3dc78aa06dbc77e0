//! Results CSV (`dataset,model,MASE,WQL`, sorted by dataset, as upstream's results files) and
//! the aggregate relative scores of upstream's `agg-relative-score.py`: per metric, the
//! geometric mean over datasets of `model / baseline`.

use std::fmt::Write as _;
use std::path::Path;

use super::EvalError;

const HEADER: [&str; 4] = ["dataset", "model", "MASE", "WQL"];

/// One line of a results file.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub dataset: String,
    pub model: String,
    pub mase: f64,
    pub wql: f64,
}

/// Writes `rows` sorted by dataset name (stable, by code point as pandas `sort_values`). Floats
/// are written with the shortest representation that reads back exactly.
pub fn write_results(path: &Path, rows: &[ResultRow]) -> Result<(), EvalError> {
    let mut sorted: Vec<&ResultRow> = rows.iter().collect();
    sorted.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    let mut text = HEADER.join(",");
    text.push('\n');
    for row in sorted {
        let _ = writeln!(
            text,
            "{},{},{},{}",
            csv_field(&row.dataset),
            csv_field(&row.model),
            row.mase,
            row.wql
        );
    }
    crate::atomic::write(path, text.as_bytes()).map_err(|e| EvalError::io(path, e))
}

/// Reads a results file with (at least) the columns `dataset`, `model`, `MASE`, `WQL`, in any
/// order. A dataset listed twice is an error.
pub fn read_results(path: &Path) -> Result<Vec<ResultRow>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let err = |message: String| EvalError::Results {
        path: path.to_path_buf(),
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| err("the file is empty".into()))?;
    let header = split_csv_line(header).map_err(|m| err(format!("line 1: {m}")))?;
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "no '{name}' column (columns: {})",
                header.join(", ")
            ))
        })
    };
    let [dataset, model, mase, wql] = [
        column(HEADER[0])?,
        column(HEADER[1])?,
        column(HEADER[2])?,
        column(HEADER[3])?,
    ];
    let mut rows: Vec<ResultRow> = Vec::new();
    for (i, line) in lines {
        let at = |m: String| err(format!("line {}: {m}", i + 1));
        let fields = split_csv_line(line).map_err(at)?;
        if fields.len() != header.len() {
            return Err(at(format!(
                "{} fields, but the header has {}",
                fields.len(),
                header.len()
            )));
        }
        let number = |k: usize| {
            parse_float(&fields[k])
                .ok_or_else(|| at(format!("{} '{}' is not a number", header[k], fields[k])))
        };
        let row = ResultRow {
            dataset: fields[dataset].clone(),
            model: fields[model].clone(),
            mase: number(mase)?,
            wql: number(wql)?,
        };
        if rows.iter().any(|r| r.dataset == row.dataset) {
            return Err(at(format!("dataset '{}' is listed twice", row.dataset)));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Aggregate relative scores of a results file against a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct RelativeScores {
    /// Geometric mean over the datasets of `MASE / baseline MASE`.
    pub mase: f64,
    /// Likewise for WQL.
    pub wql: f64,
    /// Datasets aggregated (those of the results).
    pub datasets: usize,
    /// Baseline datasets that the results do not have (not part of the aggregate).
    pub baseline_only: Vec<String>,
}

/// Relative scores of `results` against `baseline` (upstream `agg_relative_score`). Every
/// dataset of `results` must be in `baseline`; upstream would get NaN otherwise, here it is an
/// error naming them.
pub fn relative_scores(
    results: &[ResultRow],
    baseline: &[ResultRow],
) -> Result<RelativeScores, EvalError> {
    if results.is_empty() {
        return Err(EvalError::InvalidInput(
            "the results list no dataset".into(),
        ));
    }
    let mut missing = Vec::new();
    let (mut log_mase, mut log_wql) = (0.0, 0.0);
    for row in results {
        match baseline.iter().find(|b| b.dataset == row.dataset) {
            Some(b) => {
                log_mase += (row.mase / b.mase).ln();
                log_wql += (row.wql / b.wql).ln();
            }
            None => missing.push(row.dataset.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(EvalError::InvalidInput(format!(
            "the baseline has no results for {}",
            missing.join(", ")
        )));
    }
    let n = results.len() as f64;
    Ok(RelativeScores {
        mase: (log_mase / n).exp(),
        wql: (log_wql / n).exp(),
        datasets: results.len(),
        baseline_only: baseline
            .iter()
            .filter(|b| !results.iter().any(|r| r.dataset == b.dataset))
            .map(|b| b.dataset.clone())
            .collect(),
    })
}

/// Python's float parsing as pandas reads CSV numbers (`nan`, `inf` in any case included).
fn parse_float(s: &str) -> Option<f64> {
    let s = s.trim();
    match s.to_ascii_lowercase().as_str() {
        "nan" | "" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Quotes a field that holds a comma, a quote or a line break (Python `csv.QUOTE_MINIMAL`).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line into fields (double-quoted fields with `""` escapes).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}
