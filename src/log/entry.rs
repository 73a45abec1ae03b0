//! How one record is laid out in a segment:
//!
//! ```text
//! len: u32 LE | crc: u32 LE | key_len: u16 LE | key | value
//!               └──────────── crc32 over these (len bytes) ───┘
//! ```
//!
//! The checksum is what lets recovery tell a record that reached the disk whole from the
//! torn tail a crash or power loss leaves behind.
//!
//! **Named fields** (`[ship.fields]`, for the stream sink) travel with their record. Why
//! in the log entry: the shipper ships from the log, long after the hit is gone, and the
//! fields are rendered from the hit (its path, its address, its headers), which the record
//! need not hold. Such an entry has the top bit of `len` set (a length is at most
//! [`MAX_BODY`], 16 MiB, so no entry ever had it), its checksum covers that bit too, and
//! its value is *framed*:
//!
//! ```text
//! record_len: u32 LE | record | { name_len: u8 | name | value_len: u32 LE | value }*
//! ```
//!
//! [`Entry::value`] is the record alone, so whatever reads records (the list sink, the
//! analytics, `log print`) never sees the fields; [`Entry::fields`] lists them. An entry
//! without the bit is read as before, so a log written without fields (or by an older
//! version) is read unchanged.

/// Bytes before the body.
pub const HEADER: usize = 8;
/// Longest body accepted. A larger `len` can only be corruption.
pub const MAX_BODY: usize = 16 << 20;
/// Longest key (the Redis list name).
pub const MAX_KEY: usize = u16::MAX as usize;

/// The bit of `len` that marks a framed value (see the module's documentation).
const WITH_FIELDS: u32 = 1 << 31;

/// Encoded size of a record.
pub fn encoded_len(key: &[u8], value: &[u8]) -> usize {
    HEADER + 2 + key.len() + value.len()
}

/// Appends the encoded record to `out`. The caller keeps `key` ≤ [`MAX_KEY`] and the body
/// ≤ [`MAX_BODY`] (the appender rejects bigger records before they get here).
pub fn encode(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    encode_as(out, key, value, false);
}

/// As [`encode`], for a value framed with its named fields ([`Framer`]). A value that is
/// not well framed is written as a plain record: whole, never lost, without fields.
pub fn encode_framed(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    encode_as(out, key, value, unframe(value).is_some());
}

fn encode_as(out: &mut Vec<u8>, key: &[u8], value: &[u8], framed: bool) {
    let body_len = 2 + key.len() + value.len();
    let start = out.len();
    let flag = if framed { WITH_FIELDS } else { 0 };
    out.extend_from_slice(&(body_len as u32 | flag).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = checksum(&out[start + HEADER..], framed);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The body's CRC; a framed entry's covers the flag too, so that a flipped flag is caught.
fn checksum(body: &[u8], framed: bool) -> u32 {
    if !framed {
        return crc32fast::hash(body);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(b"F");
    h.update(body);
    h.finalize()
}

/// One record, borrowed from the buffer it was decoded from.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: &'a [u8],
    /// The record (without its fields).
    pub value: &'a [u8],
    pub fields: Fields<'a>,
}

/// One named field: its name and value.
pub type Field<'a> = (&'a [u8], &'a [u8]);

/// The named fields of a record, encoded as in a framed value: empty for most records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, value)` in the order they were written.
    pub fn iter(&self) -> impl Iterator<Item = Field<'a>> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (field, tail) = split_field(rest)?;
            rest = tail;
            Some(field)
        })
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }
}

/// The first field of `buf` and what follows it; `None` at the end or on a bad frame.
fn split_field(buf: &[u8]) -> Option<(Field<'_>, &[u8])> {
    let (&name_len, rest) = buf.split_first()?;
    let (name, rest) = rest.split_at_checked(name_len as usize)?;
    let (value, rest) = split_len_prefixed(rest)?;
    Some(((name, value), rest))
}

fn split_len_prefixed(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    rest.split_at_checked(u32::from_le_bytes(*len) as usize)
}

