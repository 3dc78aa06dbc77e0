//! Keys and values from YAML files and `--key value` arguments. Values are typed by serde one
//! key at a time, on top of an otherwise valid config, so every error names its key.

use serde_yaml::{Mapping, Value};

use super::{Origin, TrainConfig, TrainConfigError};

type Result<T, E = TrainConfigError> = std::result::Result<T, E>;

/// The default config as a YAML mapping: every key, in the struct's order.
pub(super) fn default_mapping() -> Mapping {
    to_mapping(&TrainConfig::default())
}

fn to_mapping(cfg: &TrainConfig) -> Mapping {
    match serde_yaml::to_value(cfg) {
        Ok(Value::Mapping(map)) => map,
        // A struct of plain fields always serialises to a mapping.
        other => unreachable!("TrainConfig serialised to {other:?}"),
    }
}

/// A config being edited: its mapping, always deserialisable, and the typed result.
struct Editor {
    map: Mapping,
    config: TrainConfig,
}

impl Editor {
    fn new(config: &TrainConfig) -> Self {
        Editor {
            map: to_mapping(config),
            config: config.clone(),
        }
    }

    fn is_known(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn check_known(&self, key: &str, origin: &Origin) -> Result<()> {
        if self.is_known(key) {
            return Ok(());
        }
        Err(TrainConfigError::UnknownKey {
            origin: origin.clone(),
            key: key.to_string(),
            suggestion: closest_key(key, self.map.keys().filter_map(Value::as_str)),
        })
    }

    /// Sets `key` to the first of `candidates` (readings of one value, the natural one first)
    /// that deserialises; else leaves it and reports the first reading's error.
    fn set(&mut self, key: &str, candidates: Vec<Value>, origin: &Origin) -> Result<()> {
        let old = self.map.get(key).cloned();
        let mut first_error = None;
        for candidate in candidates {
            self.map.insert(Value::from(key), candidate);
            match serde_yaml::from_value::<TrainConfig>(Value::Mapping(self.map.clone())) {
                Ok(config) => {
                    self.config = config;
                    return Ok(());
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if let Some(old) = old {
            self.map.insert(Value::from(key), old);
        }
        Err(TrainConfigError::WrongType {
            origin: origin.clone(),
            key: key.to_string(),
            message: first_error.unwrap_or_else(|| "no value".into()),
        })
    }
}

/// Reads a YAML mapping of keys on top of the defaults.
pub(super) fn from_yaml_text(text: &str, origin: Origin) -> Result<TrainConfig> {
    let syntax = |message: String| TrainConfigError::Syntax {
        origin: origin.clone(),
        message,
    };
    let value: Value = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
    let entries = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(map) => map,
        other => return Err(syntax(format!("the document is {}", describe(&other)))),
    };
    let mut editor = Editor::new(&TrainConfig::default());
    for (key, value) in entries {
        let key = key
            .as_str()
            .ok_or_else(|| syntax(format!("key {} is not a string", describe(&key))))?;
        editor.check_known(key, &origin)?;
        editor.set(key, file_readings(value), &origin)?;
    }
    Ok(editor.config)
}

/// Applies `--key value`, `--key=value`, `--flag` and `--no-flag` arguments to `config`.
pub(super) fn apply(config: &TrainConfig, args: &[String]) -> Result<TrainConfig> {
    let origin = Origin::CommandLine;
    let mut editor = Editor::new(config);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let body = arg
            .strip_prefix("--")
            .filter(|b| !b.is_empty() && !b.starts_with('='))
            .ok_or_else(|| {
                TrainConfigError::Arguments(format!(
                    "expected --key value, got '{arg}' (keys are the config's, e.g. --max-steps 1000)"
                ))
            })?;
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let key = name.replace('-', "_");
        if key == "config" {
            return Err(TrainConfigError::Arguments(
                "--config must come before the --key value overrides".into(),
            ));
        }
        let value = inline.or_else(|| match args.get(i) {
            Some(next) if !next.starts_with("--") => {
                i += 1;
                Some(next.clone())
            }
            _ => None,
        });
        match value {
            Some(raw) => {
                editor.check_known(&key, &origin)?;
                editor.set(&key, argument_readings(&raw), &origin)?;
            }
            None => {
                let (key, on) = match key.strip_prefix("no_") {
                    Some(base) if !editor.is_known(&key) && editor.is_known(base) => {
                        (base.to_string(), false)
                    }
                    _ => (key, true),
                };
                editor.check_known(&key, &origin)?;
                editor
                    .set(&key, vec![Value::Bool(on)], &origin)
                    .map_err(|_| TrainConfigError::WrongType {
                        origin: origin.clone(),
                        key: key.clone(),
                        message: "needs a value (only boolean keys can be given as a bare flag)"
                            .into(),
                    })?;
            }
        }
    }
    Ok(editor.config)
}

/// Readings of a YAML value: as YAML 1.1 (upstream's PyYAML) reads it, then as written.
fn yaml_readings(value: Value) -> Vec<Value> {
    let mut readings: Vec<Value> = value.as_str().and_then(yaml11_int).into_iter().collect();
    readings.push(value);
    readings
}

/// Readings of a value from a file: [`yaml_readings`], then as text (for string keys).
fn file_readings(value: Value) -> Vec<Value> {
    let text = scalar_text(&value);
    let mut readings = yaml_readings(value);
    readings.extend(text.map(Value::String));
    dedup(readings)
}

/// Readings of a command-line value: as YAML, as a list when it has commas (`0.1,0.5,0.9`),
/// then as the text itself (for string keys).
fn argument_readings(raw: &str) -> Vec<Value> {
    let mut readings = serde_yaml::from_str::<Value>(raw)
        .map(yaml_readings)
        .unwrap_or_default();
    let trimmed = raw.trim_start();
    if raw.contains(',') && !trimmed.starts_with('[') && !trimmed.starts_with('{') {
        if let Ok(list) = serde_yaml::from_str::<Value>(&format!("[{raw}]")) {
            readings.push(list);
        }
    }
    readings.push(Value::String(raw.to_string()));
    dedup(readings)
}

fn dedup(values: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// YAML 1.1 integers with digit separators (`200_000`), which upstream's configs use and YAML
/// 1.2 reads as strings.
fn yaml11_int(s: &str) -> Option<Value> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let valid = s.contains('_')
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !valid {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_' && c != '+').collect();
    if clean.starts_with('-') {
        clean.parse::<i64>().ok().map(Value::from)
    } else {
        clean.parse::<u64>().ok().map(Value::from)
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "empty".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string '{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// The known key closest to `key` by edit distance, if it is close enough to be a typo.
fn closest_key<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let normal = key.replace('-', "_").to_ascii_lowercase();
    known
        .map(|k| (edit_distance(&normal, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_integers() {
        assert_eq!(yaml11_int("200_000"), Some(Value::from(200_000u64)));
        assert_eq!(yaml11_int("-1_0"), Some(Value::from(-10i64)));
        assert_eq!(yaml11_int("1000"), None);
        assert_eq!(yaml11_int("_1"), None);
        assert_eq!(yaml11_int("a_b"), None);
    }

    #[test]
    fn typo_suggestions() {
        let keys = ["max_steps", "save_steps", "learning_rate"];
        assert_eq!(
            closest_key("max-step", keys.into_iter()).as_deref(),
            Some("max_steps")
        );
        assert_eq!(
            closest_key("learnin_rate", keys.into_iter()).as_deref(),
            Some("learning_rate")
        );
        assert_eq!(closest_key("dropout", keys.into_iter()), None);
    }
}
