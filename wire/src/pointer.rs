//! Reads the few values an event key needs (JSON pointers such as `/id` and `/type`) in one
//! pass over the body, without building the document.
//!
//! Most deliveries are duplicates answered from the cache, and a duplicate needs its id and
//! type only. The whole body is still parsed, so a body that is not valid JSON is refused
//! exactly as `serde_json::from_slice` would refuse it, and the answers are those of
//! `Value::pointer` on the parsed document, duplicate keys included (the last one wins); the
//! property test in `pointer/tests.rs` holds it to that.
//!
//! **Why not `serde_json::from_slice::<Value>` and `Value::pointer`**, which would be ten
//! lines: not for speed, but for memory. Measured on 2026-11-23 against a build that does
//! exactly that (`bench/pairs.sh`, PostgreSQL, duplicates only, 5 interleaved pairs of 8 s):
//! throughput with `Value` was 0.991× (16 connections) and 0.988× (64) of this module's, the
//! noise of these machines. But a `Value` costs about 16 bytes per body byte for an array of
//! small numbers, and a duplicate would build one only to drop it: with 64 connections
//! sending duplicates of one 1 MB body (`bench/big_bodies.sh BIN dup 64 640`, two runs each), peak RSS
//! was 246–267 MB with `Value` against 170–173 MB with this reader. Bounding memory by the
//! bytes received, not by what they expand to, is the point.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The key by which serde_json marks an object as a `RawValue` in disguise: as the first key
/// of an object, `Value` parses the string it maps to as the object's JSON. Such a body is
/// read through `Value` itself, so its answers stay exactly those of `Value::pointer`.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// What a pointer finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    Null,
    String(String),
    /// An integer (`u64` or `i64`), in its decimal form.
    Integer(String),
    /// A float, a boolean, an object or an array.
    Other,
}

impl Found {
    /// What `Value::pointer` found, in these terms (the reference the tests and fuzz targets
    /// hold [`find`] to).
    pub fn of(value: Option<&Value>) -> Self {
        match value {
            None => Found::Missing,
            Some(Value::Null) => Found::Null,
            Some(Value::String(s)) => Found::String(s.clone()),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Found::Integer(n.to_string()),
            Some(_) => Found::Other,
        }
    }
}

/// A JSON pointer, split into its reference tokens once, when the source is configured,
/// rather than on every delivery.
#[derive(Debug, Clone)]
pub struct Pointer {
    text: String,
    /// `None` for a pointer that can match nothing (it does not start with `/`).
    tokens: Option<Vec<Token>>,
}

#[derive(Debug, Clone)]
struct Token {
    key: String,
    /// The array index the token names, as `Value::pointer` reads one: decimal, no sign,
    /// no leading zero.
    index: Option<usize>,
}

impl Pointer {
    pub fn new(text: &str) -> Self {
        let token = |t: &str| {
            let key = t.replace("~1", "/").replace("~0", "~");
            let index = if key.starts_with('+') || (key.starts_with('0') && key.len() != 1) {
                None
            } else {
                key.parse().ok()
            };
            Token { key, index }
        };
        let tokens = if text.is_empty() {
            Some(Vec::new())
        } else {
            text.strip_prefix('/')
                .map(|rest| rest.split('/').map(token).collect())
        };
        Self {
            text: text.to_owned(),
            tokens,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// The values at `pointers` (RFC 6901, as `Value::pointer` reads them) in `body`, or the
/// parse error if `body` is not one JSON document.
pub fn find<const N: usize>(
    body: &[u8],
    pointers: [&Pointer; N],
) -> Result<[Found; N], serde_json::Error> {
    const { assert!(N <= 64, "pointers are tracked in a u64 mask") };
    let mut found: [Found; N] = std::array::from_fn(|_| Found::Missing);
    let live = (0..N)
        .filter(|&i| pointers[i].tokens.is_some())
        .fold(0u64, |m, i| m | 1 << i);
    let raw_value = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = Node {
        pointers: &pointers,
        found: &mut found,
        live,
        depth: 0,
        raw_value: &raw_value,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if raw_value.get() {
        let value: Value = serde_json::from_slice(body)?;
        return Ok(pointers.map(|p| Found::of(value.pointer(p.as_str()))));
    }
    walked.map(|()| found)
}

/// One value of the document, reached by the pointers in `live` (a bit per pointer), all of
/// which have matched their first `depth` tokens.
struct Node<'a> {
    pointers: &'a [&'a Pointer],
    found: &'a mut [Found],
    live: u64,
    depth: usize,
    /// Set when an object starts with [`RAW_VALUE_TOKEN`]; the walk then stops.
    raw_value: &'a Cell<bool>,
}

impl Node<'_> {
    fn live(&self) -> impl Iterator<Item = (usize, &[Token])> + '_ {
        (0..self.pointers.len())
            .filter(move |i| self.live & (1 << i) != 0)
            .filter_map(move |i| Some((i, self.pointers[i].tokens.as_deref()?)))
    }