/// A framed value's record and fields; `None` when it is not well framed.
fn unframe(value: &[u8]) -> Option<(&[u8], Fields<'_>)> {
    let (record, fields) = split_len_prefixed(value)?;
    let mut rest = fields;
    while !rest.is_empty() {
        rest = split_field(rest)?.1;
    }
    Some((record, Fields(fields)))
}

/// Writes a framed value: the record, then each field, each closed before the next opens.
pub struct Framer {
    /// Where the length of the part being written goes.
    open: usize,
}

impl Framer {
    /// Starts a framed value (its record) at the end of `out`.
    pub fn start(out: &mut Vec<u8>) -> Framer {
        let open = out.len();
        out.extend_from_slice(&[0; 4]);
        Framer { open }
    }

    /// Closes the part written so far and opens the field `name` (at most 255 bytes,
    /// checked with the configuration).
    pub fn field(&mut self, out: &mut Vec<u8>, name: &[u8]) {
        self.close(out);
        let name = &name[..name.len().min(u8::MAX as usize)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        self.open = out.len();
        out.extend_from_slice(&[0; 4]);
    }

    /// Closes the last part.
    pub fn finish(mut self, out: &mut [u8]) {
        self.close(out);
    }

    fn close(&mut self, out: &mut [u8]) {
        let len = (out.len() - self.open - 4) as u32;
        out[self.open..self.open + 4].copy_from_slice(&len.to_le_bytes());
    }
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
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let framed = len & WITH_FIELDS != 0;
    let len = (len & !WITH_FIELDS) as usize;
    if !(2..=MAX_BODY).contains(&len) {
        return Decoded::Corrupt;
    }
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Decoded::Incomplete;
    };
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if checksum(body, framed) != crc {
        return Decoded::Corrupt;
    }
    let key_len = u16::from_le_bytes([body[0], body[1]]) as usize;
    if 2 + key_len > len {
        return Decoded::Corrupt;
    }
    let value = &body[2 + key_len..];
    let (value, fields) = if framed {
        match unframe(value) {
            Some(v) => v,
            // Checked when written: a bad frame under a good checksum is not ours.
            None => return Decoded::Corrupt,
        }
    } else {
        (value, Fields::default())
    };
    let entry = Entry {
        key: &body[2..2 + key_len],
        value,
        fields,
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

    fn framed(record: &[u8], fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut f = Framer::start(&mut out);
        out.extend_from_slice(record);
        for (name, value) in fields {
            f.field(&mut out, name);
            out.extend_from_slice(value);
        }
        f.finish(&mut out);
        out
    }

    #[test]
    fn fields_travel_with_their_record() {
        let value = framed(b"1.000,a=1", &[(b"path", b"/p.gif"), (b"ip", b"")]);
        let mut buf = Vec::new();
        encode_framed(&mut buf, b"pixel", &value);
        assert_eq!(buf.len(), encoded_len(b"pixel", &value));
        let Decoded::Entry(e, n) = decode(&buf) else {
            panic!("{:?}", decode(&buf))
        };
        assert_eq!(
            (e.key, e.value, n),
            (&b"pixel"[..], &b"1.000,a=1"[..], buf.len())
        );
        let fields: Vec<_> = e.fields.iter().collect();
        assert_eq!(
            fields,
            [(&b"path"[..], &b"/p.gif"[..]), (&b"ip"[..], &b""[..])]
        );
        // The flag is under the checksum: cleared, the entry is caught, not misread.
        let mut flipped = buf.clone();
        flipped[3] &= 0x7f;
        assert_eq!(decode(&flipped), Decoded::Corrupt);
    }

    #[test]
    fn a_badly_framed_value_is_kept_whole_without_fields() {
        let mut buf = Vec::new();
        encode_framed(&mut buf, b"pixel", b"1.000,a=1");
        let Decoded::Entry(e, _) = decode(&buf) else {
            panic!()
        };
        assert_eq!((e.value, e.fields), (&b"1.000,a=1"[..], Fields::default()));
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
