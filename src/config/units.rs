//! Scalar newtypes of the YAML schema: durations, sizes, rates, percentages, breaker windows
//! and socket addresses. Each parses from its string form and reports a type error that names
//! the expected shape; range checks are left to `validate` so they can all be collected.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A scalar that parses from text; the integer and float forms are offered as text too.
pub(crate) trait Unit: Sized {
    /// What the error message says was expected, e.g. `a duration like "250ms"`.
    const EXPECTED: &'static str;
    /// Parses the text form; `None` is a type error.
    fn parse(text: &str) -> Option<Self>;
    /// Parses a bare YAML number; by default only through its text form.
    fn from_number(value: f64) -> Option<Self> {
        if value.fract() == 0.0 {
            Self::parse(&format!("{value}"))
        } else {
            None
        }
    }
}

/// Deserializes any [`Unit`] from a string or number scalar.
pub(crate) fn deserialize_unit<'de, T: Unit, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<T: Unit> V<T> {
        fn fail<E: de::Error>(got: &str) -> E {
            E::custom(format!("expected {}, got \"{got}\"", T::EXPECTED))
        }
    }
    impl<'de, T: Unit> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTED)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            T::parse(v.trim()).ok_or_else(|| Self::fail(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::parse(&v.to_string()).ok_or_else(|| Self::fail(&v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            T::parse(&v.to_string()).ok_or_else(|| Self::fail(&v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            T::from_number(v).ok_or_else(|| Self::fail(&v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            Err(Self::fail(&v.to_string()))
        }
    }
    d.deserialize_any(V(PhantomData))
}

macro_rules! unit_deserialize {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_unit(d)
            }
        }
    )*};
}

/// A duration: `250ms`, `5s`, `2m`, `1h`, `1.5s`, `1m30s`, or `0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DurationValue(pub(crate) Duration);

/// A byte count: `65536`, `64KiB`, `1MiB`, `1GiB`, `64KB`, `1MB`, `1GB`, `512B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SizeValue(pub(crate) u64);

/// A rate: `100/s`, `6000/m`, `10/h` (tokens are checked to be > 0 in `validate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateValue {
    pub(crate) tokens: u32,
    pub(crate) period: Duration,
}

/// A percentage: `50%` or a bare number; kept in percent (range checked in `validate`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PercentValue(pub(crate) f64);

/// A breaker window: a duration (time-based) or `"N calls"` (count-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowValue {
    Time(Duration),
    Calls(u32),
}

/// A socket address with an IP literal: `127.0.0.1:15001`, `[::1]:9901`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AddrValue(pub(crate) SocketAddr);

impl Default for PercentValue {
    /// `failure_rate: on` means the usual 50 %.
    fn default() -> Self {
        Self(50.0)
    }
}

unit_deserialize!(
    DurationValue,
    SizeValue,
    RateValue,
    PercentValue,
    WindowValue,
    AddrValue
);

/// Splits `"12.5ms"` into the number and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim_start())
}

impl Unit for DurationValue {
    const EXPECTED: &'static str = "a duration like \"250ms\"";
    fn parse(text: &str) -> Option<Self> {
        if text == "0" {
            return Some(Self(Duration::ZERO));
        }
        let mut rest = text;
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let (number, after) = split_number(rest);
            let unit_len = after
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
                return None;
            }
            let value: f64 = number.parse().ok()?;
            total = total.checked_add(Duration::try_from_secs_f64(value * scale).ok()?)?;
            rest = next.trim_start();
        }
        (!text.is_empty()).then_some(Self(total))
    }
}

impl Unit for SizeValue {
    const EXPECTED: &'static str = "a size like \"64KiB\"";
    fn parse(text: &str) -> Option<Self> {
        let (number, unit) = split_number(text);
        let scale: u64 = match unit {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return None,
        };
        if number.is_empty() || number.contains('.') {
            return None;
        }
        number.parse::<u64>().ok()?.checked_mul(scale).map(Self)
    }
}

impl Unit for RateValue {
    const EXPECTED: &'static str = "a rate like \"100/s\"";
    fn parse(text: &str) -> Option<Self> {
        let (tokens, period) = text.split_once('/')?;
        let period = match period.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        let tokens = tokens.trim();
        if tokens.is_empty() || !tokens.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            tokens: tokens.parse().ok()?,
            period,
        })
    }
}

impl Unit for PercentValue {
    const EXPECTED: &'static str = "a percentage like \"50%\"";
    fn parse(text: &str) -> Option<Self> {
        let number = text.strip_suffix('%').unwrap_or(text).trim_end();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        number.parse().ok().map(Self)
    }
    fn from_number(value: f64) -> Option<Self> {
        value.is_finite().then_some(Self(value))
    }
}

impl Unit for WindowValue {
    const EXPECTED: &'static str = "a window like \"60s\" or \"100 calls\"";
    fn parse(text: &str) -> Option<Self> {
        let (number, unit) = split_number(text);
        if matches!(unit, "calls" | "call") && !number.is_empty() && !number.contains('.') {
            return number.parse().ok().map(Self::Calls);
        }
        DurationValue::parse(text).map(|d| Self::Time(d.0))
    }
}

impl Unit for AddrValue {
    const EXPECTED: &'static str = "an address like \"127.0.0.1:15001\"";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}

/// Formats a duration the way the YAML spells it (`250ms`, `5s`, `2m`, `1h30m`).
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// Formats a byte count with the largest exact binary unit (`64KiB`, `1MiB`, `100B`).
pub(crate) fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}
