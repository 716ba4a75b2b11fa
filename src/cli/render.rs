//! The table `idemhook events list` prints (`--json` prints the API's answer instead).

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
                cell(&e["delivery"]["status"]),
            ]
        })
        .collect();
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for row in &rows {
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
    let mut out = line(&COLUMNS.map(str::to_owned));
    for row in &rows {
        out.push_str(&line(row));
    }
    match page["next_cursor"].as_str() {
        Some(cursor) => out.push_str(&format!(
            "({} events; more: --cursor {cursor})\n",
            rows.len()
        )),
        None => out.push_str(&format!("({} events)\n", rows.len())),
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
}
