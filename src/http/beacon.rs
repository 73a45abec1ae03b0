//! Beacon bodies (`navigator.sendBeacon`, `fetch(…, {keepalive: true})`, form posts) turned
//! into query strings, so that `$args` gives the seed's consumer the same `ts,k=v&…` line
//! for a beacon as for a GIF hit.
//!
//! - `application/x-www-form-urlencoded`: the pairs as sent, re-encoded.
//! - `application/json`: an object is one event, an array of objects is a batch (each one
//!   record, all or none). A field's value: a string as it is, a number or a boolean as its
//!   JSON text, `null` as nothing, an object or array as compact JSON.
//! - `text/plain` (what `sendBeacon` sends with a string, and what a page can send across
//!   origins without a CORS preflight): JSON when it starts with `{` or `[`, else a form body.
//!
//! Keys keep the order they were sent in (repeated keys stay repeated). Keys and values are
//! percent-encoded the way a browser's `URLSearchParams` encodes them (WHATWG
//! `application/x-www-form-urlencoded`: letters, digits and `*-._` as they are, space as
//! `+`, every other byte as `%XX` of its UTF-8).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// What a beacon body could not be made into records for; nothing of it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("unsupported Content-Type (text/plain, application/x-www-form-urlencoded or application/json)")]
    UnsupportedType,
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("a JSON event must be an object (element {0} is not)")]
    NotAnObject(usize),
    #[error("an empty batch")]
    EmptyBatch,
    #[error("more than {max} events in one batch")]
    TooManyEvents { max: usize },
}

impl BeaconError {
    /// The `reason` label of `pixelpipe_http_rejected_total` this is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            BeaconError::UnsupportedType => "unsupported_media_type",
            BeaconError::Malformed(_) | BeaconError::NotAnObject(_) | BeaconError::EmptyBatch => {
                "bad_body"
            }
            BeaconError::TooManyEvents { .. } => "batch_too_large",
        }
    }
}

/// How a body is read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Form,
    Json,
    /// `text/plain` or no `Content-Type`: JSON or form, by its first byte.
    Text,
}

impl BodyKind {
    /// `None` for a type that is none of the three. Parameters (`; charset=UTF-8`) and
    /// case are ignored.
    pub fn from_content_type(value: Option<&[u8]>) -> Option<BodyKind> {
        let Some(value) = value else {
            return Some(BodyKind::Text);
        };
        let essence = value
            .split(|&b| b == b';')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            Some(BodyKind::Form)
        } else if essence.eq_ignore_ascii_case(b"application/json") {
            Some(BodyKind::Json)
        } else if essence.eq_ignore_ascii_case(b"text/plain") || essence.is_empty() {
            Some(BodyKind::Text)
        } else {
            None
        }
    }
}

/// The events of a body, each as the query string its record's `$args` shows. At least one
/// event on success; an empty form or text body is one event with no fields.
pub fn events(kind: BodyKind, body: &[u8], max_batch: usize) -> Result<Vec<Vec<u8>>, BeaconError> {
    let json = match kind {
        BodyKind::Json => true,
        BodyKind::Form => false,
        BodyKind::Text => matches!(body.trim_ascii_start().first(), Some(b'{' | b'[')),
    };
    if !json {
        return Ok(vec![form(body)]);
    }
    let top: &RawValue =
        serde_json::from_slice(body).map_err(|e| BeaconError::Malformed(e.to_string()))?;
    let text = top.get();
    if text.starts_with('{') {
        return Ok(vec![object(text)?]);
    }
    if !text.starts_with('[') {
        return Err(BeaconError::NotAnObject(0));
    }
    let elements: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|e| BeaconError::Malformed(e.to_string()))?;
    if elements.is_empty() {
        return Err(BeaconError::EmptyBatch);
    }
    if elements.len() > max_batch {
        return Err(BeaconError::TooManyEvents { max: max_batch });
    }
    elements
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if e.get().starts_with('{') {
                object(e.get())
            } else {
                Err(BeaconError::NotAnObject(i))
            }
        })
        .collect()
}

/// A form body's pairs, decoded and encoded again: what a browser would have sent, even
/// from a client that sent raw spaces or bytes. Bytes that are not UTF-8 stay the bytes
/// they were (`%FF` stays `%FF`).
fn form(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        push_pair(&mut out, &decode(key), &decode(value));
    }
    out
}

