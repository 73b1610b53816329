//! A string that must never reach logs or admin output (tokens, passwords in URLs).

use std::fmt;

/// Holds a secret value; `Debug` and `Display` print a placeholder so a stray `{:?}` in a log
/// line or an admin view cannot leak it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from the config file or the environment.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that needs it (auth comparison, connecting).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was configured (an empty admin token means "no auth").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}
