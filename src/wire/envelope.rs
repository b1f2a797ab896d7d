//! Data messages: the envelope every direct, request, reply, broadcast and publish carries.
//!
//! Encoded and decoded by the msgpack slice readers and writers of `super::msgpack` rather than
//! through serde: decoding borrows the payload from the frame and ends exactly where the message
//! ends, so the router routes on the header fields and forwards the original bytes untouched.
//! Measured here: decode + forward costs a third of serde decode + re-encode (docs/BENCHMARKS.md).
//!
//! Wire form: `[kind, [sender, to, message_id, correlation_id, timestamp_ns, msg_type, priority,
//! ttl_ms, payload]]`, integers in msgpack's shortest form, the payload as `bin`.

use super::{AgentId, PRIORITY_MAX};

/// Number of fields in an envelope's inner array.
pub const ENVELOPE_FIELDS: u32 = 9;

/// Bytes [`Envelope::decode_usual`] looks at. The longest head is 57 bytes: 3 of arrays and
/// kind, 49 of the eight integers at their widest (5 + 5 + 9 + 9 + 9 + 5 + 2 + 5), 5 of the
/// `bin` marker and length. An integer is read eight bytes at a time (its bytes and what
/// follows): nothing past byte 56 is read.
pub(crate) const USUAL_WINDOW: usize = 64;

/// The longest encoding of everything but the payload's bytes (see [`USUAL_WINDOW`]).
const HEAD_MAX: usize = 57;

/// The kinds of data message; the code is the first element of the message array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DataKind {
    /// One recipient, `to` = its agent id; no reply expected.
    Direct = 1,
    /// One recipient, `to` = its agent id; the recipient answers with a [`DataKind::Reply`].
    Request = 2,
    /// The answer to a request: `to` = the requester, `correlation_id` = the request's message id.
    Reply = 3,
    /// Every online agent of a type (`to` = agent type, 0 = all types), the sender excluded.
    Broadcast = 4,
    /// Every subscriber of topic `to`, the sender excluded.
    Publish = 5,
}

impl DataKind {
    /// Every data kind, in code order.
    pub const ALL: [DataKind; 5] = [
        DataKind::Direct,
        DataKind::Request,
        DataKind::Reply,
        DataKind::Broadcast,
        DataKind::Publish,
    ];

    /// The kind with this wire code, if it is a data kind.
    pub fn from_code(code: u8) -> Option<DataKind> {
        match code {
            1 => Some(DataKind::Direct),
            2 => Some(DataKind::Request),
            3 => Some(DataKind::Reply),
            4 => Some(DataKind::Broadcast),
            5 => Some(DataKind::Publish),
            _ => None,
        }
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether `to` names one agent (direct, request, reply).
    pub fn is_addressed(self) -> bool {
        matches!(self, DataKind::Direct | DataKind::Request | DataKind::Reply)
    }

    /// Lower-case name, as used in docs and reports.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Direct => "direct",
            DataKind::Request => "request",
            DataKind::Reply => "reply",
            DataKind::Broadcast => "broadcast",
            DataKind::Publish => "publish",
        }
    }
}

