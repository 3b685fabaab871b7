//! Each setting is declared once ([`settings!`]): its variable, what it is, its default
//! as an operator would write it, and how it is read. From that one line come the
//! clap field (flag, variable, the default shown in the help), the reader that
//! validates it, and the default itself (the declared text, read by the same reader).

use super::error::ConfigError;

/// The value set, trimmed; unset or blank is none.
fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A setting that always has a value: the one given, else the declared default.
pub(super) fn one<T>(
    var: &'static str,
    raw: &Option<String>,
    default: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(non_empty(raw).unwrap_or(default)).map_err(|m| ConfigError::new(var, m))
}

/// A setting that may be unset (no declared default).
pub(super) fn maybe<T>(
    var: &'static str,
    raw: &Option<String>,
    _default: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    non_empty(raw)
        .map(parse)
        .transpose()
        .map_err(|m| ConfigError::new(var, m))
}

/// A comma-separated list, each item read by `parse`; unset or empty is no items.
pub(super) fn list<T>(
    var: &'static str,
    raw: &Option<String>,
    _default: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    non_empty(raw)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(&parse)
                .collect()
        })
        .unwrap_or(Ok(Vec::new()))
        .map_err(|m| ConfigError::new(var, m))
}

/// `settings! { /// help \n field: Type = kind("TOKENGATE_X" [hidden], "default", parser); ... }`
/// declares `RawSettings` (every field an optional string, as the flag `--field` or the
/// variable gives it) and, per field, `fn field(&self) -> Result<Type, ConfigError>`.
/// `kind` is [`one`] (the default applies), [`maybe`] or [`list`] (the default is `""`);
/// `hidden` keeps a secret's value out of `--help`.
macro_rules! settings {
    (
        $(
            $(#[doc = $doc:literal])*
            $field:ident: $ty:ty = $kind:ident($var:literal $(, $hidden:ident)?, $default:literal, $parse:expr);
        )*
    ) => {
        /// The raw values, as flags or `TOKENGATE_*` variables (clap reads both; `.env` is
        /// loaded into the environment before). Kept as strings so that validation, not
        /// clap, words the error.
        #[derive(clap::Args, Debug, Default, Clone)]
        pub struct RawSettings {
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $var, default_value = $default, hide_default_value = $default.is_empty() $(, $hidden = true)?)]
                pub $field: Option<String>,
            )*
        }

        impl RawSettings {
            $(
                fn $field(&self) -> Result<$crate::config::declare::kind_ty!($kind, $ty), ConfigError> {
                    $crate::config::declare::$kind($var, &self.$field, $default, $parse)
                }
            )*
        }

        #[cfg(test)]
        /// Every declared setting's variable.
        pub(crate) const DECLARED: &[&str] = &[$($var),*];
    };
}
pub(super) use settings;

/// What a reader of `kind` gives for items of `T`.
macro_rules! kind_ty {
    (one, $ty:ty) => { $ty };
    (maybe, $ty:ty) => { Option<$ty> };
    (list, $ty:ty) => { Vec<$ty> };
}
pub(super) use kind_ty;
