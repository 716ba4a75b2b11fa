//! Paging `GET /events` while events keep arriving: the keyset cursor returns each event
//! that existed when paging began exactly once.

use std::collections::BTreeMap;

use sea_orm::DatabaseConnection;

use crate::support::*;

on_every_backend!(pages_return_each_event_once_while_new_events_arrive);

/// New events posted while each page is read.
const ARRIVALS_PER_PAGE: usize = 3;

/// Paging newest first by keyset, 7 a page: while each page is read, a batch of new events is
/// posted, and committed before the next page is asked for. Every event that existed when
/// paging began is returned exactly once. The count of committed events (read from the
/// database, not through the pages) is higher when the last page is asked for than when the
/// first was: events did arrive in between.
async fn pages_return_each_event_once_while_new_events_arrive(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = operator_server(&db).await;
    let http = reqwest::Client::new();
    let ops = Ops::new(&server);
    let conn = db.connect().await;
    let seeded: Vec<String> = (0..120).map(|n| format!("seed_{n:03}")).collect();
    for id in &seeded {
        let (status, text, _) = post(&http, &server, "strict", &payment(id, "o", 1), &[]).await;
        assert_eq!(status, 200, "{text}");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut arrived = 0;
    let at_first_page = committed(&conn).await;
    assert_eq!(at_first_page, 120);
    let mut at_last_page;
    loop {
        at_last_page = committed(&conn).await;
        let mut path = "/events?limit=7&source=strict".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let batch = (arrived..arrived + ARRIVALS_PER_PAGE).map(|n| format!("new_{n:03}"));
        let arrivals = batch.map(|id| {
            let (http, server) = (&http, &server);
            async move {
                let (status, text, _) =
                    post(http, server, "strict", &payment(&id, "o", 1), &[]).await;
                assert_eq!(status, 200, "{text}");
            }
        });
        let ((status, page), _) = tokio::join!(ops.get(&path), futures::future::join_all(arrivals));
        arrived += ARRIVALS_PER_PAGE;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(page["events"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(
        at_last_page > at_first_page,
        "no event arrived between the first page ({at_first_page} events) and the last \
         ({at_last_page})"
    );
    assert_eq!(committed(&conn).await, 120 + arrived as i64);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &seen {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert!(
        counts.values().all(|&n| n == 1),
        "an event repeated: {counts:?}"
    );
    for id in &seeded {
        assert_eq!(counts.get(id.as_str()), Some(&1), "{id} missing");
    }
    drop(server);
    db.drop_db().await;
}

/// Events of `strict` committed so far.
async fn committed(conn: &DatabaseConnection) -> i64 {
    let sql = "SELECT COUNT(*) FROM processed_events WHERE source = 'strict'";
    query_row(conn, sql).await.try_get_by_index(0).unwrap()
}
