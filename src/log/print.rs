//! `pixelpipe log`: the local log printed as the access log it doubles as, one record a
//! line. Reads without writing, so it is safe while `serve` or `relay` is running (a
//! record still being written is simply not printed yet).

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use super::follow::Follower;

/// Prints every record in `dir`, oldest first, as `value` (or `key<TAB>value`), then with
/// `follow` keeps printing new ones as they are written (reading only what is new).
pub fn print(dir: &Path, out: &mut impl Write, with_key: bool, follow: bool) -> io::Result<()> {
    let mut follower = Follower::new(dir);
    loop {
        follower.poll(out, with_key)?;
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
    use crate::log::{entry, segment};

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
