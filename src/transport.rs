//! A connection's byte transport: plain TCP or TLS (rustls driven directly,
//! sans-IO, over monoio's owned-buffer I/O), split into a reader and a
//! cloneable writer so that the two directions of a session run as two tasks.
//!
//! Why rustls is driven here rather than through a wrapper stream: the
//! PostgreSQL negotiation reads plaintext bytes before TLS starts (SSLRequest)
//! or discovers TLS only by peeking at the first byte (direct TLS), and those
//! bytes must be handed to rustls without a second copy or a replay stream.
//!
//! Both halves share one `rustls::Connection` in a `RefCell`; a borrow is never
//! held across an `.await`. Writes are serialized by an async mutex so that
//! encryption order equals wire order even when two tasks write.

use std::{
    cell::RefCell,
    io::{self, Read, Write},
    os::fd::{AsRawFd, RawFd},
    rc::Rc,
};

use bytes::{Bytes, BytesMut};
use futures_util::lock::Mutex;
use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable},
    net::TcpStream,
};

/// Largest plaintext slice handed to rustls per write step; keeps the
/// ciphertext staging buffer bounded regardless of message size.
const TLS_WRITE_CHUNK_BYTES: usize = 64 * 1024;

struct Shared {
    tls: RefCell<Option<rustls::Connection>>,
    writer: Mutex<WriteState>,
    fd: RawFd,
}

struct WriteState {
    half: OwnedWriteHalf<TcpStream>,
    ciphertext: Vec<u8>,
}

/// The reading half of a transport.
pub struct TransportReader {
    shared: Rc<Shared>,
    half: OwnedReadHalf<TcpStream>,
    ciphertext: BytesMut,
    read_buffer_bytes: usize,
}

/// The writing half; clones share one serialized writer.
#[derive(Clone)]
pub struct TransportWriter {
    shared: Rc<Shared>,
}

