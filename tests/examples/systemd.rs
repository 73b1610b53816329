//! examples/systemd: the unit restarts on failure, reloads with SIGHUP after validating,
//! stops with SIGTERM and gives the drain time to finish, is hardened, and passes
//! `systemd-analyze verify` where that tool exists.

use std::collections::BTreeMap;
use std::process::Command;

use super::{drain_budget, example, rampart_config_file, read, seconds};

/// Section → key → every value given (keys such as ExecReload may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: no continuation lines",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            unit.entry(name.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: KEY=VALUE", n + 1));
        let section = section.as_ref().expect("a key before any [Section]");
        unit.get_mut(section)
            .unwrap()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

#[test]
fn the_unit_reloads_stops_and_restarts_as_rampart_expects() {
    let path = example("systemd/rampart.service");
    let unit = parse_unit(&read(&path));
    let service = &unit["Service"];
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("[Service] {key}"));
        assert_eq!(values.len(), 1, "{key} once");
        &values[0]
    };
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("KillSignal"), "SIGTERM");

    // Start and reload validate the same file the service runs.
    let run = one("ExecStart");
    let file = run
        .strip_prefix("/usr/local/bin/rampart run -c ")
        .expect("ExecStart runs rampart on a config file");
    let validate = format!("/usr/local/bin/rampart validate -c {file}");
    assert_eq!(service["ExecStartPre"], std::slice::from_ref(&validate));
    assert_eq!(
        service["ExecReload"],
        [validate, "/bin/kill -HUP $MAINPID".to_owned()],
        "reload validates first, then sends SIGHUP"
    );

    // The shipped config for that file fits the stop timeout.
    assert_eq!(file, "/etc/rampart/rampart.yaml");
    let config = rampart_config_file(&example("systemd/rampart.yaml"));
    let stop = seconds(one("TimeoutStopSec"));
    assert!(
        stop > drain_budget(&config),
        "TimeoutStopSec {stop:?} must exceed drain_delay + shutdown.timeout ({:?})",
        drain_budget(&config)
    );
    assert!(
        service["EnvironmentFile"][0].starts_with('-'),
        "the token file is optional (an empty admin token is refused by validation anyway)"
    );

    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert_eq!(unit["Install"]["WantedBy"], ["multi-user.target"]);
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    // Verify checks that the programs exist: point it at the binary this build made.
    let text = read(&example("systemd/rampart.service"))
        .replace("/usr/local/bin/rampart", env!("CARGO_BIN_EXE_rampart"));
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("rampart.service");
    std::fs::write(&unit, text).unwrap();
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: systemd-analyze is not installed (optional)");
            return;
        }
        Err(e) => panic!("systemd-analyze: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{}\n{stderr}",
        out.status
    );
}
