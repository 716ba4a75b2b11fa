//! Reads idemhook's `/metrics`: the processed count that proves no event was lost, and the
//! server-side idempotency-check histogram.

use std::collections::BTreeMap;

/// One scrape, as `metric{labels}` -> value.
#[derive(Debug, Default, Clone)]
pub struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut map = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((name, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse() {
                    map.insert(name.to_owned(), v);
                }
            }
        }
        Self(map)
    }

    pub async fn fetch(client: &reqwest::Client, base: &str) -> Option<Self> {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(Self::parse(&text))
    }

    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// The upper bound of the bucket holding quantile `q` of the observations made between
    /// `before` and `self`, for `idemhook_idempotency_check_seconds{result=…}`, in ms.
    pub fn check_quantile_ms(&self, before: &Scrape, result: &str, q: f64) -> Option<f64> {
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let labels = k.strip_prefix("idemhook_idempotency_check_seconds_bucket{")?;
                let labels = labels.strip_suffix('}')?;
                let mut le = None;
                let mut matches = false;
                for pair in labels.split(',') {
                    let (name, value) = pair.split_once('=')?;
                    let value = value.trim_matches('"');
                    match name {
                        "le" => le = Some(value),
                        "result" => matches = value == result,
                        _ => {}
                    }
                }
                let le = le.filter(|_| matches)?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, v - before.get(k)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        buckets
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(bound, _)| bound * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_deltas() {
        let before = Scrape::parse(
            "idemhook_idempotency_check_seconds_bucket{result=\"hit\",le=\"0.001\"} 10\n\
             idemhook_idempotency_check_seconds_bucket{result=\"hit\",le=\"0.01\"} 10\n\
             idemhook_idempotency_check_seconds_bucket{result=\"hit\",le=\"+Inf\"} 10\n",
        );
        let after = Scrape::parse(
            "idemhook_idempotency_check_seconds_bucket{result=\"hit\",le=\"0.001\"} 108\n\
             idemhook_idempotency_check_seconds_bucket{result=\"hit\",le=\"0.01\"} 110\n\
             idemhook_idempotency_check_seconds_bucket{result=\"hit\",le=\"+Inf\"} 110\n",
        );
        assert_eq!(after.check_quantile_ms(&before, "hit", 0.5), Some(1.0));
        assert_eq!(after.check_quantile_ms(&before, "hit", 0.99), Some(10.0));
        assert_eq!(after.check_quantile_ms(&before, "miss", 0.99), None);
    }
}
