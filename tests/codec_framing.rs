//! Framing: incremental feeding, length boundaries and a differential
//! property test against a deliberately naive reference framer.

use bytes::BytesMut;
use proptest::prelude::*;
use sluice::protocol::pg::build;
use sluice::protocol::pg::{frames, needed_bytes, next_frame, Frame, FrameError, HEADER_BYTES};

const MAX: usize = 1 << 20;

/// A mixed stream of messages of varied sizes, including empty bodies.
fn sample_stream() -> BytesMut {
    let mut out = BytesMut::new();
    build::query(&mut out, "SELECT 1");
    build::parse(&mut out, "s", "SELECT $1", &[23]);
    build::bind(&mut out, "", "s", &[], &[Some(b"7")], &[]);
    build::execute(&mut out, "", 0);
    build::sync(&mut out);
    build::copy_data(&mut out, &[0xab; 300]);
    build::copy_done(&mut out);
    build::terminate(&mut out);
    out
}

fn frame_all(input: &[u8]) -> (Vec<Frame<'_>>, usize) {
    let mut it = frames(input, MAX);
    let v: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
    (v, it.consumed())
}

#[test]
fn split_at_every_byte_matches_whole_buffer() {
    let stream = sample_stream();
    let (whole, whole_consumed) = frame_all(&stream);
    assert_eq!(whole.len(), 8);
    assert_eq!(whole_consumed, stream.len());

    // Feed one more byte at a time into a session-like buffer, draining
    // complete frames as they appear, and collect what comes out.
    let mut buffer = BytesMut::new();
    let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut total_consumed = 0;
    for &byte in stream.iter() {
        buffer.extend_from_slice(&[byte]);
        let (batch, consumed) = frame_all(&buffer);
        got.extend(batch.iter().map(|f| (f.tag, f.body.to_vec())));
        let _ = buffer.split_to(consumed);
        total_consumed += consumed;
    }
    assert!(buffer.is_empty());
    assert_eq!(total_consumed, whole_consumed);
    let want: Vec<(u8, Vec<u8>)> = whole.iter().map(|f| (f.tag, f.body.to_vec())).collect();
    assert_eq!(got, want);
}

#[test]
fn every_prefix_yields_the_frames_it_fully_contains() {
    let stream = sample_stream();
    let (whole, _) = frame_all(&stream);
    let ends: Vec<usize> = whole
        .iter()
        .scan(0, |acc, f| {
            *acc += f.wire_len();
            Some(*acc)
        })
        .collect();
    for cut in 0..=stream.len() {
        let (prefix_frames, consumed) = frame_all(&stream[..cut]);
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(prefix_frames.len(), complete, "cut {cut}");
        assert_eq!(prefix_frames[..], whole[..complete], "cut {cut}");
        assert_eq!(
            consumed,
            ends.get(complete.wrapping_sub(1)).copied().unwrap_or(0),
            "cut {cut}"
        );
    }
}

fn header(tag: u8, length: i32) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&length.to_be_bytes());
    v
}

#[test]
fn length_below_minimum_is_rejected() {
    for length in [3, 0, -1, i32::MIN] {
        let input = header(b'Q', length);
        assert_eq!(
            next_frame(&input, MAX),
            Err(FrameError::LengthBelowMinimum { tag: b'Q', length }),
            "length {length}"
        );
        assert_eq!(needed_bytes(&input), Some(HEADER_BYTES));
    }
}

#[test]
fn length_four_is_an_empty_body() {
    let input = header(b'S', 4);
    assert_eq!(
        next_frame(&input, MAX),
        Ok(Some(Frame {
            tag: b'S',
            body: &[]
        }))
    );
    assert_eq!(needed_bytes(&input), Some(5));
}

#[test]
fn limit_is_inclusive_and_covers_the_whole_message() {
    let max = 64;
    // Wire size exactly `max`: accepted once complete.
    let mut exact = header(b'd', (max - 1) as i32);
    assert_eq!(next_frame(&exact, max), Ok(None));
    exact.resize(max, 0x5a);
    let frame = next_frame(&exact, max).unwrap().unwrap();
    assert_eq!(frame.wire_len(), max);
    // One byte more: rejected from the header alone.
    let over = header(b'd', max as i32);
    assert_eq!(
        next_frame(&over, max),
        Err(FrameError::MessageTooLarge {
            tag: b'd',
            length: max + 1,
            max
        })
    );
    // The largest declarable length is rejected without buffering.
    assert_eq!(
        next_frame(&header(b'd', i32::MAX), MAX),
        Err(FrameError::MessageTooLarge {
            tag: b'd',
            length: i32::MAX as usize + 1,
            max: MAX
        })
    );
    assert_eq!(
        needed_bytes(&header(b'd', i32::MAX)),
        Some(i32::MAX as usize + 1)
    );
}

