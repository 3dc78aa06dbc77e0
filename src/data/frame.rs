//! Long tables with covariates (upstream `predict_df`'s `df` and `future_df`): id, timestamp,
//! target columns, and every other column a covariate typed as pandas types it after
//! `pd.read_csv` / `pd.read_parquet`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};
use chrono::NaiveDateTime;

use super::cells::{is_missing, parse_bool, parse_number};
use super::long::common_freq_of;
use super::table::{arrow_error, is_text, read_table, type_error, RawColumn, Selection, Table};
use super::{DataError, Freq};

/// Names of the id, timestamp and target columns of a table with covariates; a future table
/// has no targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameColumns {
    pub id: String,
    pub timestamp: String,
    pub targets: Vec<String>,
}

/// What a categorical covariate's values are (pandas: `bool` or `object` of booleans, or
/// strings); past and future tables must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryKind {
    Bool,
    Text,
}

/// A categorical column as pandas' `astype("category")` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Categorical {
    pub kind: CategoryKind,
    /// The categories in pandas' order: sorted (text by code point, `False` before `True`;
    /// booleans are spelled `False`/`True`), or a Parquet dictionary's own order.
    pub categories: Vec<String>,
    /// Index into `categories` per row; `None` = missing (pandas' code -1).
    pub codes: Vec<Option<u32>>,
}

/// A covariate's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum CovariateValues {
    /// Integer or float column (`NaN` = missing), as upstream's `astype(np.float32)`.
    Numeric(Vec<f32>),
    /// Boolean or text column.
    Categorical(Categorical),
}

impl CovariateValues {
    /// How errors describe the column's type.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            CovariateValues::Numeric(_) => "numeric",
            CovariateValues::Categorical(c) if c.kind == CategoryKind::Bool => "boolean",
            CovariateValues::Categorical(_) => "text (categorical)",
        }
    }

    /// Whether every value is missing (pandas reads such a CSV column as float NaN).
    pub(super) fn all_missing(&self) -> bool {
        match self {
            CovariateValues::Numeric(v) => v.iter().all(|x| x.is_nan()),
            CovariateValues::Categorical(c) => c.codes.iter().all(Option::is_none),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Covariate {
    pub name: String,
    pub values: CovariateValues,
}

/// A target column's values (`NaN` = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub values: Vec<f64>,
}

/// A table grouped by series as upstream's `normalize_df` leaves it: series in order of first
/// appearance, each series' rows sorted by timestamp. Every per-row vector is in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub path: PathBuf,
    pub columns: FrameColumns,
    pub ids: Vec<String>,
    /// Series `g` has rows `starts[g]..starts[g + 1]`.
    pub starts: Vec<usize>,
    pub timestamps: Vec<NaiveDateTime>,
    /// The 1-based data row of the file each row came from (for errors).
    pub file_rows: Vec<usize>,
    /// In the order of `columns.targets`.
    pub targets: Vec<Target>,
    /// Every other column, in file order.
    pub covariates: Vec<Covariate>,
}

impl Frame {
    pub fn n_series(&self) -> usize {
        self.ids.len()
    }

    /// The rows of series `g`.
    pub fn rows(&self, g: usize) -> Range<usize> {
        self.starts[g]..self.starts[g + 1]
    }

    /// The frequency shared by all series (see [`super::common_freq`]).
    pub fn freq(&self) -> Result<Freq, DataError> {
        common_freq_of(
            (0..self.n_series()).map(|g| (self.ids[g].as_str(), &self.timestamps[self.rows(g)])),
        )
    }

    /// `(id, last timestamp)` of every series.
    pub fn last_timestamps(&self) -> Vec<(String, NaiveDateTime)> {
        (0..self.n_series())
            .map(|g| (self.ids[g].clone(), self.timestamps[self.starts[g + 1] - 1]))
            .collect()
    }

    pub fn covariate(&self, name: &str) -> Option<&Covariate> {
        self.covariates.iter().find(|c| c.name == name)
    }
}

