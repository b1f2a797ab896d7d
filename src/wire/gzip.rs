//! gzip (RFC 1952) for HTTP bodies and gRPC messages (`a2a-bench http --compression`, and the
//! reference targets): bodies compressed, and compressed bodies read whole or as they arrive
//! (`Content-Encoding: gzip`, `grpc-encoding: gzip`). flate2's deflate states, kept by their
//! owner and reset between bodies: once their buffers have grown, a body costs no allocation
//! (flate2's `GzEncoder`/`GzDecoder` cannot be reset, and a fresh deflate state is tens of
//! KiB).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The header a2a-bench writes: no name, no time, any OS (255).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// The header's flags (RFC 1952 § 2.3.1).
const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

/// A body's content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coding {
    /// None (or `identity`).
    #[default]
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// Any other, or more than one: a2a-bench reads none of them.
    Other,
}

/// The coding a `Content-Encoding` (or `grpc-encoding`) value names.
pub fn coding_of(value: &[u8]) -> Coding {
    let v = value.trim_ascii();
    if v.is_empty() || v.eq_ignore_ascii_case(b"identity") {
        Coding::Identity
    } else if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
        Coding::Gzip
    } else {
        Coding::Other
    }
}

/// Why a compressed body does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Not gzip, a broken deflate stream, or a checksum or length that does not match.
    Corrupt,
    /// It ends before its trailer.
    Cut,
    /// Decompressed, it would pass this many bytes.
    TooLarge,
}

impl Bad {
    /// The error kind's name in reports.
    pub fn kind(self) -> &'static str {
        match self {
            Bad::Corrupt | Bad::Cut => "protocol_bad_gzip",
            Bad::TooLarge => "protocol_response_too_large",
        }
    }
}

/// A gzip compressor, reused: a body at once ([`Zip::gzip`]), or a stream in parts that each
/// read whole on arrival ([`Zip::part`], then [`Zip::end`]).
pub struct Zip {
    deflate: Compress,
    crc: crc32fast::Hasher,
    /// Bytes taken since the member began.
    len: u32,
}

impl Zip {
    /// A compressor at `level` (0–9; 6 is zlib's default, and gRPC's and HTTP clients').
    pub fn new(level: u32) -> Zip {
        let deflate = Compress::new(Compression::new(level), false);
        Zip { deflate, crc: crc32fast::Hasher::new(), len: 0 }
    }

    /// Appends `data`, gzipped (one member), to `out`.
    pub fn gzip(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.part(data, out);
        self.end(out);
    }

    /// Appends `data` to the member being written (its header first, if it is the member's
    /// first part), flushed so that a reader gets all of it from what is out so far.
    pub fn part(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.deflate.total_in() == 0 && self.deflate.total_out() == 0 {
            out.extend_from_slice(&HEADER);
        }
        self.deflate_into(data, out, FlushCompress::Sync);
        self.crc.update(data);
        self.len = self.len.wrapping_add(data.len() as u32);
    }

    /// Ends the member being written: its last block and its trailer. The next part begins a
    /// new one.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if self.deflate.total_in() == 0 && self.deflate.total_out() == 0 {
            out.extend_from_slice(&HEADER);
        }
        self.deflate_into(&[], out, FlushCompress::Finish);
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        self.len = 0;
        self.deflate.reset();
    }

    fn deflate_into(&mut self, data: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
        out.reserve(data.len() / 2 + 64);
        let mut taken = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let before = self.deflate.total_in();
            let status = self.deflate.compress_vec(&data[taken..], out, flush);
            taken += (self.deflate.total_in() - before) as usize;
            match status {
                Ok(Status::StreamEnd) => return,
                // Done when all is taken and the output had room to spare (flushed whole).
                Ok(_) if taken == data.len() && out.len() < out.capacity() => {
                    if flush != FlushCompress::Finish {
                        return;
                    }
                }
                Ok(_) => {}
                // Compression of a slice into a growing vector has no error to meet.
                Err(_) => return,
            }
        }
    }
}

/// A core's gzip state: its compressor and decompressor, and a buffer for what either made.
pub struct Codec {
    /// Requests' bodies (`--compression gzip`).
    pub zip: Zip,
    /// Answers' bodies.
    pub unzip: Unzip,
    /// A compressed request body.
    pub buf: Vec<u8>,
    /// An answer's body decompressed.
    pub plain: Vec<u8>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Codec {{ buf: {} }}", self.buf.len())
    }
}

