//! The benchmark tool runs and counts right: against a real idemhook on a real socket, every
//! request is counted once, and the server's processed count equals the new events sent.

use std::process::Command;

use idemhook::config::{Environment, Settings, SourceConfig};
use rocket::figment::Figment;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn bench(args: &[&str]) -> serde_json::Value {
    let out = std::env::temp_dir().join(format!("bench_{:016x}.json", rand::random::<u64>()));
    let status = Command::new(env!("CARGO_BIN_EXE_idemhook-bench"))
        .args(args)
        .arg("--json")
        .arg(&out)
        .status()
        .expect("run idemhook-bench");
    assert!(status.success(), "idemhook-bench {args:?} failed");
    let json = std::fs::read_to_string(&out).expect("result file");
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&json).expect("result JSON")
}

/// Runs the tool off the runtime, which is serving the app under test.
async fn bench_blocking(args: &[&str]) -> serde_json::Value {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bench(&args)
    })
    .await
    .expect("the tool's thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_counts_requests_and_checks_the_server() {
    let db = std::env::temp_dir().join(format!("bench_{:016x}.db", rand::random::<u64>()));
    let mut settings = Settings {
        database_url: Some(format!("sqlite://{}?mode=rwc", db.display())),
        shards: 4,
        ..Settings::default()
    };
    settings.sources.insert(
        "bench".into(),
        SourceConfig {
            handlers: vec!["payments".into()],
            ..SourceConfig::default()
        },
    );
    let port = free_port();
    let figment = Figment::from(rocket::Config::release_default())
        .merge(("port", port))
        .merge(("log_level", "off"))
        .merge(("idemhook", &settings));
    let rocket = idemhook::App::new()
        .figment(figment)
        .environment(Environment::empty())
        .rocket()
        .ignite()
        .await
        .expect("ignite");
    let server = tokio::spawn(rocket.launch());
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/health/live")).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let args = [
        "http",
        "--url",
        &url,
        "--source",
        "bench",
        "-c",
        "4",
        "--events",
        "300",
        "--duplicates",
        "50",
        "--pool",
        "50",
    ];
    let result = bench_blocking(&args).await;
    assert_eq!(result["requests"], 300, "{result}");
    assert_eq!(result["status_counts"]["200"], 300, "{result}");
    assert_eq!(result["consistent"], true, "{result}");
    let sent = result["new_events_sent"].as_u64().unwrap();
    assert_eq!(result["server_processed"].as_u64(), Some(sent));
    // 50 seeded + the measured phase's new ones; the rest of the 300 were duplicates.
    let duplicates = result["server_duplicates"].as_u64().unwrap();
    assert_eq!(sent - 50 + duplicates, 300, "{result}");
    assert!(duplicates > 0, "{result}");

    // Paced (open loop): counted the same way, with the offered rate recorded.
    let paced = bench_blocking(&[
        "http", "--url", &url, "--source", "bench", "-c", "4", "--events", "100", "--rate", "2000",
    ])
    .await;
    assert_eq!(paced["requests"], 100, "{paced}");
    assert_eq!(paced["status_counts"]["200"], 100, "{paced}");
    assert_eq!(paced["offered_rate"], 2000.0, "{paced}");
    assert_eq!(paced["consistent"], true, "{paced}");
    assert_eq!(paced["server_processed"], 100, "{paced}");
    server.abort();
    let _ = std::fs::remove_file(&db);
}

#[test]
fn db_limit_mode_commits_every_transaction() {
    let db = std::env::temp_dir().join(format!("bench_{:016x}.db", rand::random::<u64>()));
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let result = bench(&[
        "db-limit",
        "--database-url",
        &url,
        "-c",
        "2",
        "--events",
        "100",
    ]);
    assert_eq!(result["requests"], 100, "{result}");
    assert_eq!(result["status_counts"]["committed"], 100, "{result}");
    let _ = std::fs::remove_file(&db);
}
