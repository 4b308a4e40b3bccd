//! Tokio's servers for the I/O benchmarks (bench/WORKLOADS.md, "I/O"), on a
//! `new_multi_thread()` runtime with its default worker count (one per CPU).
//!
//! Usage: oxide-io-peers MODE PORT, MODE `echo` or `http`. Listens on
//! 127.0.0.1:PORT, prints "ready" once it accepts, runs until killed.
//! - echo: a task per connection reads what came (into a 4 KiB buffer of
//!   its own) and writes it back.
//! - http: a task per connection reads until "\r\n\r\n" and answers every
//!   request with the same fixed bytes, keeping the connection alive; the
//!   request itself is not looked at (this is the floor of an HTTP server,
//!   not one).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUF: usize = 4096;
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

async fn echo(mut sock: TcpStream) {
    let mut buf = vec![0u8; BUF];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn http(mut sock: TcpStream) {
    let mut buf = vec![0u8; BUF];
    let mut have = 0;
    loop {
        match sock.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        // Answer every complete request in the buffer (more than one when
        // the client pipelines), then keep what is left of the next one.
        let mut start = 0;
        while let Some(end) = buf[start..have].windows(4).position(|w| w == b"\r\n\r\n") {
            start += end + 4;
            if sock.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            return; // a request head larger than the buffer
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, port) = match args.as_slice() {
        [_, mode, port] if mode == "echo" || mode == "http" => (mode.clone(), port.clone()),
        _ => {
            eprintln!("usage: oxide-io-peers echo|http PORT");
            std::process::exit(2);
        }
    };
    let port: u16 = port.parse().expect("PORT");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("ready");
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("oxide-io-peers: accept: {e}");
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            if mode == "echo" {
                tokio::spawn(echo(sock));
            } else {
                tokio::spawn(http(sock));
            }
        }
    });
}
