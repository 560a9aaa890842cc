//! The domain: OSB semantics, the instance and binding state machines, the broker and its
//! ports. It imports no AWS, HTTP-framework, database, Vault or Cloudify crate (checked by the
//! architecture test below); adapters translate wire types into these.

pub mod binding;
pub mod broker;
pub mod catalog;
pub mod error;
pub mod ids;
pub mod instance;
pub mod mapping;
pub mod operation;
pub mod params;
pub mod ports;
pub mod renewal;
pub mod snapshot;
pub mod sync;

#[cfg(test)]
mod architecture {
    use std::path::Path;

    const FORBIDDEN: &[&str] = &[
        "axum",
        "http",
        "hyper",
        "tower",
        "aws_",
        "lambda_",
        "rusqlite",
        "reqwest",
        "vaultrs",
        "rustify",
        "serde_dynamo",
        "tokio",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/domain is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_domain_names_no_adapter_http_or_aws_crate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        assert!(
            files.len() >= 5,
            "expected the domain's files under {dir:?}"
        );
        let mut offences = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("readable source");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") || code.starts_with("\"") {
                    continue;
                }
                for krate in FORBIDDEN {
                    let uses = [
                        format!("use {krate}"),
                        format!("{krate}::"),
                        format!("extern crate {krate}"),
                    ];
                    let hit = uses.iter().any(|u| {
                        code.match_indices(u.as_str()).any(|(i, _)| {
                            i == 0
                                || !code.as_bytes()[i - 1].is_ascii_alphanumeric()
                                    && code.as_bytes()[i - 1] != b'_'
                        })
                    });
                    if hit && !(krate == &"tokio" && code.contains("#[tokio::test]")) {
                        offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offences.is_empty(),
            "the domain must stay free of adapter crates:\n{}",
            offences.join("\n")
        );
    }
}