/// Creates a plaintext transport over an accepted or connected TCP stream.
pub fn plain(stream: TcpStream, read_buffer_bytes: usize) -> (TransportReader, TransportWriter) {
    let fd = stream.as_raw_fd();
    let (read_half, write_half) = stream.into_split();
    let shared = Rc::new(Shared {
        tls: RefCell::new(None),
        writer: Mutex::new(WriteState {
            half: write_half,
            ciphertext: Vec::new(),
        }),
        fd,
    });
    (
        TransportReader {
            shared: shared.clone(),
            half: read_half,
            ciphertext: BytesMut::new(),
            read_buffer_bytes,
        },
        TransportWriter { shared },
    )
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Reads from a monoio read half, appending into the spare capacity of `buffer`.
async fn read_append(
    half: &mut OwnedReadHalf<TcpStream>,
    buffer: &mut BytesMut,
    reserve_bytes: usize,
) -> io::Result<usize> {
    if buffer.capacity() - buffer.len() < reserve_bytes / 4 {
        buffer.reserve(reserve_bytes);
    }
    let owned = std::mem::take(buffer);
    let start = owned.len();
    let end = owned.capacity();
    let (result, slice) = half.read(owned.slice_mut(start..end)).await;
    *buffer = slice.into_inner();
    result
}

impl TransportReader {
    pub fn is_tls(&self) -> bool {
        self.shared.tls.borrow().is_some()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.shared.fd
    }

    /// Runs `f` on the TLS connection, if any.
    pub fn with_tls<R>(&self, f: impl FnOnce(&rustls::Connection) -> R) -> Option<R> {
        self.shared.tls.borrow().as_ref().map(f)
    }

    /// Appends plaintext bytes to `dst`; returns 0 at end of stream.
    pub async fn read_into(&mut self, dst: &mut BytesMut) -> io::Result<usize> {
        if !self.is_tls() {
            return read_append(&mut self.half, dst, self.read_buffer_bytes).await;
        }
        let mut stalled = false;
        loop {
            {
                let mut guard = self.shared.tls.borrow_mut();
                let tls = guard.as_mut().expect("checked above");
                // process_new_packets is cheap when nothing is pending and tells
                // exactly how much plaintext is ready, so `dst` grows only by
                // what will be written into it.
                let state = tls.process_new_packets().map_err(tls_error)?;
                let ready = state.plaintext_bytes_to_read();
                if ready > 0 {
                    let old = dst.len();
                    dst.resize(old + ready, 0);
                    let n = tls.reader().read(&mut dst[old..])?;
                    dst.truncate(old + n);
                    return Ok(n);
                }
                if state.peer_has_closed() {
                    return Ok(0);
                }
            }
            if stalled {
                // rustls accepted no ciphertext yet produced no plaintext:
                // continuing would spin.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS input stalled: record buffer full without plaintext",
                ));
            }
            if self.ciphertext.is_empty() {
                let n = read_append(&mut self.half, &mut self.ciphertext, self.read_buffer_bytes)
                    .await?;
                if n == 0 {
                    // A TCP close without close_notify: report end of stream; the
                    // session treats it as the peer going away.
                    return Ok(0);
                }
            }
            // Feed ciphertext only until plaintext is ready: rustls bounds its
            // plaintext buffer, and feeding a whole 64 KiB read at once (bulk
            // COPY FROM) would overflow it. What is left stays in
            // `self.ciphertext` for the next call.
            let mut process_error = None;
            let mut needs_flush = false;
            {
                let mut guard = self.shared.tls.borrow_mut();
                let tls = guard.as_mut().expect("checked above");
                while !self.ciphertext.is_empty() {
                    let mut slice = &self.ciphertext[..];
                    let consumed = tls.read_tls(&mut slice)?;
                    let _ = self.ciphertext.split_to(consumed);
                    match tls.process_new_packets() {
                        Err(e) => {
                            process_error = Some(e);
                            break;
                        }
                        Ok(state) if state.plaintext_bytes_to_read() > 0 => break,
                        Ok(_) => {}
                    }
                    if consumed == 0 {
                        stalled = true;
                        break;
                    }
                }
                if tls.wants_write() {
                    needs_flush = true;
                }
            }
            if needs_flush || process_error.is_some() {
                // Post-handshake messages (KeyUpdate) and alerts must reach the peer.
                let writer = TransportWriter {
                    shared: self.shared.clone(),
                };
                let _ = writer.flush_tls().await;
            }
            if let Some(e) = process_error {
                return Err(tls_error(e));
            }
        }
    }

    /// Reads until at least `count` bytes are buffered in `dst` or EOF.
    pub async fn read_at_least(&mut self, dst: &mut BytesMut, count: usize) -> io::Result<bool> {
        while dst.len() < count {
            if self.read_into(dst).await? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Upgrades a plaintext transport to TLS and completes the handshake.
    /// `initial` holds ciphertext already read from the socket (direct TLS).
    pub async fn handshake(
        &mut self,
        writer: &TransportWriter,
        mut connection: rustls::Connection,
        initial: &[u8],
    ) -> io::Result<()> {
        let mut pending = initial;
        while !pending.is_empty() {
            let consumed = connection.read_tls(&mut pending)?;
            if consumed == 0 {
                break;
            }
        }
        *self.shared.tls.borrow_mut() = Some(connection);
        let mut first = true;
        loop {
            let result = {
                let mut guard = self.shared.tls.borrow_mut();
                let tls = guard.as_mut().expect("installed above");
                if first && !initial.is_empty() {
                    tls.process_new_packets().map(|_| ())
                } else {
                    Ok(())
                }
            };
            first = false;
            let (wants_write, handshaking, wants_read) = {
                let guard = self.shared.tls.borrow();
                let tls = guard.as_ref().expect("installed above");
                (tls.wants_write(), tls.is_handshaking(), tls.wants_read())
            };
            if wants_write {
                writer.flush_tls().await?;
            }
            result.map_err(tls_error)?;
            if !handshaking {
                return Ok(());
            }
            if !wants_read {
                continue;
            }
            let n = read_append(&mut self.half, &mut self.ciphertext, 16 * 1024).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection during the TLS handshake",
                ));
            }
            let outcome = {
                let mut guard = self.shared.tls.borrow_mut();
                let tls = guard.as_mut().expect("installed above");
                let mut outcome = Ok(());
                while !self.ciphertext.is_empty() {
                    let mut slice = &self.ciphertext[..];
                    let consumed = tls.read_tls(&mut slice)?;
                    let _ = self.ciphertext.split_to(consumed);
                    if let Err(e) = tls.process_new_packets() {
                        outcome = Err(e);
                        break;
                    }
                    if consumed == 0 {
                        break;
                    }
                }
                outcome
            };
            if let Err(e) = outcome {
                // Send the alert rustls queued before giving up.
                let _ = writer.flush_tls().await;
                return Err(tls_error(e));
            }
        }
    }

    /// Bytes received after the handshake that rustls has not yet consumed
    /// are kept internally; plaintext leftovers are none of this layer's business.
    pub fn has_buffered_ciphertext(&self) -> bool {
        !self.ciphertext.is_empty()
    }
}

