//! Packet framing over a TCP stream. Reads fill a buffer and decode whole packets (mysql_common's
//! codec joins 16 MiB chunks and checks sequence ids); writes are encoded into one buffer that is
//! flushed once per response, or sooner when it grows past `FLUSH_AT`. The compressed protocol
//! (zlib, and zstd, which mysql_common lacks) is framed here, at flush: mysql_common's codec
//! compresses each packet on its own, so a result of small rows went out as one uncompressed
//! frame per row, larger than without compression.

use bytes::BytesMut;
use mysql_common::proto::codec::{error::PacketCodecError, PacketCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const FLUSH_AT: usize = 64 * 1024;

/// Bytes read from and written to clients, over every connection of a server.
#[derive(Debug, Default)]
pub struct ByteCounts {
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

/// The client's socket: plain, or TLS after the client asked for it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
    /// Only while the TLS handshake runs.
    Upgrading,
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Upgrading => std::task::Poll::Ready(Err(upgrading())),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Upgrading => std::task::Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Upgrading => std::task::Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Upgrading => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// The socket with bytes already read from it put back in front: a client sends its TLS hello
/// right after the SSL request, so the packet reader may hold the start of it.
pub(crate) struct Prefixed {
    prefix: BytesMut,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn upgrading() -> std::io::Error {
    std::io::Error::other("the TLS handshake failed")
}

pub(crate) struct PacketIo {
    stream: Stream,
    bytes: Arc<ByteCounts>,
    codec: PacketCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// The response writer's encoding buffer, kept between packets and commands.
    pub(crate) scratch: Vec<u8>,
    max_packet: usize,
    /// Set once the client negotiated compression; the codec is then unused.
    compressed: Option<Compressed>,
}

#[derive(Clone, Copy)]
enum Algorithm {
    Zlib,
    Zstd(i32),
}

impl Algorithm {
    /// `data` compressed, if that makes it smaller.
    fn compress(self, data: &[u8]) -> Option<Vec<u8>> {
        let out = match self {
            Algorithm::Zstd(level) => zstd::bulk::compress(data, level).ok()?,
            Algorithm::Zlib => {
                use std::io::Write;
                let mut z = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::default(),
                );
                z.write_all(data).ok()?;
                z.finish().ok()?
            }
        };
        (out.len() < data.len()).then_some(out)
    }

    fn decompress(self, data: &[u8], len: usize) -> Result<Vec<u8>, String> {
        match self {
            Algorithm::Zstd(_) => {
                zstd::bulk::decompress(data, len).map_err(|e| format!("zstd: {e}"))
            }
            Algorithm::Zlib => {
                use std::io::Read;
                let mut out = Vec::with_capacity(len);
                flate2::read::ZlibDecoder::new(data)
                    .take(len as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("zlib: {e}"))?;
                if out.len() != len {
                    return Err(format!(
                        "zlib: {} bytes where {len} were announced",
                        out.len()
                    ));
                }
                Ok(out)
            }
        }
    }
}

/// Compressed protocol state (zlib or zstd). Packets are staged uncompressed in `write_buf` and
/// compressed at flush, several to a frame, as MySQL compresses per network write: a frame
/// per small packet would carry its headers and nothing compressed.
struct Compressed {
    algorithm: Algorithm,
    /// Sequence id of the next compressed frame (shared by both directions, reset per command).
    comp_seq: u8,
    /// Sequence id of the next packet inside the frames; set to `comp_seq` after each flush, as
    /// MySQL's net_flush does.
    seq: u8,
    /// Decompressed bytes not yet taken as packets.
    plain: BytesMut,
}

/// A compressed frame's payload below this is sent as is (as MySQL does).
const MIN_COMPRESS_LENGTH: usize = 50;
const MAX_CHUNK: usize = 0xff_ffff;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("packet larger than max_allowed_packet")]
    TooLarge,
    #[error("malformed packet: {0}")]
    Malformed(String),
}

impl PacketIo {
    pub fn new(stream: TcpStream, max_packet: usize, bytes: Arc<ByteCounts>) -> Self {
        let mut codec = PacketCodec::default();
        codec.max_allowed_packet = max_packet;
        PacketIo {
            stream: Stream::Plain(stream),
            bytes,
            codec,
            read_buf: BytesMut::with_capacity(1024),
            write_buf: BytesMut::with_capacity(1024),
            scratch: Vec::with_capacity(256),
            max_packet,
            compressed: None,
        }
    }