    /// Pointers that end at this value.
    fn ending(&self) -> u64 {
        self.live()
            .filter(|(_, t)| t.len() == self.depth)
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Pointers that go on below this value with a next token accepted by `matches`.
    fn next(&self, matches: impl Fn(&Token) -> bool) -> u64 {
        self.live()
            .filter(|(_, t)| t.len() > self.depth && matches(&t[self.depth]))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    fn set(&mut self, mask: u64, value: impl Fn() -> Found) {
        for (i, slot) in self.found.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *slot = value();
            }
        }
    }

    /// The child reached by the pointers in `mask` (none, for a value no pointer goes
    /// through: it is still walked, not skipped with `IgnoredAny`, so that serde_json's
    /// nesting limit applies to it as it does when a `Value` is built). What an earlier child
    /// under the same key found is forgotten first: with a duplicate key the last value wins.
    fn child(&mut self, mask: u64) -> Node<'_> {
        self.set(mask, || Found::Missing);
        Node {
            pointers: self.pointers,
            found: self.found,
            live: mask,
            depth: self.depth + 1,
            raw_value: self.raw_value,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        let mask = self.ending();
        self.set(mask, || Found::String(v.to_owned()));
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        let mask = self.ending();
        self.set(mask, || Found::Integer(v.to_string()));
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        let mask = self.ending();
        self.set(mask, || Found::Integer(v.to_string()));
        Ok(())
    }

    fn visit_f64<E>(mut self, _: f64) -> Result<(), E> {
        let mask = self.ending();
        self.set(mask, || Found::Other);
        Ok(())
    }

    fn visit_bool<E>(mut self, _: bool) -> Result<(), E> {
        let mask = self.ending();
        self.set(mask, || Found::Other);
        Ok(())
    }

    fn visit_unit<E>(mut self) -> Result<(), E> {
        let mask = self.ending();
        self.set(mask, || Found::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mask = self.ending();
        self.set(mask, || Found::Other);
        let mut first = true;
        while let Some((mask, token)) = map.next_key_seed(Key(&self))? {
            if first && token {
                self.raw_value.set(true);
                return Err(de::Error::custom("a raw value in disguise"));
            }
            first = false;
            map.next_value_seed(self.child(mask))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mask = self.ending();
        self.set(mask, || Found::Other);
        let mut i = 0;
        loop {
            let mask = self.next(|t| t.index == Some(i));
            if seq.next_element_seed(self.child(mask))?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// An object key, read as the mask of the pointers whose next token it is, and whether it is
/// [`RAW_VALUE_TOKEN`] (no copy, even for a key with escapes, which serde_json hands over
/// unescaped in a scratch buffer).
struct Key<'n, 'a>(&'n Node<'a>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = (u64, bool);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(u64, bool), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = (u64, bool);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<(u64, bool), E> {
        Ok((self.0.next(|t| t.key == v), v == RAW_VALUE_TOKEN))
    }
}

#[cfg(test)]
mod tests;