/// Reads a `.csv` or `.parquet` table with id, timestamp and `cols.targets` columns; every
/// other column is a covariate. Ids and timestamps as [`super::read_long`] reads them, targets
/// too (CSV text must be numbers as pandas reads them; empty fields and NA tokens are `NaN`).
///
/// Covariates are typed as pandas would type them (upstream then excludes booleans from the
/// numeric columns):
/// * CSV: a column whose non-missing cells are all numbers is numeric (an all-missing column
///   too: pandas reads it as float NaN); else one whose cells are all `true`/`false` in any
///   case is boolean; else text, each cell verbatim. Missing cells are the empty field and
///   pandas' NA tokens, matched exactly.
/// * Parquet: integer and float columns are numeric; `Boolean` is boolean; `Utf8` variants and
///   dictionaries of them are text (a dictionary keeps its category order, as pandas reads it
///   as a categorical); a `Null` column is text with every value missing (pandas: `object`).
///   Other types are an error naming the column.
///
/// Errors also name a target given twice or also used as the id or timestamp column, and
/// duplicate column names.
pub fn read_frame(path: &Path, cols: &FrameColumns) -> Result<Frame, DataError> {
    check_roles(cols)?;
    let table = read_table(
        path,
        &Selection {
            id: &cols.id,
            timestamp: &cols.timestamp,
            required: cols
                .targets
                .iter()
                .map(|t| ("target", t.as_str()))
                .collect(),
            rest: true,
        },
    )?;
    let mut targets = Vec::with_capacity(cols.targets.len());
    for name in &cols.targets {
        let column = table
            .column(name)
            .expect("read_table keeps every required column");
        let values = table.numeric("target", column)?;
        targets.push(Target {
            name: name.clone(),
            values: table.grouped(&values),
        });
    }
    let mut covariates = Vec::new();
    for column in table
        .columns
        .iter()
        .filter(|c| !cols.targets.contains(&c.name))
    {
        covariates.push(Covariate {
            name: column.name.clone(),
            values: covariate_values(&table, column)?,
        });
    }
    Ok(Frame {
        path: path.to_path_buf(),
        columns: cols.clone(),
        ids: table.ids.clone(),
        starts: table.starts.clone(),
        timestamps: table.grouped(&table.timestamps),
        file_rows: table.order.iter().map(|r| r + 1).collect(),
        targets,
        covariates,
    })
}

fn check_roles(cols: &FrameColumns) -> Result<(), DataError> {
    let conflict = |column: &str, first, second| {
        Err(DataError::ConflictingColumns {
            column: column.to_string(),
            first,
            second,
        })
    };
    if cols.id == cols.timestamp {
        return conflict(&cols.id, "id", "timestamp");
    }
    for (i, target) in cols.targets.iter().enumerate() {
        if *target == cols.id {
            return conflict(target, "id", "target");
        }
        if *target == cols.timestamp {
            return conflict(target, "timestamp", "target");
        }
        if cols.targets[..i].contains(target) {
            return conflict(target, "target", "target");
        }
    }
    Ok(())
}

/// A covariate column in grouped row order.
fn covariate_values(table: &Table, column: &RawColumn) -> Result<CovariateValues, DataError> {
    let values = if table.text {
        text_covariate(table, column)?
    } else {
        typed_covariate(table, column)?
    };
    Ok(match values {
        CovariateValues::Numeric(v) => CovariateValues::Numeric(table.grouped(&v)),
        CovariateValues::Categorical(c) => CovariateValues::Categorical(Categorical {
            codes: table.grouped(&c.codes),
            ..c
        }),
    })
}

/// A CSV column (all chunks `Utf8`), per file row.
fn text_covariate(table: &Table, column: &RawColumn) -> Result<CovariateValues, DataError> {
    let mut cells: Vec<Option<&str>> = Vec::new();
    for chunk in &column.chunks {
        let Some(text) = chunk.as_string_opt::<i32>() else {
            return Err(type_error(
                table.path,
                "covariate",
                &column.name,
                chunk.data_type(),
                "text",
            ));
        };
        cells.extend(text.iter().map(|c| c.filter(|s| !is_missing(s))));
    }
    let present = || cells.iter().flatten();
    if present().all(|s| parse_number(s).is_some()) {
        let values = cells
            .iter()
            .map(|c| c.and_then(parse_number).map_or(f32::NAN, |v| v as f32))
            .collect();
        return Ok(CovariateValues::Numeric(values));
    }
    if present().all(|s| parse_bool(s).is_some()) {
        let labels: Vec<_> = cells
            .iter()
            .map(|c| c.and_then(parse_bool).map(bool_label))
            .collect();
        return Ok(CovariateValues::Categorical(sorted_categorical(
            CategoryKind::Bool,
            &labels,
        )));
    }
    Ok(CovariateValues::Categorical(sorted_categorical(
        CategoryKind::Text,
        &cells,
    )))
}

