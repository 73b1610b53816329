//! The scalar units: good and bad spellings.

use std::time::Duration;

use crate::config::units::{
    DurationValue, PercentValue, RateValue, SizeValue, Unit, WindowValue, format_duration,
};

#[test]
fn durations() {
    let ms = Duration::from_millis;
    for (text, want) in [
        ("250ms", ms(250)),
        ("5s", ms(5000)),
        ("2m", ms(120_000)),
        ("1h", ms(3_600_000)),
        ("0s", ms(0)),
        ("0", ms(0)),
        ("1.5s", ms(1500)),
        ("1m30s", ms(90_000)),
    ] {
        assert_eq!(
            DurationValue::parse(text),
            Some(DurationValue(want)),
            "{text}"
        );
    }
    for text in [
        "fast",
        "5",
        "",
        "s",
        "5 parsecs",
        "-1s",
        "1.s",
        ".5s",
        "5S",
        "1d",
    ] {
        assert_eq!(DurationValue::parse(text), None, "{text}");
    }
    assert_eq!(format_duration(ms(90_000)), "1m30s");
    assert_eq!(format_duration(ms(250)), "250ms");
}

#[test]
fn sizes() {
    for (text, want) in [
        ("64KiB", 65_536),
        ("1MiB", 1 << 20),
        ("1GiB", 1 << 30),
        ("64KB", 64_000),
        ("1MB", 1_000_000),
        ("2GB", 2_000_000_000),
        ("512", 512),
        ("512B", 512),
    ] {
        assert_eq!(SizeValue::parse(text), Some(SizeValue(want)), "{text}");
    }
    for text in ["big", "1.5MiB", "64kib", "KiB", "-1", "1TiB"] {
        assert_eq!(SizeValue::parse(text), None, "{text}");
    }
}

#[test]
fn rates() {
    let r = |tokens, secs| {
        Some(RateValue {
            tokens,
            period: Duration::from_secs(secs),
        })
    };
    assert_eq!(RateValue::parse("100/s"), r(100, 1));
    assert_eq!(RateValue::parse("6000/m"), r(6000, 60));
    assert_eq!(RateValue::parse("10/h"), r(10, 3600));
    assert_eq!(
        RateValue::parse("0/s"),
        r(0, 1),
        "zero parses; validate refuses it"
    );
    for text in ["100", "100/d", "/s", "1.5/s", "-1/s", "many/s"] {
        assert_eq!(RateValue::parse(text), None, "{text}");
    }
}

#[test]
fn percentages_and_windows() {
    assert_eq!(PercentValue::parse("50%"), Some(PercentValue(50.0)));
    assert_eq!(PercentValue::parse("12.5"), Some(PercentValue(12.5)));
    assert_eq!(PercentValue::from_number(75.0), Some(PercentValue(75.0)));
    assert_eq!(PercentValue::parse("half"), None);
    assert_eq!(PercentValue::parse("-5%"), None);
    assert_eq!(
        WindowValue::parse("60s"),
        Some(WindowValue::Time(Duration::from_secs(60)))
    );
    assert_eq!(
        WindowValue::parse("100 calls"),
        Some(WindowValue::Calls(100))
    );
    assert_eq!(WindowValue::parse("1 call"), Some(WindowValue::Calls(1)));
    assert_eq!(WindowValue::parse("100 bananas"), None);
}
