//! A record's query fields as the aggregator reads them: the same names and values as
//! `form_urlencoded::parse` gives, without its decoding work for the common pair that has
//! nothing to decode (no `%`, no `+`, valid UTF-8) — that pair is borrowed as it is. The
//! aggregator reads every field of every shipped record, so this is its hot loop.

use std::borrow::Cow;

/// The `name=value` pairs of `query`, decoded exactly as `form_urlencoded::parse` does.
pub fn fields(query: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(field)
}

fn field(pair: &[u8]) -> (Cow<'_, str>, Cow<'_, str>) {
    let plain = !pair.iter().any(|&b| b == b'%' || b == b'+');
    match std::str::from_utf8(pair) {
        Ok(text) if plain => {
            let (name, value) = text.split_once('=').unwrap_or((text, ""));
            (Cow::Borrowed(name), Cow::Borrowed(value))
        }
        // Something to decode: the crate's own decoding, for the exact same result.
        _ => form_urlencoded::parse(pair).next().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn same_as_form_urlencoded() {
        for query in [
            &b""[..],
            b"a=1&b=2",
            b"&&a=1&&",
            b"a",
            b"=x&y=",
            b"a=b=c",
            b"utm_source=b%20c&x=1+2",
            b"n%3Dm=v%26w",
            b"bad=%FF&also=\xff\xfe&ok=caf\xc3\xa9",
            b"%=%%&+=+",
        ] {
            let ours: Vec<_> = fields(query).collect();
            let theirs: Vec<_> = form_urlencoded::parse(query).collect();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(query));
        }
    }

    #[test]
    fn a_plain_pair_is_borrowed() {
        let all: Vec<_> = fields(b"id=0-1&utm_source=bench").collect();
        assert!(all.iter().all(|(n, v)| matches!(
            (n, v),
            (std::borrow::Cow::Borrowed(_), std::borrow::Cow::Borrowed(_))
        )));
    }
}