/// Percent-decoding of a form value: `+` is a space, a `%` not followed by two hex digits
/// is kept as it is (as browsers do).
fn decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                s.get(i + 1).and_then(|&b| hex(b)),
                s.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn push_pair(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    if !out.is_empty() {
        out.push(b'&');
    }
    for s in form_urlencoded::byte_serialize(key) {
        out.extend_from_slice(s.as_bytes());
    }
    out.push(b'=');
    for s in form_urlencoded::byte_serialize(value) {
        out.extend_from_slice(s.as_bytes());
    }
}

/// One JSON object (already known to be valid JSON starting with `{`) as a query string.
fn object(text: &str) -> Result<Vec<u8>, BeaconError> {
    let Fields(fields) =
        serde_json::from_str(text).map_err(|e| BeaconError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(text.len());
    let mut value = String::new();
    for (key, raw) in &fields {
        value.clear();
        let raw = raw.get();
        match raw.as_bytes()[0] {
            b'"' => {
                let s: String =
                    serde_json::from_str(raw).map_err(|e| BeaconError::Malformed(e.to_string()))?;
                value.push_str(&s);
            }
            b'{' | b'[' => compact(raw, &mut value),
            b'n' => {} // null: no value
            _ => value.push_str(raw),
        }
        push_pair(&mut out, key.as_bytes(), value.as_bytes());
    }
    Ok(out)
}

/// An object's fields in the order they were sent (a map would sort or merge them).
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Valid JSON without the whitespace between tokens, as `JSON.stringify` writes it.
fn compact(json: &str, out: &mut String) {
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: BodyKind, body: &str) -> String {
        let mut e = events(kind, body.as_bytes(), 100).unwrap();
        assert_eq!(e.len(), 1);
        String::from_utf8(e.remove(0)).unwrap()
    }

    fn all(kind: BodyKind, body: &str, max: usize) -> Result<Vec<String>, BeaconError> {
        events(kind, body.as_bytes(), max).map(|v| {
            v.into_iter()
                .map(|e| String::from_utf8(e).unwrap())
                .collect()
        })
    }

    #[test]
    fn content_types() {
        let k = |v: &str| BodyKind::from_content_type(Some(v.as_bytes()));
        assert_eq!(k("text/plain;charset=UTF-8"), Some(BodyKind::Text));
        assert_eq!(k("Application/JSON; charset=utf-8"), Some(BodyKind::Json));
        assert_eq!(k("application/x-www-form-urlencoded"), Some(BodyKind::Form));
        assert_eq!(k("multipart/form-data; boundary=x"), None);
        assert_eq!(k("application/jsonx"), None);
        assert_eq!(BodyKind::from_content_type(None), Some(BodyKind::Text));
    }

    #[test]
    fn a_json_object_keeps_its_key_order() {
        assert_eq!(
            one(BodyKind::Json, r#"{"z":"1","event":"signup","a":"x"}"#),
            "z=1&event=signup&a=x"
        );
    }

    /// The expected strings are what Chromium's `new URLSearchParams(obj).toString()` gives.
    #[test]
    fn values_are_encoded_as_url_search_params_does() {
        assert_eq!(
            one(
                BodyKind::Json,
                r#"{"url":"https://ex.com/a b?c=d&e#f","t":"Ünïcödé ☃","s":"*-._~!'()"}"#
            ),
            "url=https%3A%2F%2Fex.com%2Fa+b%3Fc%3Dd%26e%23f\
             &t=%C3%9Cn%C3%AFc%C3%B6d%C3%A9+%E2%98%83&s=*-._%7E%21%27%28%29"
        );
        assert_eq!(one(BodyKind::Json, r#"{"a b&c=":"v"}"#), "a+b%26c%3D=v");
    }

    #[test]
    fn numbers_booleans_null_and_nested_values() {
        assert_eq!(
            one(
                BodyKind::Json,
                r#"{"n": 1.50, "b": true, "x": null, "o": { "k" : [1, "a b" , {"c":null}] }}"#
            ),
            // Nested values as compact JSON, then encoded; numbers as sent.
            "n=1.50&b=true&x=&o=%7B%22k%22%3A%5B1%2C%22a+b%22%2C%7B%22c%22%3Anull%7D%5D%7D"
        );
        // Escapes inside nested strings are kept as sent.
        assert_eq!(
            one(BodyKind::Json, r#"{"o":{"q":"a\" }"}}"#),
            "o=%7B%22q%22%3A%22a%5C%22+%7D%22%7D"
        );
        // A string's escapes are decoded.
        assert_eq!(
            one(BodyKind::Json, r#"{"s":"a\nb\u00e9"}"#),
            "s=a%0Ab%C3%A9"
        );
    }

    #[test]
    fn repeated_keys_stay() {
        assert_eq!(one(BodyKind::Json, r#"{"a":1,"a":2}"#), "a=1&a=2");
        assert_eq!(one(BodyKind::Form, "a=1&a=2"), "a=1&a=2");
    }

    #[test]
    fn a_batch_is_one_record_per_object() {
        assert_eq!(
            all(BodyKind::Json, r#"[{"e":"a"},{"e":"b"},{}]"#, 3).unwrap(),
            ["e=a", "e=b", ""]
        );
    }

    #[test]
    fn a_batch_is_all_or_none() {
        assert_eq!(
            all(BodyKind::Json, r#"[{"e":"a"},2]"#, 10),
            Err(BeaconError::NotAnObject(1))
        );
        assert_eq!(
            all(BodyKind::Json, r#"[{"e":"a"},[{"e":"b"}]]"#, 10),
            Err(BeaconError::NotAnObject(1))
        );
        assert!(matches!(
            all(BodyKind::Json, r#"[{"e":"a"},{"e":"b"}"#, 10),
            Err(BeaconError::Malformed(_))
        ));
        assert_eq!(
            all(BodyKind::Json, r#"[{},{},{}]"#, 2),
            Err(BeaconError::TooManyEvents { max: 2 })
        );
        assert_eq!(all(BodyKind::Json, "[]", 2), Err(BeaconError::EmptyBatch));
    }

    #[test]
    fn malformed_json() {
        for bad in [
            "",
            "{",
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{'a':1}"#,
            r#"{"a":"\ud800"}"#,
            "\"just a string\"",
            "42",
            "null",
        ] {
            let got = events(BodyKind::Json, bad.as_bytes(), 10);
            assert!(got.is_err(), "{bad:?} gave {got:?}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(events(BodyKind::Json, deep.as_bytes(), 10).is_err());
        assert!(events(BodyKind::Json, b"{\"a\":\"\xff\"}", 10).is_err());
    }

    #[test]
    fn text_is_json_or_form_by_its_first_byte() {
        assert_eq!(one(BodyKind::Text, " \n{\"a\":\"b c\"}"), "a=b+c");
        assert_eq!(
            all(BodyKind::Text, "[{\"a\":1},{\"a\":2}]", 5).unwrap(),
            ["a=1", "a=2"]
        );
        assert_eq!(one(BodyKind::Text, "a=b%20c&d"), "a=b+c&d=");
        assert!(events(BodyKind::Text, b"{nope", 5).is_err());
        // A form body is never read as JSON.
        assert_eq!(one(BodyKind::Form, "{\"a\":1}"), "%7B%22a%22%3A1%7D=");
    }

    #[test]
    fn form_bodies_are_normalised_not_altered() {
        assert_eq!(one(BodyKind::Form, "foo=bar&baz=1"), "foo=bar&baz=1");
        assert_eq!(
            one(BodyKind::Form, "a=%ff%FF&&b=c d\n&=x"),
            "a=%FF%FF&b=c+d%0A&=x"
        );
        assert_eq!(one(BodyKind::Form, "p=100%&q=%4"), "p=100%25&q=%254");
        assert_eq!(one(BodyKind::Form, ""), "");
        assert_eq!(one(BodyKind::Text, ""), "");
    }

    proptest::proptest! {
        /// Any body gives records or an error, never a panic, and a record is a query
        /// string of safe bytes only (one line, no delimiter trouble).
        #[test]
        fn any_body_is_records_or_an_error(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            for kind in [BodyKind::Form, BodyKind::Json, BodyKind::Text] {
                if let Ok(records) = events(kind, &body, 100) {
                    for r in records {
                        proptest::prop_assert!(r.iter().all(|b| b.is_ascii_alphanumeric() || b"*-._+%=&".contains(b)));
                    }
                }
            }
        }

        /// A form body's fields come back from a browser-style decode as they went in.
        #[test]
        fn form_round_trip(pairs in proptest::collection::vec(("[a-z ]{1,5}", "\\PC{0,8}"), 1..5)) {
            let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
            let record = one(BodyKind::Form, &body);
            proptest::prop_assert_eq!(&record, &body);
            let back: Vec<(String, String)> = form_urlencoded::parse(record.as_bytes()).into_owned().collect();
            proptest::prop_assert_eq!(back, pairs);
        }
    }
}