impl Codec {
    /// Compressing at `level`; answers read up to `max` bytes.
    pub fn new(level: u32, max: usize) -> Codec {
        Codec { zip: Zip::new(level), unzip: Unzip::new(max), buf: Vec::new(), plain: Vec::new() }
    }
}

/// Where a gzip body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Before a member's header (its first byte at `at`).
    Header,
    /// In a member's deflate stream.
    Deflate,
    /// Past a member's deflate stream: its trailer next.
    Trailer,
}

/// A gzip decompressor, reused: fed the body from its start each time, longer each time (as
/// the connection keeps it), it reads only what came since the last call, so a stream's first
/// event is seen as it arrives. Members one after another are one body (RFC 1952 § 2.2).
pub struct Unzip {
    inflate: Decompress,
    step: Step,
    /// How far into the body it has read.
    at: usize,
    /// The current member's checksum of what it decompressed, and where its output began.
    crc: crc32fast::Hasher,
    member_from: usize,
    out: Vec<u8>,
    /// The most bytes `out` may hold.
    max: usize,
}

impl Unzip {
    /// A decompressor whose output stops at `max` bytes ([`Bad::TooLarge`] past it).
    pub fn new(max: usize) -> Unzip {
        Unzip {
            inflate: Decompress::new(false),
            step: Step::Header,
            at: 0,
            crc: crc32fast::Hasher::new(),
            member_from: 0,
            out: Vec::new(),
            max,
        }
    }

    /// What it decompressed so far.
    pub fn data(&self) -> &[u8] {
        &self.out
    }

    /// Ready for another body (its buffer kept).
    pub fn reset(&mut self) {
        self.inflate.reset(false);
        (self.step, self.at, self.member_from) = (Step::Header, 0, 0);
        self.crc = crc32fast::Hasher::new();
        self.out.clear();
    }

    /// Reads what of `body` (from its start) came since the last call.
    pub fn feed(&mut self, body: &[u8]) -> Result<(), Bad> {
        loop {
            match self.step {
                Step::Header => {
                    if self.at == body.len() {
                        return Ok(());
                    }
                    let Some(n) = header(&body[self.at..])? else { return Ok(()) };
                    self.at += n;
                    self.inflate.reset(false);
                    self.crc = crc32fast::Hasher::new();
                    self.member_from = self.out.len();
                    self.step = Step::Deflate;
                }
                Step::Deflate => {
                    if self.out.len() == self.out.capacity() {
                        let more = self.out.capacity().clamp(4096, 1 << 20);
                        self.out.reserve(more.min(self.max + 1 - self.out.len()));
                    }
                    let before_in = self.inflate.total_in();
                    let status = self.inflate.decompress_vec(
                        &body[self.at..],
                        &mut self.out,
                        FlushDecompress::None,
                    );
                    self.at += (self.inflate.total_in() - before_in) as usize;
                    if self.out.len() > self.max {
                        return Err(Bad::TooLarge);
                    }
                    match status.map_err(|_| Bad::Corrupt)? {
                        Status::StreamEnd => {
                            self.crc.update(&self.out[self.member_from..]);
                            self.step = Step::Trailer;
                        }
                        // Room full: more room next turn; else what came so far is read.
                        _ if self.out.len() == self.out.capacity() => {}
                        _ => return Ok(()),
                    }
                }
                Step::Trailer => {
                    let Some(t) = body.get(self.at..self.at + 8) else { return Ok(()) };
                    let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                    let len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                    let made = &self.out[self.member_from..];
                    let hasher = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
                    if hasher.finalize() != crc || made.len() as u32 != len {
                        return Err(Bad::Corrupt);
                    }
                    self.at += 8;
                    self.step = Step::Header;
                }
            }
        }
    }

    /// The whole body read: its last member ended, its trailer checked.
    pub fn finish(&mut self, body: &[u8]) -> Result<&[u8], Bad> {
        self.feed(body)?;
        match (self.step, self.at == body.len()) {
            (Step::Header, true) if self.at > 0 => Ok(&self.out),
            _ => Err(Bad::Cut),
        }
    }

    /// `body` (one whole gzip body) decompressed.
    pub fn whole(&mut self, body: &[u8]) -> Result<&[u8], Bad> {
        self.reset();
        self.finish(body)
    }
}

