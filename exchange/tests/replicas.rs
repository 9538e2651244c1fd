//! Several real `exchange serve` processes on one registry database, on
//! PostgreSQL (a fresh database per run on the local server) and on a
//! SQLite file: a bidder registered through one is live on the other within
//! a second, and a restarted process still has it.
//!
//! Without a reachable PostgreSQL the PostgreSQL case is skipped with a
//! message, except under `CI=true`, where it fails.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use sqlx::Connection;

fn replica(dir: &Path, name: &str, database: &str) -> Replica {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{database}\n[registry]\npoll_interval_ms = 250\n"
        ),
    )
    .unwrap();
    Replica::start(&config, name)
}

async fn two_replicas_share_one_registry(dir: &Path, database: &str) {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let one = replica(dir, "one", database);
    let two = replica(dir, "two", database);
    assert_eq!(
        post_url(&two.url, &request("before", 0.5, 300))
            .await
            .status,
        204
    );

    let spec = json!({"name": "alpha", "endpoints": [a.url()], "protocol": "h2c"});
    let created = admin_call(
        "POST",
        &format!("{}/v1/bidders", one.admin),
        Some(&spec),
        Some(TOKEN),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let registered = Instant::now();
    // Replica two sees it through the database within a second.
    let seen = loop {
        let r = post_url(&two.url, &request("poll", 0.5, 300)).await;
        if r.status == 200 {
            break registered.elapsed();
        }
        assert!(
            registered.elapsed() < Duration::from_secs(5),
            "replica two never saw alpha"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        seen < Duration::from_secs(1),
        "replica two saw alpha after {seen:?}"
    );

    // A pause through replica two reaches replica one the same way.
    let paused = admin_call(
        "PATCH",
        &format!("{}/v1/bidders/alpha", two.admin),
        Some(&json!({"enabled": false})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(paused.status, 200);
    let changed = Instant::now();
    while post_url(&one.url, &request("pause", 0.5, 300)).await.status != 204 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "replica one still calls alpha"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A restarted replica keeps every registration.
    drop(one);
    let again = replica(dir, "again", database);
    let got = admin_call(
        "GET",
        &format!("{}/v1/bidders/alpha", again.admin),
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["enabled"], false);
    drop(two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replicas_see_a_new_bidder_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    two_replicas_share_one_registry(
        dir.path(),
        &format!("sqlite_path = {:?}", db.display().to_string()),
    )
    .await;
}

/// The local PostgreSQL server's maintenance URL, trying the usual users.
async fn postgres() -> Option<(sqlx::PgConnection, String)> {
    for user in ["postgres", "root"] {
        let base = format!("postgres://{user}@127.0.0.1:5432");
        if let Ok(c) = sqlx::PgConnection::connect(&format!("{base}/test")).await {
            return Some((c, base));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_see_a_new_bidder_within_a_second() {
    let Some((mut admin_conn, base)) = postgres().await else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL at 127.0.0.1:5432 is required under CI=true"
        );
        eprintln!("SKIPPED: no PostgreSQL at 127.0.0.1:5432 (database test)");
        return;
    };
    let db = format!(
        "reg_{}_{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_suffix()
    );
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin_conn)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    two_replicas_share_one_registry(dir.path(), &format!("database_url = \"{base}/{db}\"")).await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin_conn)
        .await
        .unwrap();
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_007)
}
