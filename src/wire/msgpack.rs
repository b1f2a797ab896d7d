//! The few msgpack reads and writes the hot path needs, specialised for byte slices.
//!
//! `rmp` goes through `io::Read` / `io::Write` and `num_traits` per field and is not inlined;
//! an envelope has nine integers, so its codec uses these instead (see docs/BENCHMARKS.md for
//! what each side gained). Readers accept every msgpack encoding of a value, not only the
//! shortest: any unsigned marker, and signed markers holding a non-negative value. Writers emit
//! the shortest encoding, as `rmp::encode::write_uint` does.

/// Writes the shortest encoding of `v` at `out[at..]`; returns the new end. `out` must have 9
/// bytes of room from `at`.
#[inline(always)]
pub(crate) fn put_uint(out: &mut [u8], at: usize, v: u64) -> usize {
    if v < 128 {
        out[at] = v as u8;
        at + 1
    } else if v < 256 {
        out[at] = 0xcc;
        out[at + 1] = v as u8;
        at + 2
    } else if v < 65_536 {
        out[at] = 0xcd;
        out[at + 1..at + 3].copy_from_slice(&(v as u16).to_be_bytes());
        at + 3
    } else if v <= u64::from(u32::MAX) {
        out[at] = 0xce;
        out[at + 1..at + 5].copy_from_slice(&(v as u32).to_be_bytes());
        at + 5
    } else {
        out[at] = 0xcf;
        out[at + 1..at + 9].copy_from_slice(&v.to_be_bytes());
        at + 9
    }
}

/// Writes the shortest `bin` header for `len` bytes at `out[at..]` (5 bytes of room).
#[inline(always)]
pub(crate) fn put_bin_len(out: &mut [u8], at: usize, len: usize) -> usize {
    if len < 256 {
        out[at] = 0xc4;
        out[at + 1] = len as u8;
        at + 2
    } else if len < 65_536 {
        out[at] = 0xc5;
        out[at + 1..at + 3].copy_from_slice(&(len as u16).to_be_bytes());
        at + 3
    } else {
        out[at] = 0xc6;
        out[at + 1..at + 5].copy_from_slice(&(len as u32).to_be_bytes());
        at + 5
    }
}

/// Reads the array header at the front of `rd`, returning its length.
#[inline(always)]
pub(crate) fn read_array_len(rd: &mut &[u8]) -> Option<u32> {
    let (&marker, rest) = rd.split_first()?;
    let (len, used) = match marker {
        0x90..=0x9f => (u32::from(marker & 0x0f), 0),
        0xdc => (u32::from(u16::from_be_bytes(take(rest)?)), 2),
        0xdd => (u32::from_be_bytes(take(rest)?), 4),
        _ => return None,
    };
    *rd = &rest[used..];
    Some(len)
}

/// Reads a non-negative integer in any msgpack integer encoding.
#[inline(always)]
pub(crate) fn read_uint(rd: &mut &[u8]) -> Option<u64> {
    let (&marker, rest) = rd.split_first()?;
    let (value, used) = match marker {
        0x00..=0x7f => (u64::from(marker), 0),
        0xcc => (u64::from(*rest.first()?), 1),
        0xcd => (u64::from(u16::from_be_bytes(take(rest)?)), 2),
        0xce => (u64::from(u32::from_be_bytes(take(rest)?)), 4),
        0xcf => (u64::from_be_bytes(take(rest)?), 8),
        0xd0 => (non_negative(i64::from(*rest.first()? as i8))?, 1),
        0xd1 => (non_negative(i64::from(i16::from_be_bytes(take(rest)?)))?, 2),
        0xd2 => (non_negative(i64::from(i32::from_be_bytes(take(rest)?)))?, 4),
        0xd3 => (non_negative(i64::from_be_bytes(take(rest)?))?, 8),
        _ => return None,
    };
    *rd = &rest[used..];
    Some(value)
}

/// Reads an unsigned integer (positive fixint, `uint 8/16/32/64`) at `*at` of a window that has
/// at least nine bytes from there on, moving `*at` past it; `None` for any other marker (the
/// general [`read_uint`] also takes non-negative signed ones). One read of eight bytes and a
/// shift, no jump table.
#[inline(always)]
pub(crate) fn uint_at<const N: usize>(w: &[u8; N], at: &mut usize) -> Option<u64> {
    let marker = *w.get(*at)?;
    if marker < 0x80 {
        *at += 1;
        return Some(u64::from(marker));
    }
    let class = marker.wrapping_sub(0xcc);
    if class > 3 {
        return None;
    }
    let bytes = 1usize << class; // 0xcc..=0xcf: 1, 2, 4, 8 bytes
    let raw = u64::from_be_bytes(w.get(*at + 1..*at + 9)?.try_into().ok()?);
    *at += 1 + bytes;
    Some(raw >> (64 - 8 * bytes))
}

