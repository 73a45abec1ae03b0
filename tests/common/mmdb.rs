//! Writes a small MaxMind DB file (format spec:
//! https://maxmind.github.io/MaxMind-DB/), so the GeoIP tests need no download: an IPv6
//! tree with 32-bit records (IPv4 networks live under `::/96`), a data section of
//! GeoIP2-City-shaped maps, and the metadata.

use std::net::IpAddr;

/// A value of the data section.
pub enum Value {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(String, Value)>),
    Array(Vec<Value>),
}

/// A GeoIP2-City record: `{country: {iso_code, names: {en}}, city: {names: {en}}}`.
pub fn city(iso: &str, country: &str, city: &str) -> Value {
    let names = |n: &str| Value::Map(vec![("en".into(), Value::Str(n.into()))]);
    let mut fields = vec![(
        "country".into(),
        Value::Map(vec![
            ("iso_code".into(), Value::Str(iso.into())),
            ("names".into(), names(country)),
        ]),
    )];
    if !city.is_empty() {
        fields.push((
            "city".into(),
            Value::Map(vec![("names".into(), names(city))]),
        ));
    }
    Value::Map(fields)
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// Networks and their data, written as a `.mmdb` file by [`MmdbWriter::to_bytes`].
#[derive(Default)]
pub struct MmdbWriter {
    nodes: Vec<[Rec; 2]>,
    data: Vec<Vec<u8>>,
}

impl MmdbWriter {
    pub fn new() -> Self {
        MmdbWriter {
            nodes: vec![[Rec::Empty, Rec::Empty]],
            data: Vec::new(),
        }
    }

    /// Maps `addr/prefix` (an IPv4 prefix counts within IPv4) to `value`. Insert wider
    /// networks before narrower ones inside them.
    pub fn insert(&mut self, addr: IpAddr, prefix: u8, value: &Value) {
        let (bits, len) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 96 + u32::from(prefix)),
            IpAddr::V6(a) => (u128::from(a), u32::from(prefix)),
        };
        let mut encoded = Vec::new();
        encode(value, &mut encoded);
        self.data.push(encoded);
        let data = Rec::Data(self.data.len() - 1);
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                self.nodes[node][bit] = data;
                break;
            }
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n,
                // Splitting a wider network: both halves keep its data.
                other => {
                    self.nodes.push([other, other]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n);
                    n
                }
            };
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let node_count = self.nodes.len() as u32;
        let mut offsets = Vec::new();
        let mut data = Vec::new();
        for d in &self.data {
            offsets.push(data.len() as u32);
            data.extend_from_slice(d);
        }
        let mut out = Vec::new();
        for node in &self.nodes {
            for rec in node {
                let v = match *rec {
                    Rec::Empty => node_count,
                    Rec::Node(n) => n as u32,
                    Rec::Data(i) => node_count + 16 + offsets[i],
                };
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let meta = Value::Map(vec![
            ("binary_format_major_version".into(), Value::U16(2)),
            ("binary_format_minor_version".into(), Value::U16(0)),
            ("build_epoch".into(), Value::U64(1_700_000_000)),
            ("database_type".into(), Value::Str("GeoIP2-City".into())),
            (
                "description".into(),
                Value::Map(vec![("en".into(), Value::Str("pixelpipe test".into()))]),
            ),
            ("ip_version".into(), Value::U16(6)),
            (
                "languages".into(),
                Value::Array(vec![Value::Str("en".into())]),
            ),
            ("node_count".into(), Value::U32(node_count)),
            ("record_size".into(), Value::U16(32)),
        ]);
        encode(&meta, &mut out);
        out
    }
}

/// The control byte(s) of a value of `kind` and `size`.
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn uint(kind: u8, v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(5, u64::from(*n), out),
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::U64(n) => uint(9, *n, out),
        Value::Map(fields) => {
            control(7, fields.len(), out);
            for (k, v) in fields {
                encode(&Value::Str(k.clone()), out);
                encode(v, out);
            }
        }
        Value::Array(items) => {
            control(11, items.len(), out);
            for v in items {
                encode(v, out);
            }
        }
    }
}
