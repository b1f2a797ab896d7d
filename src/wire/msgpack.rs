//! The few msgpack reads the hot path needs, specialised for byte slices.
//!
//! `rmp::decode` goes through `io::Read` and `num_traits` per field and is not inlined; the
//! envelope decoder reads nine integers per message, so it uses these instead (≈ 2× faster here,
//! see docs/BENCHMARKS.md). They accept every msgpack encoding of a value, not only the shortest:
//! any unsigned marker, and signed markers holding a non-negative value.

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
}