#[test]
fn incomplete_header_needs_more() {
    let input = header(b'Q', 9);
    for cut in 0..HEADER_BYTES {
        assert_eq!(next_frame(&input[..cut], MAX), Ok(None));
        assert_eq!(needed_bytes(&input[..cut]), None);
    }
}

#[test]
fn iterator_reports_error_once_then_stops() {
    let mut stream = sample_stream().to_vec();
    let good = stream.len();
    stream.extend_from_slice(&header(b'Q', 2));
    stream.extend_from_slice(&header(b'S', 4));
    let mut it = frames(&stream, MAX);
    let results: Vec<_> = it.by_ref().collect();
    assert_eq!(results.len(), 9);
    assert_eq!(
        results[8],
        Err(FrameError::LengthBelowMinimum {
            tag: b'Q',
            length: 2
        })
    );
    assert_eq!(it.consumed(), good);
}

/// Frames as `(tag, body)`, bytes consumed, and the error that stopped
/// framing, if any.
type Reference = (Vec<(u8, Vec<u8>)>, usize, Option<FrameError>);

/// The reference: read the length, check it, slice, repeat. Written as
/// plainly as possible, with indexing, since it only runs on inputs it has
/// checked itself.
fn reference(input: &[u8], max: usize) -> Reference {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        if input.len() - pos < 5 {
            return (out, pos, None);
        }
        let tag = input[pos];
        let length = i32::from_be_bytes(input[pos + 1..pos + 5].try_into().unwrap());
        if length < 4 {
            return (
                out,
                pos,
                Some(FrameError::LengthBelowMinimum { tag, length }),
            );
        }
        let total = length as usize + 1;
        if total > max {
            return (
                out,
                pos,
                Some(FrameError::MessageTooLarge {
                    tag,
                    length: total,
                    max,
                }),
            );
        }
        if input.len() - pos < total {
            return (out, pos, None);
        }
        out.push((tag, input[pos + 5..pos + total].to_vec()));
        pos += total;
    }
}

/// Streams made mostly of well-formed messages with occasional corruption,
/// so the property covers both long valid runs and every error path.
fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let message =
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(tag, body)| {
            let mut v = vec![tag];
            v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
            v.extend_from_slice(&body);
            v
        });
    let chunk = prop_oneof![
        8 => message,
        1 => prop::collection::vec(any::<u8>(), 0..12),
        1 => (any::<u8>(), any::<i32>()).prop_map(|(t, l)| header(t, l)),
    ];
    prop::collection::vec(chunk, 0..12).prop_map(|chunks| chunks.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_reference_framer(stream in stream_strategy(), max in 5usize..80) {
        let (want, want_consumed, want_err) = reference(&stream, max);
        let mut it = frames(&stream, max);
        let mut got = Vec::new();
        let mut got_err = None;
        for r in it.by_ref() {
            match r {
                Ok(f) => got.push((f.tag, f.body.to_vec())),
                Err(e) => got_err = Some(e),
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(it.consumed(), want_consumed);
        prop_assert_eq!(got_err, want_err);
    }

    #[test]
    fn chunked_feeding_matches_whole(stream in stream_strategy(), cuts in prop::collection::vec(1usize..16, 1..64)) {
        let (want, want_consumed, _) = reference(&stream, MAX);
        let mut buffer: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        let mut consumed = 0;
        let mut pos = 0;
        let mut cut = cuts.iter().cycle();
        while pos < stream.len() {
            let n = (*cut.next().unwrap()).min(stream.len() - pos);
            buffer.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            let mut it = frames(&buffer, MAX);
            let mut failed = false;
            for r in it.by_ref() {
                match r {
                    Ok(f) => got.push((f.tag, f.body.to_vec())),
                    Err(_) => failed = true,
                }
            }
            let c = it.consumed();
            buffer.drain(..c);
            consumed += c;
            if failed {
                break;
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(consumed, want_consumed);
    }
}
