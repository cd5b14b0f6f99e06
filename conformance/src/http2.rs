//! HTTP/2 connections to the server: with TLS, negotiated by ALPN as browsers and most SDKs
//! do; without, by prior knowledge (h2c), as a client that skips the upgrade does.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::Server;
use crate::raw::RawRequest;

/// An open HTTP/2 connection: `requests` sends on it, and `connection` ends when it closes
/// (with the error, if it did not close cleanly).
pub struct Http2 {
    /// Sends requests.
    pub requests: SendRequest<Bytes>,
    /// The connection's task.
    pub connection: JoinHandle<Result<(), h2::Error>>,
}

/// A response read whole.
#[derive(Debug)]
pub struct Http2Response {
    /// The status code.
    pub status: u16,
    /// The body, or the error that ended it (a HEAD answered with DATA frames is a protocol
    /// error to the client).
    pub body: Result<Vec<u8>, h2::Error>,
}

impl Server {
    /// Opens an HTTP/2 connection: over TLS with ALPN `h2` on an HTTPS server, by prior
    /// knowledge on an HTTP one.
    ///
    /// # Panics
    /// When the connection or the HTTP/2 handshake fails.
    pub async fn http2(&self) -> Http2 {
        let tcp = TcpStream::connect(self.addr()).await.expect("connect");
        let (requests, connection) = match &self.tls {
            None => {
                let (requests, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
                (requests, tokio::spawn(connection))
            }
            Some(config) => {
                let mut config = rustls::ClientConfig::clone(config);
                config.alpn_protocols = vec![b"h2".to_vec()];
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = rustls::pki_types::ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
                let tls = connector.connect(name, tcp).await.expect("TLS handshake");
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()), "the server negotiates h2");
                let (requests, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
                (requests, tokio::spawn(connection))
            }
        };
        Http2 { requests, connection }
    }
}

impl Http2 {
    /// Sends `request` (already signed, if it is to be) without a body and reads the answer.
    ///
    /// # Panics
    /// When the request cannot be sent or no response head arrives.
    pub async fn send(&mut self, server: &Server, request: &RawRequest) -> Http2Response {
        self.exchange(server, request, None).await
    }

    /// Sends `request` with `body`, its host only as the `:authority` pseudo-header (as HTTP/2
    /// clients do; the `Host` header is dropped), and reads the answer.
    ///
    /// # Panics
    /// As [`Http2::send`].
    pub async fn send_with_body(&mut self, server: &Server, request: &RawRequest, body: &[u8]) -> Http2Response {
        self.exchange(server, request, Some(body)).await
    }

    async fn exchange(&mut self, server: &Server, request: &RawRequest, body: Option<&[u8]>) -> Http2Response {
        let (method, target, headers) = request.parts();
        let scheme = if server.cert_pem().is_some() { "https" } else { "http" };
        let mut builder = http::Request::builder().method(method).uri(format!("{scheme}://{}{target}", server.host()));
        for (name, value) in headers {
            // HTTP/2 has no connection headers; with a body, the host travels as the authority.
            if name != "connection" && !(body.is_some() && name == "host") {
                builder = builder.header(name, value);
            }
        }
        let requests = self.requests.clone();
        let mut requests = requests.ready().await.expect("connection ready");
        let (response, mut stream) =
            requests.send_request(builder.body(()).expect("request"), body.is_none()).expect("send request");
        if let Some(body) = body {
            stream.send_data(bytes::Bytes::copy_from_slice(body), true).expect("send the body");
        }
        let response = response.await.expect("response head");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        let body = loop {
            match body.data().await {
                None => break Ok(bytes),
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    bytes.extend_from_slice(&chunk);
                }
                Some(Err(err)) => break Err(err),
            }
        };
        Http2Response { status, body }
    }
}