    /// Runs the TLS handshake on the socket (after the client's SSL request); packets go
    /// encrypted from then on.
    pub async fn upgrade_tls(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<()> {
        self.flush().await?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(std::io::Error::other("TLS requested twice"));
        };
        let prefixed = Prefixed {
            prefix: self.read_buf.split(),
            inner: tcp,
        };
        let tls = acceptor.accept(prefixed).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// zstd compressed protocol from the next packet on, at the client's level.
    pub fn compress_zstd(&mut self, level: i32) {
        self.compress_with(Algorithm::Zstd(level));
    }

    /// Compressed protocol (zlib) from the next packet on.
    pub fn compress(&mut self) {
        self.compress_with(Algorithm::Zlib);
    }

    fn compress_with(&mut self, algorithm: Algorithm) {
        self.compressed = Some(Compressed {
            algorithm,
            comp_seq: 0,
            seq: 0,
            plain: BytesMut::new(),
        });
    }

    /// A new command starts a new sequence.
    pub fn reset_seq(&mut self) {
        self.codec.reset_seq_id();
        if let Some(z) = &mut self.compressed {
            z.comp_seq = 0;
            z.seq = 0;
        }
    }

    pub async fn read_packet(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut packet = Vec::new();
        self.read_packet_into(&mut packet).await?;
        Ok(packet)
    }

    /// Reads the next packet's payload into `packet` (cleared first), so that a connection's
    /// commands reuse one buffer.
    pub async fn read_packet_into(&mut self, packet: &mut Vec<u8>) -> Result<(), ReadError> {
        packet.clear();
        if self.compressed.is_some() {
            return self.read_compressed_packet(packet).await;
        }
        loop {
            match self.codec.decode(&mut self.read_buf, packet) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(PacketCodecError::PacketTooLarge) => return Err(ReadError::TooLarge),
                Err(e) => return Err(ReadError::Malformed(e.to_string())),
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            self.bytes.received.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    async fn read_compressed_packet(&mut self, packet: &mut Vec<u8>) -> Result<(), ReadError> {
        let max_packet = self.max_packet;
        loop {
            let z = self.compressed.as_mut().expect("compressed mode");
            // Whole packets (16 MiB chunks joined) from the decompressed bytes.
            while z.plain.len() >= 4 {
                let len = usize::from(z.plain[0])
                    | usize::from(z.plain[1]) << 8
                    | usize::from(z.plain[2]) << 16;
                if z.plain.len() < 4 + len {
                    break;
                }
                if packet.len() + len > max_packet {
                    return Err(ReadError::TooLarge);
                }
                z.seq = z.plain[3].wrapping_add(1);
                packet.extend_from_slice(&z.plain[4..4 + len]);
                let _ = z.plain.split_to(4 + len);
                if len < MAX_CHUNK {
                    return Ok(());
                }
            }
            // The next compressed frame: length(3) sequence(1) uncompressed length(3) payload.
            if self.read_buf.len() >= 7 {
                let b = &self.read_buf;
                let comp_len = usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
                let raw_len = usize::from(b[4]) | usize::from(b[5]) << 8 | usize::from(b[6]) << 16;
                if self.read_buf.len() >= 7 + comp_len {
                    if b[3] != z.comp_seq {
                        return Err(ReadError::Malformed(format!(
                            "compressed packet {} where {} was expected",
                            b[3], z.comp_seq
                        )));
                    }
                    z.comp_seq = z.comp_seq.wrapping_add(1);
                    let frame = self.read_buf.split_to(7 + comp_len);
                    if raw_len == 0 {
                        z.plain.extend_from_slice(&frame[7..]);
                    } else {
                        if raw_len > max_packet + 4 {
                            return Err(ReadError::TooLarge);
                        }
                        let data = z
                            .algorithm
                            .decompress(&frame[7..], raw_len)
                            .map_err(ReadError::Malformed)?;
                        z.plain.extend_from_slice(&data);
                    }
                    continue;
                }
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            self.bytes.received.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Queues `scratch` as one packet (the response writer encodes into it).
    pub(crate) async fn write_scratch(&mut self) -> std::io::Result<()> {
        let scratch = std::mem::take(&mut self.scratch);
        let written = self.write_packet(&scratch).await;
        // Kept for the next packet, unless a huge row grew it.
        if scratch.capacity() <= 64 * 1024 {
            self.scratch = scratch;
        }
        written
    }

    /// Queues one packet; flushes if the buffer is large.
    pub async fn write_packet(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if let Some(z) = &mut self.compressed {
            // Staged as plain packets; compressed at flush.
            let mut rest = payload;
            loop {
                let n = rest.len().min(MAX_CHUNK);
                self.write_buf
                    .extend_from_slice(&(n as u32).to_le_bytes()[..3]);
                self.write_buf.extend_from_slice(&[z.seq]);
                self.write_buf.extend_from_slice(&rest[..n]);
                z.seq = z.seq.wrapping_add(1);
                rest = &rest[n..];
                if n < MAX_CHUNK {
                    break;
                }
            }
            if self.write_buf.len() >= FLUSH_AT {
                self.flush().await?;
            }
            return Ok(());
        }
        let mut src = payload;
        self.codec
            .encode(&mut src, &mut self.write_buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if self.write_buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if let (Some(z), false) = (&mut self.compressed, self.write_buf.is_empty()) {
            let mut frames = Vec::with_capacity(self.write_buf.len() / 2 + 16);
            for chunk in self.write_buf.chunks(MAX_CHUNK) {
                let compressed = if chunk.len() >= MIN_COMPRESS_LENGTH {
                    z.algorithm.compress(chunk)
                } else {
                    None
                };
                let (body, raw_len) = match &compressed {
                    Some(c) => (c.as_slice(), chunk.len()),
                    None => (chunk, 0),
                };
                frames.extend_from_slice(&(body.len() as u32).to_le_bytes()[..3]);
                frames.push(z.comp_seq);
                frames.extend_from_slice(&(raw_len as u32).to_le_bytes()[..3]);
                frames.extend_from_slice(body);
                z.comp_seq = z.comp_seq.wrapping_add(1);
            }
            z.seq = z.comp_seq;
            self.write_buf.clear();
            self.bytes
                .sent
                .fetch_add(frames.len() as u64, Ordering::Relaxed);
            return self.stream.write_all(&frames).await;
        }
        if !self.write_buf.is_empty() {
            self.bytes
                .sent
                .fetch_add(self.write_buf.len() as u64, Ordering::Relaxed);
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
