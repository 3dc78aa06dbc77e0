//! Value parsers shared by the binaries' flags, so that zero and negative numbers reach our
//! validation and get a message that names the rule (the binaries set clap's
//! `allow_negative_numbers`, so `--flag -5` is a value, not an unknown flag).

/// An integer of at least 1 (clap names the flag and the value beside the message).
pub fn positive<T: TryFrom<i128>>(s: &str) -> Result<T, String> {
    at_least(s, 1, "a positive integer")
}

/// An integer of at least 0.
pub fn non_negative<T: TryFrom<i128>>(s: &str) -> Result<T, String> {
    at_least(s, 0, "an integer of at least 0")
}

fn at_least<T: TryFrom<i128>>(s: &str, min: i128, what: &str) -> Result<T, String> {
    let value: i128 = s
        .trim()
        .parse()
        .map_err(|_| format!("must be {what}, got '{s}'"))?;
    if value < min {
        return Err(format!("must be {what}, got {value}"));
    }
    T::try_from(value).map_err(|_| format!("must be {what} that fits this flag, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_types_are_checked() {
        assert_eq!(positive::<usize>("3"), Ok(3));
        assert!(positive::<usize>("0").unwrap_err().contains("positive"));
        assert!(positive::<i64>("-5").unwrap_err().contains("got -5"));
        assert!(positive::<u32>("1e3").unwrap_err().contains("'1e3'"));
        assert!(positive::<u8>("300").unwrap_err().contains("fits"));
        assert_eq!(non_negative::<i64>("0"), Ok(0));
        assert!(non_negative::<i64>("-1").is_err());
    }
}
