//! A socket.io client on a bare WebSocket whose receive window is a few kilobytes, so that
//! when it stops reading the bridge's own buffers fill at once instead of the kernel's
//! megabytes on loopback: a browser tab frozen by its OS, as the bridge sees it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// One socket.io connection on namespace `/`, path `/callcontrol`.
pub(crate) struct RawSocket {
    stream: BufReader<TcpStream>,
}

impl RawSocket {
    /// Connects with a receive buffer of `window` bytes and completes the socket.io handshake.
    pub(crate) async fn connect(port: u16, window: u32) -> io::Result<RawSocket> {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(window)?;
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await?;
        Self::handshake(tcp, port).await
    }

    /// Connects from the loopback address `source`, a client address of its own as far as the
    /// bridge's limits are concerned, and completes the handshake; a refused handshake is an
    /// error whose text holds the HTTP status line. Closed with a reset, so that thousands of
    /// short connections leave no TIME_WAIT behind on the client's ports.
    pub(crate) async fn connect_from(source: Ipv4Addr, port: u16) -> io::Result<RawSocket> {
        let socket = TcpSocket::new_v4()?;
        socket.set_zero_linger()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await?;
        Self::handshake(tcp, port).await
    }

    async fn handshake(tcp: TcpStream, port: u16) -> io::Result<RawSocket> {
        let mut stream = BufReader::new(tcp);
        let upgrade = format!(
            "GET /callcontrol/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.get_mut().write_all(upgrade.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        if !line.contains(" 101 ") {
            return Err(io::Error::other(format!("no WebSocket upgrade: {line}")));
        }
        while line != "\r\n" {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let mut socket = RawSocket { stream };
        socket.read_until(|t| t.starts_with('0')).await?;
        socket.send("40").await?;
        socket.read_until(|t| t.starts_with("40")).await?;
        Ok(socket)
    }

    /// Sends one engine.io text packet as a masked WebSocket frame.
    pub(crate) async fn send(&mut self, text: &str) -> io::Result<()> {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend((n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend((n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x81];
        frame.extend(mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.get_mut().write_all(&frame).await
    }

    /// Reads text packets until one satisfies `wanted`, answering engine.io pings; an error
    /// once the bridge has closed the connection.
    pub(crate) async fn read_until(&mut self, wanted: impl Fn(&str) -> bool) -> io::Result<String> {
        loop {
            let text = self.read_text().await?;
            if text == "2" {
                self.send("3").await?;
            } else if wanted(&text) {
                return Ok(text);
            }
        }
    }

    async fn read_text(&mut self) -> io::Result<String> {
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await?;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await?;
            match head[0] & 0x0f {
                0x1 => return Ok(String::from_utf8_lossy(&payload).into_owned()),
                0x8 => return Err(io::Error::new(io::ErrorKind::ConnectionReset, "closed")),
                _ => {}
            }
        }
    }
}
