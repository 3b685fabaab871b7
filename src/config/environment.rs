//! The process environment and `.env`: load `.env` under what the environment already
//! sets, and say what was not understood (a malformed line, a misspelled variable),
//! because a setting that is silently ignored is a setting that silently has its default.

use clap::{Args as _, Command};

use super::RawSettings;

/// `TOKENGATE_*` variables read outside `RawSettings` (logging, the test harness).
const OTHER_KNOWN: &[&str] = &[
    "TOKENGATE_LOG",
    "TOKENGATE_TEST_PG_URL",
    "TOKENGATE_TEST_REDIS_URL",
    "TOKENGATE_BIN",
];

/// Load `./.env` (values already in the environment win) and return a warning for each
/// line that could not be read.
pub fn load_dotenv() -> Vec<String> {
    let iter = match dotenvy::dotenv_iter() {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Vec::new(),
        Err(e) => return vec![format!(".env: cannot be read: {e}")],
    };
    let mut warnings = Vec::new();
    for item in iter {
        match item {
            Ok((key, value)) => {
                if std::env::var_os(&key).is_none() {
                    // SAFETY: called first thing in `main`, before any other thread exists.
                    unsafe { std::env::set_var(&key, value) };
                }
            }
            Err(dotenvy::Error::LineParse(line, _)) => {
                // Name the line by its leading word only: the rest may be a secret.
                let name: String = line
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect();
                warnings.push(format!(
                    ".env: ignored a malformed line (starting with {name:?}); write NAME=value"
                ));
            }
            Err(e) => warnings.push(format!(".env: ignored a line: {e}")),
        }
    }
    warnings
}

/// Every `TOKENGATE_*` variable this program reads.
pub fn known_variables() -> Vec<String> {
    let cmd = RawSettings::augment_args(Command::new("tokengate"));
    let mut names: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    names.extend(OTHER_KNOWN.iter().map(|s| (*s).to_owned()));
    names
}

/// A warning for each `TOKENGATE_*` name in `present` that no setting reads, naming the
/// closest known one when it is a likely misspelling.
pub fn unknown_variables<'a>(present: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let known = known_variables();
    present
        .into_iter()
        .filter(|name| name.starts_with("TOKENGATE_") && !known.iter().any(|k| k == name))
        .map(|name| {
            let closest = known
                .iter()
                .map(|k| (edit_distance(name, k), k))
                .min_by_key(|(d, _)| *d)
                .filter(|(d, _)| *d <= 3);
            match closest {
                Some((_, k)) => format!("unknown variable {name} is ignored; did you mean {k}?"),
                None => format!("unknown variable {name} is ignored"),
            }
        })
        .collect()
}

/// Warnings about the environment as it is now (after `.env` was loaded).
pub fn check_environment() -> Vec<String> {
    let names: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    unknown_variables(sorted)
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_name_the_closest_variable() {
        let w = unknown_variables([
            "TOKENGATE_ACESS_TTL",
            "TOKENGATE_ACCESS_TTL",
            "PATH",
            "TOKENGATE_WHATEVER_ELSE",
        ]);
        assert_eq!(
            w,
            [
                "unknown variable TOKENGATE_ACESS_TTL is ignored; did you mean TOKENGATE_ACCESS_TTL?",
                "unknown variable TOKENGATE_WHATEVER_ELSE is ignored",
            ]
        );
    }

    #[test]
    fn every_setting_is_known() {
        let known = known_variables();
        for v in [
            "TOKENGATE_BIND",
            "TOKENGATE_SECRET_KEY",
            "TOKENGATE_REGISTER_RATE",
            "TOKENGATE_LOG",
        ] {
            assert!(known.iter().any(|k| k == v), "{v}");
        }
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
