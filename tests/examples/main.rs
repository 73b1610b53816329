//! The deployment kit in `examples/`: every file parses, every rampart config in it validates
//! with rampart's own loader, and each file states what its deployment needs (probes, proxy
//! variables, drain timeouts, hardening). Prometheus files go through `promtool`, and every
//! PromQL expression may name only metrics rampart exports.

// The support items are `pub` for each other; nothing is exported.
#![allow(unreachable_pub)]

// Only the tool lookup of the e2e helpers (strict mode: a missing tool fails the test).
#[path = "../e2e/support/binary.rs"]
#[allow(dead_code)]
mod binary;

mod compose;
mod docs;
mod grafana;
mod kubernetes;
mod prometheus;
mod promql;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rampart::config::Config;
use serde_json::Value;

/// The value `${RAMPART_ADMIN_TOKEN}` gets when an example config is validated.
const TEST_TOKEN: &str = "example-token-for-validation";

/// `examples/<rel>`.
pub fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

/// The file's text; panics naming the file when it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document in the file, as JSON values.
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// One YAML document.
pub fn yaml(path: &Path) -> Value {
    let mut docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

/// The environment an example config is validated with: only the admin token is set.
fn token_lookup(name: &str) -> Option<String> {
    (name == "RAMPART_ADMIN_TOKEN").then(|| TEST_TOKEN.to_owned())
}

/// Validates rampart config text the way `rampart run` would, with the admin token set;
/// panics with every error otherwise.
pub fn rampart_config(text: &str, what: &str) -> Config {
    let config = rampart::config::parse(text, &token_lookup)
        .unwrap_or_else(|e| panic!("{what} does not validate:\n{e}"));
    assert_eq!(
        config.admin.token.expose(),
        TEST_TOKEN,
        "{what}: admin.token comes from ${{RAMPART_ADMIN_TOKEN}}"
    );
    let unset = rampart::config::parse(text, &|_| None)
        .expect_err("without RAMPART_ADMIN_TOKEN the config must be refused, not run open");
    assert!(unset.to_string().contains("RAMPART_ADMIN_TOKEN"), "{unset}");
    config
}

/// Validates a rampart config file (as `rampart validate -c FILE` does).
pub fn rampart_config_file(path: &Path) -> Config {
    rampart_config(&read(path), &path.display().to_string())
}

/// The time a config's shutdown may take: drain delay plus the in-flight timeout.
pub fn drain_budget(config: &Config) -> Duration {
    config.shutdown.drain_delay + config.shutdown.timeout
}

/// Parses "45", "45s", "2m", "1m30s" (compose, systemd and Kubernetes spellings).
pub fn seconds(text: &str) -> Duration {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Duration::from_secs(n);
    }
    let mut total = 0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = number
                    .parse()
                    .unwrap_or_else(|_| panic!("bad duration {text:?}"));
                total += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                number.clear();
            }
            _ => panic!("bad duration {text:?}"),
        }
    }
    assert!(number.is_empty(), "bad duration {text:?}");
    Duration::from_secs(total)
}

/// Runs `promtool ARGS` in `dir` and panics with its output unless it succeeds. False when
/// promtool is not installed and the run is not strict.
pub fn promtool(dir: &Path, args: &[&str]) -> bool {
    let Some(promtool) = binary::tool("promtool") else {
        return false;
    };
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Checks that every `(what, expr)` is valid PromQL: `promtool check rules` on them written
/// out as recording rules.
pub fn check_promql(queries: &[(String, String)]) {
    let mut rules = String::from("groups:\n  - name: queries\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: query:{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("queries.yml"), rules).unwrap();
    promtool(dir.path(), &["check", "rules", "queries.yml"]);
}

#[test]
fn durations_in_deployment_files_parse() {
    assert_eq!(seconds("45"), Duration::from_secs(45));
    assert_eq!(seconds("35s"), Duration::from_secs(35));
    assert_eq!(seconds("1m30s"), Duration::from_secs(90));
}

#[test]
fn the_readme_names_every_file_in_the_kit() {
    let readme = read(&example("README.md"));
    let mut missing = Vec::new();
    let mut stack = vec![example("")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(example("")).unwrap().to_str().unwrap();
            let dir_listed = Path::new(rel)
                .ancestors()
                .skip(1)
                .any(|d| readme.contains(&format!("({}/)", d.display())));
            if rel != "README.md" && !readme.contains(&format!("({rel})")) && !dir_listed {
                missing.push(rel.to_owned());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "examples/README.md does not link {missing:?}"
    );
}