impl TransportWriter {
    pub fn raw_fd(&self) -> RawFd {
        self.shared.fd
    }

    /// Writes all of `data`, encrypting it first on a TLS transport.
    pub async fn write(&self, data: Bytes) -> io::Result<()> {
        let mut state = self.shared.writer.lock().await;
        if self.shared.tls.borrow().is_none() {
            let (result, _) = state.half.write_all(data).await;
            return result.map(|_| ());
        }
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + TLS_WRITE_CHUNK_BYTES).min(data.len());
            {
                let mut guard = self.shared.tls.borrow_mut();
                let tls = guard.as_mut().expect("checked above");
                tls.writer().write_all(&data[offset..end])?;
                while tls.wants_write() {
                    tls.write_tls(&mut state.ciphertext)?;
                }
            }
            offset = end;
            let staged = std::mem::take(&mut state.ciphertext);
            let (result, mut staged) = state.half.write_all(staged).await;
            staged.clear();
            state.ciphertext = staged;
            result?;
        }
        Ok(())
    }

    /// Sends whatever TLS records rustls has queued (handshake, alerts, KeyUpdate).
    pub async fn flush_tls(&self) -> io::Result<()> {
        let mut state = self.shared.writer.lock().await;
        {
            let mut guard = self.shared.tls.borrow_mut();
            let Some(tls) = guard.as_mut() else {
                return Ok(());
            };
            while tls.wants_write() {
                tls.write_tls(&mut state.ciphertext)?;
            }
        }
        if state.ciphertext.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut state.ciphertext);
        let (result, mut staged) = state.half.write_all(staged).await;
        staged.clear();
        state.ciphertext = staged;
        result.map(|_| ())
    }

    /// Ends the stream politely: close_notify on TLS, then a write shutdown.
    pub async fn close(&self) {
        if let Some(tls) = self.shared.tls.borrow_mut().as_mut() {
            tls.send_close_notify();
        }
        let _ = self.flush_tls().await;
        shutdown_fd(self.shared.fd, libc::SHUT_WR);
    }

    /// Aborts both directions immediately; a pending read returns at once.
    pub fn abort(&self) {
        shutdown_fd(self.shared.fd, libc::SHUT_RDWR);
    }
}

/// shutdown(2) on a socket. Unlike close it does not free the descriptor, so
/// it is safe while io_uring operations on it are in flight: they complete.
pub fn shutdown_fd(fd: RawFd, how: libc::c_int) {
    // SAFETY: shutdown only changes socket state; an invalid fd yields EBADF.
    unsafe {
        libc::shutdown(fd, how);
    }
}

/// What [`TransportReader::read_message`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReadMessageError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] crate::protocol::pg::FrameError),
    #[error("connection closed")]
    Closed,
}

impl TransportReader {
    /// Reads one whole tagged message (tag, length and body) during the
    /// startup phases, where messages are few and small; the proxy phase
    /// frames in place instead.
    pub async fn read_message(
        &mut self,
        buffer: &mut BytesMut,
        message_bytes_max: usize,
    ) -> Result<Bytes, ReadMessageError> {
        loop {
            if let Some(frame) = crate::protocol::pg::next_frame(buffer, message_bytes_max)? {
                let length = frame.wire_len();
                return Ok(buffer.split_to(length).freeze());
            }
            if self.read_into(buffer).await? == 0 {
                return Err(ReadMessageError::Closed);
            }
        }
    }
}
