//! The README's configuration table against `cloudify-osb serve --help`: every flag and
//! environment variable in one appears in the other, so the documentation cannot drift.

use std::collections::BTreeSet;
use std::process::Command;

/// `(flags, env vars)` named in the `## Configuration` table of README.md.
fn readme_table() -> (BTreeSet<String>, BTreeSet<String>) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README.md has a ## Configuration section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let (mut flags, mut envs) = (BTreeSet::new(), BTreeSet::new());
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // cells[0] is empty (before the first '|'); then flag, environment, …
        let (Some(flag), Some(env)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        for token in backticked(flag) {
            if token.starts_with("--") {
                flags.insert(token);
            }
        }
        for token in backticked(env) {
            if token
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                envs.insert(token);
            }
        }
    }
    (flags, envs)
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `(flags, env vars)` that `cloudify-osb serve --help` shows.
fn serve_help() -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudify-osb"))
        .args(["serve", "--help"])
        .output()
        .expect("cloudify-osb runs");
    assert!(out.status.success(), "cloudify-osb serve --help failed");
    let text = String::from_utf8(out.stdout).expect("help is UTF-8");
    let (mut flags, mut envs) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("-h, ").unwrap_or(line);
        if let Some(rest) = line.strip_prefix("--") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if name != "help" && name != "version" {
                flags.insert(format!("--{name}"));
            }
        }
        if let Some(i) = line.find("[env: ") {
            let name: String = line[i + 6..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            envs.insert(name);
        }
    }
    (flags, envs)
}

#[test]
fn readme_configuration_table_names_exactly_the_flags_and_env_vars_of_serve_help() {
    let (doc_flags, doc_envs) = readme_table();
    let (help_flags, help_envs) = serve_help();
    assert!(
        help_flags.len() >= 20 && help_envs.len() >= 20,
        "serve --help shows too few settings to compare: {help_flags:?}"
    );
    let missing_flags: Vec<_> = help_flags.difference(&doc_flags).collect();
    let stale_flags: Vec<_> = doc_flags.difference(&help_flags).collect();
    let missing_envs: Vec<_> = help_envs.difference(&doc_envs).collect();
    let stale_envs: Vec<_> = doc_envs.difference(&help_envs).collect();
    assert!(
        missing_flags.is_empty() && stale_flags.is_empty(),
        "README ## Configuration and `serve --help` disagree on flags: \
         missing from the README {missing_flags:?}, not in --help {stale_flags:?}"
    );
    assert!(
        missing_envs.is_empty() && stale_envs.is_empty(),
        "README ## Configuration and `serve --help` disagree on environment variables: \
         missing from the README {missing_envs:?}, not in --help {stale_envs:?}"
    );
}