/// A Parquet column, per file row.
fn typed_covariate(table: &Table, column: &RawColumn) -> Result<CovariateValues, DataError> {
    let path = table.path;
    let Some(first) = column.chunks.first() else {
        return Ok(CovariateValues::Numeric(Vec::new()));
    };
    let dt = first.data_type().clone();
    match &dt {
        dt if dt.is_integer() || dt.is_floating() => {
            let mut values = Vec::with_capacity(table.group.len());
            for chunk in &column.chunks {
                let f = cast(chunk, &DataType::Float32).map_err(|e| arrow_error(path, e))?;
                values.extend(
                    f.as_primitive::<Float32Type>()
                        .iter()
                        .map(|v| v.unwrap_or(f32::NAN)),
                );
            }
            Ok(CovariateValues::Numeric(values))
        }
        DataType::Boolean => {
            let labels: Vec<_> = column
                .chunks
                .iter()
                .flat_map(|c| c.as_boolean().iter().map(|b| b.map(bool_label)))
                .collect();
            Ok(CovariateValues::Categorical(sorted_categorical(
                CategoryKind::Bool,
                &labels,
            )))
        }
        dt if is_text(dt) => {
            let mut labels = Vec::new();
            for chunk in &column.chunks {
                let text = cast(chunk, &DataType::Utf8).map_err(|e| arrow_error(path, e))?;
                labels.extend(text.as_string::<i32>().iter().map(|s| s.map(String::from)));
            }
            Ok(CovariateValues::Categorical(sorted_categorical(
                CategoryKind::Text,
                &labels.iter().map(Option::as_deref).collect::<Vec<_>>(),
            )))
        }
        DataType::Dictionary(_, values) if is_text(values) => dictionary_categorical(table, column),
        DataType::Null => Ok(CovariateValues::Categorical(Categorical {
            kind: CategoryKind::Text,
            categories: Vec::new(),
            codes: vec![None; table.group.len()],
        })),
        other => Err(type_error(
            path,
            "covariate",
            &column.name,
            other,
            "an integer, float, boolean or text column",
        )),
    }
}

fn bool_label(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Codes of `labels` (`None` = missing) into their sorted distinct values (pandas'
/// `astype("category")`).
fn sorted_categorical(kind: CategoryKind, labels: &[Option<&str>]) -> Categorical {
    let categories: Vec<String> = labels
        .iter()
        .flatten()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(String::from)
        .collect();
    let index: HashMap<&str, u32> = categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let codes = labels.iter().map(|l| l.map(|l| index[l])).collect();
    Categorical {
        kind,
        categories,
        codes,
    }
}

/// A dictionary-encoded text column: categories in dictionary order (unused ones kept),
/// dictionaries of later batches appending their new values.
fn dictionary_categorical(table: &Table, column: &RawColumn) -> Result<CovariateValues, DataError> {
    let mut categories: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut codes = Vec::with_capacity(table.group.len());
    for chunk in &column.chunks {
        let dict = chunk
            .as_any_dictionary_opt()
            .expect("a Dictionary-typed column is a dictionary array");
        let values =
            cast(dict.values(), &DataType::Utf8).map_err(|e| arrow_error(table.path, e))?;
        let mut local = Vec::with_capacity(values.len());
        for value in values.as_string::<i32>().iter() {
            local.push(value.map(|v| {
                *index.entry(v.to_string()).or_insert_with(|| {
                    categories.push(v.to_string());
                    categories.len() as u32 - 1
                })
            }));
        }
        let keys = dict.normalized_keys();
        codes.extend((0..chunk.len()).map(|i| match chunk.is_valid(i) {
            true => local[keys[i]],
            false => None,
        }));
    }
    Ok(CovariateValues::Categorical(Categorical {
        kind: CategoryKind::Text,
        categories,
        codes,
    }))
}
