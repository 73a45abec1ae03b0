//! `pixelpipe log`: the local log printed as the access log it doubles as, one record a
//! line. Reads without writing, so it is safe while `serve` or `relay` is running (a
//! record still being written is simply not printed yet).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use super::entry::{self, Decoded};
use super::segment;

/// Prints every record in `dir`, oldest first, as `value` (or `key<TAB>value`), then with
/// `follow` keeps printing new ones as they are written.
pub fn print(dir: &Path, out: &mut impl Write, with_key: bool, follow: bool) -> io::Result<()> {
    let mut printed_upto: Option<(u64, usize)> = None; // (segment base, bytes consumed)
    loop {
        let bases = match segment::list(dir) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("no local log at {}", dir.display()),
                ))
            }
            Err(e) => return Err(e),
        };
        for base in bases {
            let skip = match printed_upto {
                Some((b, _)) if base < b => continue,
                Some((b, n)) if base == b => n,
                _ => 0,
            };
            let data = match File::open(segment::path(dir, base)) {
                Ok(f) => {
                    let mut data = Vec::new();
                    BufReader::new(f).read_to_end(&mut data)?;
                    data
                }
                // Deleted after shipping since we listed it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut at = skip.min(data.len());
            while let Decoded::Entry(e, n) = entry::decode(&data[at..]) {
                if with_key {
                    out.write_all(e.key)?;
                    out.write_all(b"\t")?;
                }
                out.write_all(e.value)?;
                out.write_all(b"\n")?;
                at += n;
            }
            printed_upto = Some((base, at));
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_values_one_a_line_and_stops_before_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        entry::encode(&mut data, b"pixel", b"1.000,a=1");
        entry::encode(&mut data, b"pixel", b"2.000,b=2");
        entry::encode(&mut data, b"pixel", b"3.000,c=3");
        data.truncate(data.len() - 1);
        std::fs::write(segment::path(dir.path(), 0), &data).unwrap();
        let mut out = Vec::new();
        print(dir.path(), &mut out, false, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1.000,a=1\n2.000,b=2\n");
        let mut out = Vec::new();
        print(dir.path(), &mut out, true, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pixel\t1.000,a=1\npixel\t2.000,b=2\n"
        );
    }
}
