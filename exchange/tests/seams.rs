//! The process seams, checked on the manifests and sources: the exchange's
//! crate reaches the database only through `rtb-ledger`, and `rtb-ledger`
//! does not reach back into the exchange.

use std::path::Path;

fn manifest(crate_dir: &str) -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("Cargo.toml");
    toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn dependencies(t: &toml::Table) -> Vec<String> {
    t.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_exchange_reaches_the_database_only_through_rtb_ledger() {
    let exchange = dependencies(&manifest("exchange"));
    assert!(exchange.iter().any(|d| d == "rtb-ledger"), "{exchange:?}");
    assert!(
        !exchange.iter().any(|d| d == "sqlx"),
        "rtb-exchange depends on sqlx directly: {exchange:?}"
    );
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("sqlx::"),
            "{} names sqlx: the database belongs to rtb-ledger",
            f.display()
        );
    }
}

#[test]
fn rtb_ledger_does_not_depend_on_the_exchange() {
    let ledger = dependencies(&manifest("ledger"));
    assert!(
        !ledger
            .iter()
            .any(|d| d == "rtb-exchange" || d == "rtb-bidder"),
        "{ledger:?}"
    );
}
