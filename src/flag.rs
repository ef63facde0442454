//! Flags declared once. A [`Flag`] holds its name, value name, help and
//! default; a command's help text and the parsing of its value both come from
//! it, as ripgrep's flag definitions do. Timely's own flags (`-w`, `-n`, `-p`,
//! `-h`) stay getopts flags installed by timely.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{CliError, usage};

/// One `--long` flag whose value parses as `T`.
pub struct Flag<T> {
    /// The long name, without `--`.
    pub long: &'static str,
    /// A one-letter name, without `-` (empty: none).
    pub short: &'static str,
    /// The value's name in the help (`N`, `PATH`); empty for a switch.
    pub value: &'static str,
    /// The help text, without the default.
    pub doc: &'static str,
    /// The value when the flag is not given, as a user would write it.
    pub default: Option<&'static str>,
    /// Whether the flag may be given several times.
    pub repeat: bool,
    parse: fn(&str) -> Result<T, String>,
}

// by hand: a derive would ask `T: Clone`
impl<T> Clone for Flag<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Flag<T> {}

fn from_str<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

impl<T: FromStr> Flag<T>
where
    T::Err: Display,
{
    /// A flag whose value is read by `T`'s [`FromStr`].
    pub const fn new(long: &'static str, value: &'static str, doc: &'static str) -> Self {
        Flag::parsed(long, value, doc, from_str::<T>)
    }
}

impl Flag<bool> {
    /// A switch: given or not.
    pub const fn switch(long: &'static str, doc: &'static str) -> Self {
        Flag::parsed(long, "", doc, from_str::<bool>)
    }
}

impl<T> Flag<T> {
    /// A flag whose value is read by `parse`.
    pub const fn parsed(
        long: &'static str,
        value: &'static str,
        doc: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Self {
        Flag {
            long,
            short: "",
            value,
            doc,
            default: None,
            repeat: false,
            parse,
        }
    }

    /// The same flag with a default value.
    pub const fn default(self, default: &'static str) -> Self {
        Flag {
            default: Some(default),
            ..self
        }
    }

    /// The same flag, also called `-short`.
    pub const fn short(self, short: &'static str) -> Self {
        Flag { short, ..self }
    }

    /// The same flag, repeatable.
    pub const fn repeat(self) -> Self {
        Flag {
            repeat: true,
            ..self
        }
    }

    /// Whether the user gave the flag.
    pub fn given(&self, m: &getopts::Matches) -> bool {
        m.opt_present(self.long)
    }

    fn read(&self, text: &str) -> Result<T, CliError> {
        (self.parse)(text)
            .map_err(|e| usage(format!("invalid value '{text}' for --{}: {e}", self.long)))
    }

    /// The value given, else the default, else `None`.
    pub fn get(&self, m: &getopts::Matches) -> Result<Option<T>, CliError> {
        match m.opt_str(self.long).as_deref().or(self.default) {
            Some(text) => self.read(text).map(Some),
            None => Ok(None),
        }
    }

    /// The value given or the default; without either, a usage error.
    pub fn value(&self, m: &getopts::Matches) -> Result<T, CliError> {
        self.get(m)?
            .ok_or_else(|| usage(format!("missing required option --{}", self.long)))
    }

    /// Every value of a repeatable flag, in order.
    pub fn all(&self, m: &getopts::Matches) -> Result<Vec<T>, CliError> {
        m.opt_strs(self.long)
            .iter()
            .map(|text| self.read(text))
            .collect()
    }
}

/// A flag as a command holds it, whatever its type.
pub trait Declared {
    fn long(&self) -> &'static str;
    /// Adds the flag, its help ending in its default, to `opts`.
    fn install(&self, opts: &mut getopts::Options);
    /// Whether the declared default parses (a test checks every flag's).
    #[cfg(test)]
    fn check_default(&self) -> Result<(), String>;
}

impl<T> Declared for Flag<T> {
    fn long(&self) -> &'static str {
        self.long
    }

    fn install(&self, opts: &mut getopts::Options) {
        let mut doc = self.doc.to_string();
        if self.repeat {
            doc.push_str(" (repeatable)");
        }
        if let Some(default) = self.default {
            doc.push_str(&format!(" (default {default})"));
        }
        if self.value.is_empty() {
            opts.optflag(self.short, self.long, &doc);
        } else if self.repeat {
            opts.optmulti(self.short, self.long, &doc, self.value);
        } else {
            opts.optopt(self.short, self.long, &doc, self.value);
        }
    }

    #[cfg(test)]
    fn check_default(&self) -> Result<(), String> {
        match self.default {
            Some(text) => (self.parse)(text)
                .map(drop)
                .map_err(|e| format!("--{} default '{text}': {e}", self.long)),
            None => Ok(()),
        }
    }
}

/// A duration such as `500ms`, `2s` or `1m 30s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// A duration of more than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err("must be more than 0".to_string());
    }
    Ok(d)
}

/// A count of at least one.
pub fn at_least_one<T: FromStr + PartialOrd + From<u8>>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    let n: T = from_str(text)?;
    if n < T::from(1) {
        return Err("must be at least 1".to_string());
    }
    Ok(n)
}

/// A size such as `512M` (see [`crate::cli::parse_size`]).
pub fn size(text: &str) -> Result<u64, String> {
    crate::cli::parse_size(text)
}

/// One of a fixed set of words; `auto` is `None`.
pub fn choice<T: Copy>(text: &str, values: &[(&str, T)]) -> Result<Option<T>, String> {
    if text == "auto" {
        return Ok(None);
    }
    values
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| Some(*v))
        .ok_or_else(|| {
            let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            format!("expected auto, {}", names.join(" or "))
        })
}
