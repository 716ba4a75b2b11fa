//! The tables `idemhook events list`, `idemhook destinations list` and `idemhook audit` print
//! (`--json` prints the API's answer instead).

use serde_json::Value;

const COLUMNS: [&str; 7] = [
    "RECEIVED", "SOURCE", "TYPE", "ID", "STATUS", "ATTEMPTS", "DELIVERY",
];

/// A cell, with control characters shown escaped: ids come from providers, and a terminal
/// must not take one for an escape sequence.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Left-aligned columns, two spaces apart, each as wide as its widest cell.
fn table<const N: usize>(columns: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = columns.map(|c| c.chars().count());
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&columns.map(str::to_owned));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

pub fn events_table(page: &Value) -> String {
    let empty = Vec::new();
    let events = page["events"].as_array().unwrap_or(&empty);
    let rows: Vec<[String; 7]> = events
        .iter()
        .map(|e| {
            [
                cell(&e["received_at"]),
                cell(&e["source"]),
                cell(&e["event_type"]),
                cell(&e["event_id"]),
                cell(&e["status"]),
                cell(&e["attempts"]),
                deliveries(e),
            ]
        })
        .collect();
    let mut out = table(COLUMNS, &rows);
    match page["next_cursor"].as_str() {
        Some(cursor) => out.push_str(&format!(
            "({} events; more: --cursor {cursor})\n",
            rows.len()
        )),
        None => out.push_str(&format!("({} events)\n", rows.len())),
    }
    out
}

/// The delivery column: the one delivery's status, or `name:status` for each of several.
fn deliveries(event: &Value) -> String {
    match event["deliveries"].as_array() {
        Some(list) if list.len() > 1 => list
            .iter()
            .map(|d| format!("{}:{}", cell(&d["destination"]), cell(&d["status"])))
            .collect::<Vec<_>>()
            .join(","),
        _ => cell(&event["delivery"]["status"]),
    }
}

/// The table `idemhook destinations list` prints.
pub fn destinations_table(list: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<[String; 8]> = list["destinations"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|d| {
            [
                cell(&d["source"]),
                cell(&d["name"]),
                cell(&d["state"]),
                cell(&d["paused_reason"]),
                cell(&d["held_until"]),
                cell(&d["pending"]),
                cell(&d["dead"]),
                cell(&d["oldest_pending_age_secs"]),
            ]
        })
        .collect();
    table(
        [
            "SOURCE",
            "NAME",
            "STATE",
            "PAUSED",
            "HELD UNTIL",
            "PENDING",
            "DEAD",
            "OLDEST (S)",
        ],
        &rows,
    )
}

pub fn audit_table(page: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<[String; 8]> = page["entries"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| {
            [
                cell(&e["at"]),
                cell(&e["operator"]),
                cell(&e["on_behalf_of"]),
                cell(&e["action"]),
                cell(&e["target"]),
                cell(&e["outcome"]),
                cell(&e["client"]),
                cell(&e["count"]),
            ]
        })
        .collect();
    let mut out = table(
        [
            "AT", "OPERATOR", "FOR", "ACTION", "TARGET", "OUTCOME", "CLIENT", "COUNT",
        ],
        &rows,
    );
    match page["next_cursor"].as_str() {
        Some(cursor) => out.push_str(&format!(
            "({} entries; more: --cursor {cursor})\n",
            rows.len()
        )),
        None => out.push_str(&format!("({} entries)\n", rows.len())),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_and_escapes_control_characters() {
        let page = serde_json::json!({
            "events": [{"received_at": "t", "source": "s", "event_type": "x", "event_id": "a\u{1b}[31mb",
                        "status": "processed", "attempts": 1, "delivery": null}],
            "next_cursor": null
        });
        let table = events_table(&page);
        assert!(table.starts_with("RECEIVED  SOURCE  TYPE  ID"), "{table}");
        assert!(table.contains("a\\u{1b}[31mb"), "{table}");
        assert!(!table.contains('\u{1b}'));
        assert!(table.ends_with("(1 events)\n"));
    }

    #[test]
    fn an_event_with_several_destinations_shows_each_delivery() {
        let delivery =
            |name: &str, status: &str| serde_json::json!({"destination": name, "status": status});
        let page = serde_json::json!({
            "events": [{"received_at": "t", "source": "s", "event_type": "x", "event_id": "e",
                        "status": "processed", "attempts": 1, "delivery": null,
                        "deliveries": [delivery("crm", "dead"), delivery("ledger", "delivered")]},
                       {"received_at": "t", "source": "s", "event_type": "x", "event_id": "f",
                        "status": "processed", "attempts": 1,
                        "delivery": delivery("forward", "pending"),
                        "deliveries": [delivery("forward", "pending")]}],
            "next_cursor": null
        });
        let table = events_table(&page);
        assert!(table.contains("crm:dead,ledger:delivered"), "{table}");
        assert!(
            table.lines().nth(2).unwrap().ends_with("pending"),
            "{table}"
        );
    }

    #[test]
    fn a_destination_row_shows_its_state_and_backlog() {
        let list = serde_json::json!({"destinations": [{"source": "shop", "name": "forward",
            "state": "paused", "paused_reason": "operator", "held_until": null,
            "pending": 12, "dead": 0, "oldest_pending_age_secs": 340}]});
        let table = destinations_table(&list);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("SOURCE  NAME     STATE   PAUSED"),
            "{table}"
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["shop", "forward", "paused", "operator", "-", "12", "0", "340"]
        );
    }
}
