//! The unit parsers (durations, sizes, rates, percentages, windows, addresses) on arbitrary
//! text: no panic, and every value the effective-config JSON renders parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = rampart::config::check_unit_round_trips(text) {
        panic!("{e}");
    }
});