/// A data message, borrowing its payload from the frame it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// What kind of delivery this is.
    pub kind: DataKind,
    /// The agent that sent it; must be registered on the sending connection.
    pub sender: AgentId,
    /// Recipient agent id (direct, request, reply), agent type (broadcast; 0 = all) or topic id
    /// (publish).
    pub to: u32,
    /// Sender-chosen id, echoed in any error about this message.
    pub message_id: u64,
    /// For a reply, the request's `message_id`; otherwise free for the application.
    pub correlation_id: u64,
    /// Send time, nanoseconds of the sender's `CLOCK_MONOTONIC`.
    pub timestamp_ns: u64,
    /// Application message type, a compact integer.
    pub msg_type: u32,
    /// 0 (lowest) to [`PRIORITY_MAX`]; above 5 travels in the router's high-priority lane.
    pub priority: u8,
    /// Milliseconds after `timestamp_ns` past which the router drops it (0 = no limit).
    pub ttl_ms: u32,
    /// Opaque application bytes.
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Appends this message's encoding to `out`; allocates only if `out` must grow.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        use super::msgpack::{put_bin_len, put_uint};
        // Everything but the payload fits in `HEAD_MAX` bytes. They are reserved in `out` as a
        // constant block of zeros (a few vector stores), written in place, and the unused end
        // cut. Built on the stack and copied in, the copy's wide loads had to wait for the byte
        // stores just made (no store forwarding across them): the agents' core spent 28 % of
        // this function there (docs/BENCHMARKS.md).
        let start = out.len();
        out.reserve(HEAD_MAX + self.payload.len());
        out.extend_from_slice(&[0u8; HEAD_MAX]);
        let head = &mut out[start..start + HEAD_MAX];
        head[0] = 0x92; // [kind, fields]
        head[1] = self.kind.code(); // a positive fixint
        head[2] = 0x90 | ENVELOPE_FIELDS as u8; // fixarray of 9
        let mut at = 3;
        at = put_uint(head, at, u64::from(self.sender.0));
        at = put_uint(head, at, u64::from(self.to));
        at = put_uint(head, at, self.message_id);
        at = put_uint(head, at, self.correlation_id);
        at = put_uint(head, at, self.timestamp_ns);
        at = put_uint(head, at, u64::from(self.msg_type));
        at = put_uint(head, at, u64::from(self.priority));
        at = put_uint(head, at, u64::from(self.ttl_ms));
        at = put_bin_len(head, at, self.payload.len());
        out.truncate(start + at);
        out.extend_from_slice(self.payload);
    }

    /// Upper bound on [`Envelope::encode`]'s output for a payload of `payload_len` bytes.
    pub const fn encoded_len_max(payload_len: usize) -> usize {
        // outer array + kind + inner array + 8 integers of at most 9 bytes + bin32 header.
        1 + 1 + 1 + 8 * 9 + 5 + payload_len
    }

    /// Decodes the inner field array of a data message whose kind was already read.
    /// On success `rd` is left just past the message.
    #[inline]
    pub(crate) fn decode_fields(kind: DataKind, rd: &mut &'a [u8]) -> Result<Self, &'static str> {
        use super::msgpack::{read_array_len, read_bin, read_uint};
        fn small<T: TryFrom<u64>>(v: Option<u64>, what: &'static str) -> Result<T, &'static str> {
            v.and_then(|v| T::try_from(v).ok()).ok_or(what)
        }
        match read_array_len(rd) {
            Some(ENVELOPE_FIELDS) => {}
            Some(_) => return Err("envelope must have 9 fields"),
            None => return Err("envelope fields must be an array"),
        }
        let sender = small::<u32>(read_uint(rd), "sender must be a u32")?;
        let to = small::<u32>(read_uint(rd), "to must be a u32")?;
        let message_id = read_uint(rd).ok_or("message_id must be a u64")?;
        let correlation_id = read_uint(rd).ok_or("correlation_id must be a u64")?;
        let timestamp_ns = read_uint(rd).ok_or("timestamp_ns must be a u64")?;
        let msg_type = small::<u32>(read_uint(rd), "msg_type must be a u32")?;
        let priority = small::<u8>(read_uint(rd), "priority must be a u8")?;
        if priority > PRIORITY_MAX {
            return Err("priority must be 0 to 10");
        }
        let ttl_ms = small::<u32>(read_uint(rd), "ttl_ms must be a u32")?;
        let payload = read_bin(rd).ok_or("payload must be bin, within the body")?;
        Ok(Envelope {
            kind,
            sender: AgentId(sender),
            to,
            message_id,
            correlation_id,
            timestamp_ns,
            msg_type,
            priority,
            ttl_ms,
            payload,
        })
    }

    /// The fast path of [`super::frame::decode_message`]: a whole data message, `[kind, [9
    /// fields]]`, from the front of `rd`, when at least [`USUAL_WINDOW`] bytes are left and the
    /// integers use unsigned markers (as every encoder here writes them). `None` means "take the
    /// general path", which decides (the same way for every input this accepts) and names
    /// any error: nothing is consumed then.
    #[inline(always)]
    pub(crate) fn decode_usual(rd: &mut &'a [u8]) -> Option<Self> {
        use super::msgpack::uint_at;
        let w: &[u8; USUAL_WINDOW] = rd.get(..USUAL_WINDOW)?.try_into().ok()?;
        if w[0] != 0x92 || w[2] != 0x90 | ENVELOPE_FIELDS as u8 {
            return None;
        }
        let kind = DataKind::from_code(w[1])?;
        let mut at = 3;
        let sender = u32::try_from(uint_at(w, &mut at)?).ok()?;
        let to = u32::try_from(uint_at(w, &mut at)?).ok()?;
        let message_id = uint_at(w, &mut at)?;
        let correlation_id = uint_at(w, &mut at)?;
        let timestamp_ns = uint_at(w, &mut at)?;
        let msg_type = u32::try_from(uint_at(w, &mut at)?).ok()?;
        let priority = u8::try_from(uint_at(w, &mut at)?).ok().filter(|&p| p <= PRIORITY_MAX)?;
        let ttl_ms = u32::try_from(uint_at(w, &mut at)?).ok()?;
        // The payload's `bin` head, up to 5 bytes: integers in their widest encodings can
        // bring it to the window's end, and then the general path reads it.
        let h: &[u8; 5] = w.get(at..at + 5)?.try_into().ok()?;
        let (len, used) = match h[0] {
            0xc4 => (usize::from(h[1]), 2),
            0xc5 => (usize::from(u16::from_be_bytes([h[1], h[2]])), 3),
            0xc6 => (u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize, 5),
            _ => return None,
        };
        let start = at + used;
        let payload = rd.get(start..start.checked_add(len)?)?;
        *rd = &rd[start + len..];
        Some(Envelope {
            kind,
            sender: AgentId(sender),
            to,
            message_id,
            correlation_id,
            timestamp_ns,
            msg_type,
            priority,
            ttl_ms,
            payload,
        })
    }

    /// Whether the message is past its ttl at `now_ns` (same clock as `timestamp_ns`).
    #[inline]
    pub fn expired_at(&self, now_ns: u64) -> bool {
        self.ttl_ms != 0
            && now_ns.saturating_sub(self.timestamp_ns) > u64::from(self.ttl_ms) * 1_000_000
    }

    /// The absolute deadline in `CLOCK_MONOTONIC` nanoseconds, or 0 when there is no ttl.
    #[inline]
    pub fn deadline_ns(&self) -> u64 {
        if self.ttl_ms == 0 {
            0
        } else {
            self.timestamp_ns.saturating_add(u64::from(self.ttl_ms) * 1_000_000).max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> Envelope<'_> {
        Envelope {
            kind: DataKind::Request,
            sender: AgentId(7),
            to: 300,
            message_id: u64::MAX,
            correlation_id: 0,
            timestamp_ns: 1_234_567_890,
            msg_type: 65_536,
            priority: 10,
            ttl_ms: 250,
            payload,
        }
    }

    #[test]
    fn encode_then_decode_fields_round_trips_and_consumes_exactly() {
        // Proves the fast codec reads back what it writes and stops at the message's end.
        let env = sample(b"hello");
        let mut buf = Vec::new();
        env.encode(&mut buf);
        assert!(buf.len() <= Envelope::encoded_len_max(5));
        buf.extend_from_slice(b"TRAIL");
        let mut rd = &buf[2..]; // skip [array(2), kind]
        let back = Envelope::decode_fields(DataKind::Request, &mut rd).unwrap();
        assert_eq!(back, env);
        assert_eq!(rd, b"TRAIL");
    }

    #[test]
    fn priority_above_ten_is_rejected() {
        // Proves the decoder enforces the 0–10 priority range.
        let mut env = sample(b"");
        env.priority = 11;
        let mut buf = Vec::new();
        env.encode(&mut buf);
        let mut rd = &buf[2..];
        assert_eq!(
            Envelope::decode_fields(DataKind::Request, &mut rd),
            Err("priority must be 0 to 10")
        );
    }

    /// `v` as msgpack with the marker `style` picks: 0 the shortest, 1–4 `uint 8/16/32/64`,
    /// 5 `int 64` (all valid for a non-negative value that fits).
    fn put_styled(out: &mut Vec<u8>, v: u64, style: u8) {
        let fits = |bytes: u32| bytes == 8 || v < 1u64 << (8 * bytes);
        match style {
            1 if fits(1) => out.extend_from_slice(&[0xcc, v as u8]),
            2 if fits(2) => {
                out.extend_from_slice(&[&[0xcd], &(v as u16).to_be_bytes()[..]].concat())
            }
            3 if fits(4) => {
                out.extend_from_slice(&[&[0xce], &(v as u32).to_be_bytes()[..]].concat())
            }
            4 => out.extend_from_slice(&[&[0xcf], &v.to_be_bytes()[..]].concat()),
            5 if v <= i64::MAX as u64 => {
                out.extend_from_slice(&[&[0xd3], &v.to_be_bytes()[..]].concat())
            }
            _ => {
                let mut b = [0u8; 9];
                let n = super::super::msgpack::put_uint(&mut b, 0, v);
                out.extend_from_slice(&b[..n]);
            }
        }
    }

    /// The general path alone: `[kind, [fields]]`.
    fn general<'a>(rd: &mut &'a [u8]) -> Result<Envelope<'a>, &'static str> {
        use super::super::msgpack::{read_array_len, read_uint};
        (read_array_len(rd) == Some(2)).then_some(()).ok_or("array")?;
        let code = read_uint(rd).and_then(|c| u8::try_from(c).ok()).ok_or("kind")?;
        Envelope::decode_fields(DataKind::from_code(code).ok_or("not data")?, rd)
    }

    #[test]
    fn integers_at_their_widest_that_end_the_window_leave_the_message_to_the_general_path() {
        // Proves the fast path reads nothing past its 64-byte window: the first five fields as
        // 9-byte integers and the last three in every encoding bring the payload's `bin` head
        // to each place near the window's end, or past it (five 9-byte, a 5-byte msg_type, a
        // 2-byte priority and a 9-byte ttl end the integers exactly at the window's end, which
        // made it index past the window and panic: a shard's thread, on one hostile message;
        // found by the property test below). For every placement it declines or agrees with
        // the general path.
        for styles in 0..6u8 * 6 * 6 {
            let (msg_type, priority, ttl) = (styles % 6, styles / 6 % 6, styles / 36);
            for payload in [0usize, 1, 3, 70, 300] {
                let mut buf = vec![0x92, 2, 0x99];
                for v in [7u64, 9, 1, 2, 3] {
                    put_styled(&mut buf, v, 4);
                }
                put_styled(&mut buf, 4, msg_type);
                put_styled(&mut buf, 5, priority);
                put_styled(&mut buf, 250, ttl);
                buf.extend_from_slice(&[0xc5, (payload >> 8) as u8, payload as u8]);
                buf.extend((0..payload).map(|i| i as u8));
                let (mut a, mut b) = (&buf[..], &buf[..]);
                let general = general(&mut a);
                assert!(general.is_ok(), "a valid message");
                match Envelope::decode_usual(&mut b) {
                    Some(fast) => assert_eq!((Ok(fast), b.len()), (general, a.len())),
                    None => assert_eq!(b.len(), buf.len(), "declining consumes nothing"),
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn the_usual_path_agrees_with_the_general_one(
            fields in proptest::array::uniform8(proptest::prelude::any::<u64>()),
            small in proptest::array::uniform8(0u64..300),
            shrink in proptest::array::uniform8(proptest::prelude::any::<bool>()),
            styles in proptest::array::uniform8(0u8..6),
            payload in 0usize..300,
            tail in 0usize..80,
            kind in 0u8..8,
            flip in proptest::option::of((0usize..400, 1u8..=255)),
        ) {
            // Proves the fast path never decides differently from the general one: on messages
            // with any integer markers, sizes and trailing bytes, and with a byte flipped, it
            // either declines or yields exactly what the general path yields and stops at the
            // same byte; and on what the encoder writes, with a full window, it does not decline.
            let mut buf = vec![0x92, kind, 0x99];
            for i in 0..8 {
                let v = if shrink[i] { small[i] } else { fields[i] };
                put_styled(&mut buf, v, styles[i]);
            }
            buf.extend_from_slice(&[0xc5, (payload >> 8) as u8, payload as u8]);
            buf.extend((0..payload + tail).map(|i| i as u8));
            if let Some((at, x)) = flip {
                let at = at % buf.len();
                buf[at] ^= x;
            }
            let (mut a, mut b) = (&buf[..], &buf[..]);
            let general = general(&mut a);
            if let Some(fast) = Envelope::decode_usual(&mut b) {
                proptest::prop_assert_eq!(Ok(fast), general);
                proptest::prop_assert_eq!(a.len(), b.len());
            } else {
                proptest::prop_assert_eq!(b.len(), buf.len(), "declining consumes nothing");
            }
            // What the encoder writes takes the fast path whenever the window fits.
            if let Ok(env) = general {
                let mut canonical = Vec::new();
                env.encode(&mut canonical);
                canonical.resize(canonical.len().max(USUAL_WINDOW), 0);
                let mut rd = &canonical[..];
                proptest::prop_assert_eq!(Envelope::decode_usual(&mut rd), Some(env));
            }
        }
    }

    #[test]
    fn ttl_expiry_uses_the_timestamp() {
        // Proves ttl is measured from the send timestamp and 0 means no limit.
        let env = sample(b"");
        assert!(!env.expired_at(1_234_567_890 + 250_000_000));
        assert!(env.expired_at(1_234_567_890 + 250_000_001));
        assert!(!Envelope { ttl_ms: 0, ..env }.expired_at(u64::MAX));
    }
}
