//! The CLI through its own process, against a running server and its database: the
//! operator commands, `migrate`, and the exit codes (0 success, 1 failure, 2 usage).

use serde_json::Value;

use crate::support::*;

on_every_backend!(the_cli_lists_shows_replays_redrives_and_migrates,);

async fn the_cli_lists_shows_replays_redrives_and_migrates(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = operator_server(&db).await;
    let base = server.base.clone();
    let dir = std::env::temp_dir().join(format!("idemhook_cli_{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Rocket.toml"), config(&db.url, "")).unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        post(&http, &server, "demo", &payment("c1", "oc", 3), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        post(&http, &server, "demo", &usd_payment("c2", "oc"), &[])
            .await
            .0,
        200
    );

    let run = idemhook(&dir, &base, true, &["events", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("RECEIVED"), "{}", run.stdout);
    assert!(
        lines[1].contains("c2") && lines[1].contains("rejected"),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].contains("c1") && lines[2].contains("processed"),
        "{}",
        run.stdout
    );

    let run = idemhook(
        &dir,
        &base,
        true,
        &["events", "list", "--status", "rejected", "--json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let page: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(page["events"][0]["event_id"], "c2");
    assert_eq!(page["events"].as_array().unwrap().len(), 1);

    let run = idemhook(
        &dir,
        &base,
        true,
        &["events", "show", "demo", "payment_succeeded", "c2"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let view: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(view["status"], "rejected");
    assert!(view["payload"].as_str().unwrap().contains("usd"));

    // Refusals exit 1 with the server's reason.
    let run = idemhook(
        &dir,
        &base,
        true,
        &["replay", "demo", "payment_succeeded", "c1"],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("409") && run.stderr.contains("force"),
        "{}",
        run.stderr
    );
    let run = idemhook(&dir, &base, true, &["events", "list", "--status", "done"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`status` must be one of"),
        "{}",
        run.stderr
    );
    let run = idemhook(&dir, &base, false, &["events", "list"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("IDEMHOOK_ADMIN_TOKEN"),
        "{}",
        run.stderr
    );
    let run = idemhook(&dir, "http://127.0.0.1:9", true, &["events", "list"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
    // Usage errors exit 2.
    for args in [
        &["events", "frobnicate"][..],
        &["replay", "demo"],
        &["replay", "--all", "a", "b", "c"],
    ] {
        let run = idemhook(&dir, &base, true, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }

    let run = idemhook(
        &dir,
        &base,
        true,
        &["replay", "demo", "payment_succeeded", "c1", "--force"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("was processed, forced"),
        "{}",
        run.stdout
    );
    let (_, view) = Ops::new(&server)
        .get(&format!("/webhooks/demo/events/c1?{PAY}"))
        .await;
    // The token's operator, not the "$USER (cli)" note the CLI sends beside it.
    assert_eq!(view["replays"][0]["operator"], "admin", "{view}");
    // …and the audit says who, and for whom.
    let run = idemhook(&dir, &base, true, &["audit", "--action", "forced_replay"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("forced_replay"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        line.contains("admin") && line.contains("bob (cli)") && line.contains("demo/c1"),
        "{line}"
    );
    assert!(run.stdout.contains("(1 entries)"), "{}", run.stdout);

    // A bulk replay whose one event is refused again: the job ends, the command fails.
    let run = idemhook(&dir, &base, true, &["replay", "--all", "--source", "demo"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("1 matched, 0 replayed, 1 failed"),
        "{}",
        run.stdout
    );
    let run = idemhook(&dir, &base, true, &["redrive", "--source", "demo"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("done: 0 matched"), "{}", run.stdout);

    // migrate: status, one step down, back up.
    let status = idemhook(&dir, &base, false, &["migrate", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.lines().all(|l| l.starts_with("applied")),
        "{}",
        status.stdout
    );
    drop(server);
    let run = idemhook(&dir, &base, false, &["migrate", "down"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let after = idemhook(&dir, &base, false, &["migrate", "status"]).await;
    // The newest migration, and only it, is pending.
    let pending: Vec<&str> = after
        .stdout
        .lines()
        .filter(|l| l.starts_with("pending"))
        .collect();
    let last = after.stdout.lines().last().unwrap_or_default();
    assert!(
        pending == [last] && last.contains("m2026"),
        "{}",
        after.stdout
    );
    let run = idemhook(&dir, &base, false, &["migrate", "up"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("applied 1 migration"), "{}", run.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await;
}
