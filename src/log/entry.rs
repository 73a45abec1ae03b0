//! How one record is laid out in a segment:
//!
//! ```text
//! len: u32 LE | crc: u32 LE | key_len: u16 LE | key | value
//!               └──────────── crc32 over these (len bytes) ───┘
//! ```
//!
//! The checksum is what lets recovery tell a record that reached the disk whole from the
//! torn tail a crash or power loss leaves behind.

/// Bytes before the body.
pub const HEADER: usize = 8;
/// Longest body accepted. A larger `len` can only be corruption.
pub const MAX_BODY: usize = 16 << 20;
/// Longest key (the Redis list name).
pub const MAX_KEY: usize = u16::MAX as usize;

/// Encoded size of a record.
pub fn encoded_len(key: &[u8], value: &[u8]) -> usize {
    HEADER + 2 + key.len() + value.len()
}

/// Appends the encoded record to `out`. The caller keeps `key` ≤ [`MAX_KEY`] and the body
/// ≤ [`MAX_BODY`] (the appender rejects bigger records before they get here).
pub fn encode(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body_len = 2 + key.len() + value.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One record, borrowed from the buffer it was decoded from.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, checked record and its encoded size.
    Entry(Entry<'a>, usize),
    /// `buf` ends inside a record: more bytes are needed (or, at the end of a file, a torn tail).
    Incomplete,
    /// Not a record: a bad length or checksum.
    Corrupt,
}

pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(2..=MAX_BODY).contains(&len) {
        return Decoded::Corrupt;
    }
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Decoded::Incomplete;
    };
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt;
    }
    let key_len = u16::from_le_bytes([body[0], body[1]]) as usize;
    if 2 + key_len > len {
        return Decoded::Corrupt;
    }
    let entry = Entry {
        key: &body[2..2 + key_len],
        value: &body[2 + key_len..],
    };
    Decoded::Entry(entry, HEADER + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&mut buf, b"pixel", b"1379183721.115,foo=bar&baz=1");
        assert_eq!(
            buf.len(),
            encoded_len(b"pixel", b"1379183721.115,foo=bar&baz=1")
        );
        match decode(&buf) {
            Decoded::Entry(e, n) => {
                assert_eq!(e.key, b"pixel");
                assert_eq!(e.value, b"1379183721.115,foo=bar&baz=1");
                assert_eq!(n, buf.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_prefix_is_incomplete_and_every_flip_is_caught() {
        let mut buf = Vec::new();
        encode(&mut buf, b"k", b"value");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                !matches!(decode(&bad), Decoded::Entry(ref e, _) if e.value == b"value" && e.key == b"k"),
                "flip at {i} went unnoticed"
            );
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn encode_decode(key in proptest::collection::vec(any::<u8>(), 0..40),
                         value in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = Vec::new();
            encode(&mut buf, &key, &value);
            match decode(&buf) {
                Decoded::Entry(e, n) => {
                    prop_assert_eq!(e.key, &key[..]);
                    prop_assert_eq!(e.value, &value[..]);
                    prop_assert_eq!(n, buf.len());
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