/// Reads a `bin` value, borrowing its bytes.
#[inline(always)]
pub(crate) fn read_bin<'a>(rd: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&marker, rest) = rd.split_first()?;
    let (len, used) = match marker {
        0xc4 => (usize::from(*rest.first()?), 1),
        0xc5 => (usize::from(u16::from_be_bytes(take(rest)?)), 2),
        0xc6 => (u32::from_be_bytes(take(rest)?) as usize, 4),
        _ => return None,
    };
    let rest = &rest[used..];
    if len > rest.len() {
        return None;
    }
    let (bytes, after) = rest.split_at(len);
    *rd = after;
    Some(bytes)
}

/// Takes one whole value (of any type, nested as deep as it likes) off the front of `rd`,
/// returning its bytes; `None` if `rd` does not start with one. Walks without recursion: a
/// count of the values still to pass, which a container adds its items to, and which can never
/// exceed the bytes left (every value takes at least one).
pub(crate) fn take_value<'a>(rd: &mut &'a [u8]) -> Option<&'a [u8]> {
    let whole = *rd;
    let mut at = 0usize;
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *whole.get(at)?;
        at += 1;
        let rest = &whole[at..];
        let len = |n: usize| -> Option<u64> {
            let b = rest.get(..n)?;
            Some(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
        };
        // (bytes of header past the marker, bytes of data, items that follow)
        let (head, data, items): (usize, u64, u64) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0, 0),
            0x80..=0x8f => (0, 0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, 0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (0, u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1, len(1)?, 0),
            0xc5 | 0xda => (2, len(2)?, 0),
            0xc6 | 0xdb => (4, len(4)?, 0),
            0xc7 => (2, len(1)?, 0),
            0xc8 => (3, len(2)?, 0),
            0xc9 => (5, len(4)?, 0),
            0xca => (0, 4, 0),
            0xcb => (0, 8, 0),
            0xcc | 0xd0 => (0, 1, 0),
            0xcd | 0xd1 => (0, 2, 0),
            0xce | 0xd2 => (0, 4, 0),
            0xcf | 0xd3 => (0, 8, 0),
            0xd4..=0xd8 => (1, 1 << (marker - 0xd4), 0),
            0xdc => (2, 0, len(2)?),
            0xdd => (4, 0, len(4)?),
            0xde => (2, 0, 2 * len(2)?),
            0xdf => (4, 0, 2 * len(4)?),
            0xc1 => return None,
        };
        let skip = (head as u64).checked_add(data)?;
        if skip > rest.len() as u64 {
            return None;
        }
        at += skip as usize;
        pending = pending.checked_add(items)?;
        if pending > (whole.len() - at) as u64 {
            return None;
        }
    }
    let (value, after) = whole.split_at(at);
    *rd = after;
    Some(value)
}

#[inline(always)]
fn take<const N: usize>(rest: &[u8]) -> Option<[u8; N]> {
    rest.get(..N)?.try_into().ok()
}