/// The length of the gzip member header at the start of `b`: `None` while incomplete.
fn header(b: &[u8]) -> Result<Option<usize>, Bad> {
    if b.len() < 10 {
        return match b.iter().zip(&HEADER[..3]).all(|(x, y)| x == y) {
            true => Ok(None),
            false => Err(Bad::Corrupt),
        };
    }
    if b[..3] != HEADER[..3] {
        return Err(Bad::Corrupt);
    }
    let flags = b[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(x) = b.get(at..at + 2) else { return Ok(None) };
        at += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let Some(end) = b.get(at..).and_then(|r| memchr::memchr(0, r)) else {
                return Ok(None);
            };
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((b.len() >= at).then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Zip::new(6).gzip(data, &mut out);
        out
    }

    #[test]
    fn what_it_compresses_any_gzip_reader_reads_and_back() {
        // Proves the framing against flate2's own reader and writer, both ways.
        let text: Vec<u8> =
            (0..100_000u32).flat_map(|i| format!("word{} ", i % 977).into_bytes()).collect();
        for data in [&b""[..], b"x", &text] {
            let zipped = gzip(data);
            let mut read = Vec::new();
            let mut d = flate2::read::GzDecoder::new(&zipped[..]);
            std::io::Read::read_to_end(&mut d, &mut read).unwrap();
            assert_eq!(read, data);
            let mut theirs = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
            theirs.write_all(data).unwrap();
            let theirs = theirs.finish().unwrap();
            let mut u = Unzip::new(1 << 20);
            assert_eq!(u.whole(&theirs).unwrap(), data);
            assert_eq!(u.whole(&zipped).unwrap(), data);
        }
        assert!(gzip(&text).len() < text.len() / 3);
    }

    #[test]
    fn a_body_fed_byte_by_byte_reads_as_it_comes() {
        // A header with a name and a comment, two members: fed one byte more each time, the
        // output grows as the input does and ends whole.
        let mut body = Vec::new();
        let mut e = flate2::GzBuilder::new()
            .filename("a.txt")
            .comment("hello")
            .write(Vec::new(), Compression::fast());
        e.write_all(b"data: one\n\n").unwrap();
        body.extend(e.finish().unwrap());
        let first = body.len();
        body.extend(gzip(b"data: two\n\n"));
        let mut u = Unzip::new(1 << 20);
        let mut seen_first_at = None;
        for n in 1..body.len() {
            u.feed(&body[..n]).unwrap();
            if seen_first_at.is_none() && u.data().ends_with(b"one\n\n") {
                seen_first_at = Some(n);
            }
            // A body ends only where a member does.
            assert_eq!(u.finish(&body[..n]).is_ok(), n == first);
        }
        assert!(seen_first_at.unwrap() < body.len() / 2 + 20);
        assert_eq!(u.finish(&body).unwrap(), b"data: one\n\ndata: two\n\n");
    }

    #[test]
    fn a_stream_compressed_in_parts_reads_each_part_on_arrival() {
        // Proves the parts' flush: after each part, what is out so far decompresses to every
        // part yet, and the stream ends as one good member.
        let mut zip = Zip::new(6);
        let (mut out, mut u) = (Vec::new(), Unzip::new(1 << 20));
        let mut want = Vec::new();
        for part in [&b"data: {\"a\": 1}\n\n"[..], b"data: {\"b\": 2}\n\n", &[b'z'; 70_000]] {
            zip.part(part, &mut out);
            want.extend_from_slice(part);
            u.feed(&out).unwrap();
            assert_eq!(u.data(), &want[..]);
        }
        zip.end(&mut out);
        assert_eq!(u.finish(&out).unwrap(), &want[..]);
        // And the compressor begins a fresh member after.
        let mut again = Vec::new();
        zip.gzip(b"next", &mut again);
        assert_eq!(u.whole(&again).unwrap(), b"next");
    }

    #[test]
    fn broken_cut_and_too_large_bodies_are_named() {
        let zipped = gzip(&[b'a'; 10_000]);
        let mut u = Unzip::new(1 << 20);
        assert_eq!(u.whole(b"{\"json\": 1}"), Err(Bad::Corrupt));
        assert_eq!(u.whole(&zipped[..zipped.len() - 3]), Err(Bad::Cut));
        assert_eq!(u.whole(&[]), Err(Bad::Cut));
        let mut bad_crc = zipped.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert_eq!(u.whole(&bad_crc), Err(Bad::Corrupt));
        let mut small = Unzip::new(9_999);
        assert_eq!(small.whole(&zipped), Err(Bad::TooLarge));
        // Reused after errors, it reads a good body.
        assert_eq!(u.whole(&zipped).unwrap().len(), 10_000);
        assert_eq!(Bad::Cut.kind(), "protocol_bad_gzip");
    }
}
