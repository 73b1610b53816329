//! The unit parsers on arbitrary text, with the round trip `/admin/config` relies on: what
//! the effective-config JSON renders parses back to the same value. Used by the fuzz targets
//! (fuzz/) and their regression tests; not an API.

use std::time::Duration;

use super::json::{duration, percent, size};
use super::units::{
    AddrValue, DurationValue, PercentValue, RateValue, SizeValue, Unit, WindowValue,
};

/// Runs every unit parser on `text` (as a YAML string and, when it is one, as a YAML number)
/// and checks each rendering round trip; `Err` says which one broke.
pub fn check_unit_round_trips(text: &str) -> Result<(), String> {
    if let Some(DurationValue(d)) = DurationValue::parse(text) {
        check_duration(d)?;
    }
    if let Some(SizeValue(bytes)) = SizeValue::parse(text) {
        let rendered = size(bytes);
        match SizeValue::parse(&rendered) {
            Some(SizeValue(back)) if back == bytes => {}
            other => {
                return Err(format!(
                    "size {bytes} renders {rendered:?}, parses {other:?}"
                ));
            }
        }
    }
    if let Some(WindowValue::Time(d)) = WindowValue::parse(text) {
        check_duration(d)?;
    }
    if let Some(PercentValue(p)) = PercentValue::parse(text) {
        check_percent(p)?;
    }
    if let Ok(number) = text.trim().parse::<f64>() {
        // What a bare YAML number goes through.
        let _ = DurationValue::from_number(number);
        let _ = SizeValue::from_number(number);
        if let Some(PercentValue(p)) = PercentValue::from_number(number) {
            check_percent(p)?;
        }
    }
    let _ = RateValue::parse(text);
    if let Some(AddrValue(addr)) = AddrValue::parse(text) {
        let back = AddrValue::parse(&addr.to_string()).map(|a| a.0);
        if back != Some(addr) {
            return Err(format!("address {addr} parses back as {back:?}"));
        }
    }
    Ok(())
}

fn check_duration(d: Duration) -> Result<(), String> {
    let rendered = duration(d);
    let Some(DurationValue(back)) = DurationValue::parse(&rendered) else {
        return Err(format!(
            "duration {d:?} renders {rendered:?}, which does not parse"
        ));
    };
    // Decimal milliseconds go through f64: exact to the nanosecond while it has the digits.
    let tolerance = Duration::from_nanos(1) + d.mul_f64(1e-12);
    if back.abs_diff(d) > tolerance {
        return Err(format!(
            "duration {d:?} renders {rendered:?}, parses back {back:?}"
        ));
    }
    Ok(())
}

/// Only the range validation lets through renders (0-1000 %), to 3 decimals.
fn check_percent(p: f64) -> Result<(), String> {
    if !(0.0..=1000.0).contains(&p) {
        return Ok(());
    }
    let rendered = percent(p / 100.0);
    match PercentValue::parse(&rendered) {
        Some(PercentValue(back)) if (back - p).abs() <= 0.0005 + p * 1e-12 => Ok(()),
        other => Err(format!(
            "percent {p} renders {rendered:?}, parses {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_values_round_trip() {
        for text in [
            "250ms",
            "1.5ms",
            "0.000001ms",
            "1h30m",
            "90s",
            "64KiB",
            "1MiB",
            "512",
            "12.5%",
            "100 calls",
            "[::1]:9901",
            "127.0.0.1:15001",
            "0",
            "100/s",
        ] {
            check_unit_round_trips(text).unwrap();
        }
    }

    /// Inputs the `units` fuzz target found.
    #[test]
    fn fuzz_findings_stay_fixed() {
        // A bare `-0` is a valid percentage that rendered as "-0%", which does not parse.
        check_unit_round_trips("-0 ").unwrap();
        check_unit_round_trips("-0.0").unwrap();
    }
}
