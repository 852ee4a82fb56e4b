//! Packet framing over a TCP stream. Reads fill a buffer and decode whole packets (mysql_common's
//! codec joins 16 MiB chunks and checks sequence ids); writes are encoded into one buffer that is
//! flushed once per response, or sooner when it grows past `FLUSH_AT`.

use bytes::BytesMut;
use mysql_common::proto::codec::{error::PacketCodecError, PacketCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FLUSH_AT: usize = 64 * 1024;

pub(crate) struct PacketIo {
    stream: TcpStream,
    codec: PacketCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
}

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
    pub fn new(stream: TcpStream, max_packet: usize) -> Self {
        let mut codec = PacketCodec::default();
        codec.max_allowed_packet = max_packet;
        PacketIo {
            stream,
            codec,
            read_buf: BytesMut::with_capacity(16 * 1024),
            write_buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Compressed protocol (zlib) from the next packet on.
    pub fn compress(&mut self) {
        self.codec
            .compress(mysql_common::proto::codec::Compression::default());
    }

    /// A new command starts a new sequence.
    pub fn reset_seq(&mut self) {
        self.codec.reset_seq_id();
    }

    pub async fn read_packet(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut packet = Vec::new();
        loop {
            match self.codec.decode(&mut self.read_buf, &mut packet) {
                Ok(true) => return Ok(packet),
                Ok(false) => {}
                Err(PacketCodecError::PacketTooLarge) => return Err(ReadError::TooLarge),
                Err(e) => return Err(ReadError::Malformed(e.to_string())),
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    /// Queues one packet; flushes if the buffer is large.
    pub async fn write_packet(&mut self, payload: &[u8]) -> std::io::Result<()> {
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
        if !self.write_buf.is_empty() {
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
