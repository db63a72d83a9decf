//! Framing of tagged protocol messages.
//!
//! After the startup phase every message in both directions is
//! `Byte1 tag, Int32 length, body`, where the length counts itself and the
//! body but not the tag. Framing only looks at those five header bytes; the
//! body is handed out as a borrowed slice of the caller's buffer.
//!
//! The untagged packets of the startup phase live in [`super::startup`] and
//! are re-exported here so that everything that cuts the stream into
//! messages is reachable from one module.

pub use super::startup::{
    looks_like_tls_client_hello, next_startup_packet, StartupError, StartupPacket,
    StartupParameters, STARTUP_PACKET_BYTES_MAX,
};

/// Bytes of the tag and length word that precede every body.
pub const HEADER_BYTES: usize = 5;

/// The smallest legal value of the length word: it counts only itself.
const LENGTH_MIN: i32 = 4;

/// One complete tagged message, borrowing its body from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Bytes this message occupies on the wire, header included.
    pub fn wire_len(&self) -> usize {
        HEADER_BYTES + self.body.len()
    }

    /// The message's wire bytes (tag, length word, body), copied. For the
    /// cold paths that must own a message (recording, refusals); the hot
    /// path forwards slices of the read buffer instead.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        out.push(self.tag);
        // wire_len fits in i32: framing bounded it by message_bytes_max.
        out.extend_from_slice(&((self.body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(self.body);
        out
    }
}

/// Header violations. Both are fatal for the connection: after a bad length
/// word there is no way to find the start of the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length word is below 4 (it must at least count itself); this
    /// includes negative values.
    #[error("message {tag:#04x} declares length {length}, below the minimum of 4")]
    LengthBelowMinimum { tag: u8, length: i32 },
    /// The whole message (tag, length word and body) would exceed the
    /// configured maximum. `length` is that wire size.
    #[error("message {tag:#04x} of {length} bytes exceeds the maximum of {max}")]
    MessageTooLarge { tag: u8, length: usize, max: usize },
}

/// Reads the header at the start of `input`: the tag and the declared wire
/// size of the whole message. Returns `None` until all five header bytes
/// are present.
fn header(input: &[u8]) -> Option<(u8, i32)> {
    let (head, _) = input.split_first_chunk::<HEADER_BYTES>()?;
    let [tag, l0, l1, l2, l3] = *head;
    Some((tag, i32::from_be_bytes([l0, l1, l2, l3])))
}

/// Validates a header and returns the wire size of the message.
///
/// The check runs as soon as the header is present, before the body is
/// buffered, so a peer cannot make the session reserve memory for a huge
/// declared length.
fn checked_wire_len(tag: u8, length: i32, message_bytes_max: usize) -> Result<usize, FrameError> {
    if length < LENGTH_MIN {
        return Err(FrameError::LengthBelowMinimum { tag, length });
    }
    // `length` is at least 4 here, so the conversion cannot fail; the
    // fallback only keeps the code free of unwraps.
    let wire_len = usize::try_from(length)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    if wire_len > message_bytes_max {
        return Err(FrameError::MessageTooLarge {
            tag,
            length: wire_len,
            max: message_bytes_max,
        });
    }
    Ok(wire_len)
}

/// The next complete message at the start of `input`.
///
/// Returns `Ok(None)` when more bytes are needed. `message_bytes_max`
/// bounds the whole message on the wire, header included, which is exactly
/// the buffer space the session would need to hold it.
#[inline]
pub fn next_frame(input: &[u8], message_bytes_max: usize) -> Result<Option<Frame<'_>>, FrameError> {
    let Some((tag, length)) = header(input) else {
        return Ok(None);
    };
    let wire_len = checked_wire_len(tag, length, message_bytes_max)?;
    Ok(input
        .get(HEADER_BYTES..wire_len)
        .map(|body| Frame { tag, body }))
}

/// Total bytes of the first message once its header is present, complete
/// or not, so the session can reserve buffer space for the rest.
///
/// For a length word below the minimum this returns [`HEADER_BYTES`]:
/// the header is all that is needed for [`next_frame`] to report the error.
/// The size limit is not applied here; [`next_frame`] enforces it.
pub fn needed_bytes(input: &[u8]) -> Option<usize> {
    let (_, length) = header(input)?;
    let length = usize::try_from(length.max(LENGTH_MIN)).unwrap_or(usize::MAX);
    Some(length.saturating_add(1))
}

/// Iterator over the consecutive complete messages at the start of a buffer.
///
/// Stops at the first incomplete message or after yielding the first error;
/// [`Frames::consumed`] then tells the session how many bytes it may drop.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    input: &'a [u8],
    consumed: usize,
    message_bytes_max: usize,
    failed: bool,
}

/// Frames every complete message at the start of `input`.
pub fn frames(input: &[u8], message_bytes_max: usize) -> Frames<'_> {
    Frames {
        input,
        consumed: 0,
        message_bytes_max,
        failed: false,
    }
}

impl Frames<'_> {
    /// Bytes of the complete frames yielded so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.input.get(self.consumed..)?;
        match next_frame(rest, self.message_bytes_max) {
            Ok(Some(frame)) => {
                self.consumed += frame.wire_len();
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => {
                // A bad header leaves no way to resynchronise, so the
                // iterator reports it once and then ends.
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_reports_needed_bytes() {
        let input = [b'Q', 0, 0, 0, 10];
        assert_eq!(needed_bytes(&input), Some(11));
        assert_eq!(next_frame(&input, 100), Ok(None));
        assert_eq!(needed_bytes(&input[..4]), None);
    }

    #[test]
    fn oversized_header_rejected_before_body() {
        let input = [b'd', 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(
            next_frame(&input, 1 << 20),
            Err(FrameError::MessageTooLarge {
                tag: b'd',
                length: 1usize << 31,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn iterator_stops_after_error() {
        let input = [b'S', 0, 0, 0, 4, b'S', 0, 0, 0, 3, b'S', 0, 0, 0, 4];
        let mut it = frames(&input, 100);
        assert_eq!(
            it.next(),
            Some(Ok(Frame {
                tag: b'S',
                body: &[]
            }))
        );
        assert_eq!(
            it.next(),
            Some(Err(FrameError::LengthBelowMinimum {
                tag: b'S',
                length: 3
            }))
        );
        assert_eq!(it.next(), None);
        assert_eq!(it.consumed(), 5);
    }
}