#[inline(always)]
fn non_negative(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_integer_encoding_reads_back() {
        // Proves the reader accepts all unsigned and non-negative signed encodings rmp writes.
        use rmp::encode::*;
        let values = [0u64, 1, 127, 128, 255, 256, 65_535, 65_536, u32::MAX as u64, u64::MAX];
        for v in values {
            let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); 5];
            write_uint(&mut bufs[0], v).unwrap();
            write_u64(&mut bufs[1], v).unwrap();
            if let Ok(small) = u32::try_from(v) {
                write_u32(&mut bufs[2], small).unwrap();
            }
            if let Ok(signed) = i64::try_from(v) {
                write_sint(&mut bufs[3], signed).unwrap();
                write_i64(&mut bufs[4], signed).unwrap();
            }
            for buf in bufs.iter().filter(|b| !b.is_empty()) {
                let mut rd = &buf[..];
                assert_eq!(read_uint(&mut rd), Some(v), "{buf:02x?}");
                assert!(rd.is_empty());
            }
        }
        let mut neg = Vec::new();
        write_sint(&mut neg, -1).unwrap();
        assert_eq!(read_uint(&mut &neg[..]), None, "negative values are refused");
        assert_eq!(read_uint(&mut &[0xcf, 0, 0][..]), None, "truncated values are refused");
    }

    #[test]
    fn writers_match_rmp_byte_for_byte() {
        // Proves the slice writers emit exactly what rmp's shortest-form writers emit.
        for v in [0u64, 1, 127, 128, 255, 256, 65_535, 65_536, u32::MAX as u64, 1 << 32, u64::MAX] {
            let mut ours = [0u8; 9];
            let end = put_uint(&mut ours, 0, v);
            let mut theirs = Vec::new();
            rmp::encode::write_uint(&mut theirs, v).unwrap();
            assert_eq!(&ours[..end], &theirs[..], "{v}");
        }
        for len in [0usize, 255, 256, 65_535, 65_536] {
            let mut ours = [0u8; 5];
            let end = put_bin_len(&mut ours, 0, len);
            let mut theirs = Vec::new();
            rmp::encode::write_bin_len(&mut theirs, len as u32).unwrap();
            assert_eq!(&ours[..end], &theirs[..], "{len}");
        }
    }

    #[test]
    fn arrays_and_bins_of_every_width_read_back() {
        // Proves fix/16/32-bit array headers and 8/16/32-bit bin headers, and bounds checks.
        use rmp::encode::*;
        for len in [0u32, 15, 16, 65_535, 65_536] {
            let mut buf = Vec::new();
            write_array_len(&mut buf, len).unwrap();
            assert_eq!(read_array_len(&mut &buf[..]), Some(len));
        }
        for len in [0usize, 255, 256, 70_000] {
            let payload = vec![9u8; len];
            let mut buf = Vec::new();
            write_bin(&mut buf, &payload).unwrap();
            let mut rd = &buf[..];
            assert_eq!(read_bin(&mut rd), Some(&payload[..]));
            assert!(rd.is_empty());
            assert_eq!(read_bin(&mut &buf[..buf.len() - 1]), None, "short bin is refused");
        }
    }

    #[test]
    fn a_value_of_every_kind_is_taken_whole() {
        // Proves `take_value` passes exactly one value of each msgpack type (and each length
        // class of strings, binaries, arrays, maps and extensions), however nested, leaves what
        // follows, and refuses a value cut short or claiming more items than bytes remain.
        use rmp::encode::*;
        let mut values: Vec<Vec<u8>> = Vec::new();
        let mut put = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            values.push(v);
        };
        put(&|v| write_nil(v).unwrap());
        put(&|v| write_bool(v, true).unwrap());
        put(&|v| {
            write_sint(v, -5).unwrap();
        });
        put(&|v| {
            write_sint(v, -30_000).unwrap();
        });
        put(&|v| write_i64(v, i64::MIN).unwrap());
        put(&|v| {
            write_uint(v, 300).unwrap();
        });
        put(&|v| write_u64(v, u64::MAX).unwrap());
        put(&|v| write_f32(v, 1.5).unwrap());
        put(&|v| write_f64(v, -2.5).unwrap());
        for n in [0usize, 5, 31, 32, 255, 256, 70_000] {
            put(&|v| write_str(v, &"é".repeat(n / 2)).unwrap());
            put(&|v| write_bin(v, &vec![7u8; n]).unwrap());
            put(&|v| {
                write_array_len(v, n as u32).unwrap();
                (0..n).for_each(|i| {
                    write_uint(v, i as u64).unwrap();
                });
            });
            put(&|v| {
                write_map_len(v, n as u32).unwrap();
                (0..n).for_each(|i| {
                    write_str(v, "k").unwrap();
                    write_bool(v, i % 2 == 0).unwrap();
                });
            });
        }
        for n in [1u32, 2, 4, 8, 16, 3, 300, 70_000] {
            put(&|v| {
                write_ext_meta(v, n, 1).unwrap();
                v.extend(std::iter::repeat_n(9u8, n as usize));
            });
        }
        // Nested 10,000 deep: [[[…[1]…]]].
        put(&|v| {
            (0..10_000).for_each(|_| {
                write_array_len(v, 1).unwrap();
            });
            write_uint(v, 1).unwrap();
        });
        for value in &values {
            let mut buf = value.clone();
            buf.extend_from_slice(&[0xc3, 0x01]);
            let mut rd = &buf[..];
            assert_eq!(
                take_value(&mut rd),
                Some(&value[..]),
                "{:x?}",
                &value[..value.len().min(16)]
            );
            assert_eq!(rd, [0xc3, 0x01]);
            let mut short = &value[..value.len() - 1];
            assert_eq!(
                take_value(&mut short),
                None,
                "cut short: {:x?}",
                &value[..value.len().min(16)]
            );
        }
        // An array claiming 4 billion items, and the marker msgpack never uses.
        for bad in [&[0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3][..], &[0xc1]] {
            let mut rd = bad;
            assert_eq!(take_value(&mut rd), None);
        }
    }
}
