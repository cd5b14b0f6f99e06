//! The machine's loopback limit: one file served over HTTP/1.1 by hyper and fetched by hyper's
//! client (the connection layer the SDK's HTTP client is built on), with no S3 in between.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Empty, channel::Channel};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

use crate::workload::median;

const CHUNK: usize = 1 << 20;

/// What to fetch and how to label the result.
#[derive(clap::Args)]
pub struct FetchArgs {
    /// URL to GET, e.g. the address of `serve-file`.
    url: hyper::Uri,
    /// Number of GETs; the median and the best are reported.
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Round number recorded in the result.
    #[arg(long, default_value_t = 1)]
    round: u32,
}

/// Serves `file` at every path until the process is stopped.
pub async fn serve_file(listen: SocketAddr, file: PathBuf) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
    let file = Arc::new(file);
    loop {
        let (stream, _) = listener.accept().await?;
        let file = Arc::clone(&file);
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<Incoming>| respond(Arc::clone(&file)));
            // A client that goes away mid-body is not the server's problem here.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn respond(path: Arc<PathBuf>) -> anyhow::Result<Response<Channel<Bytes, std::io::Error>>> {
    let mut file = tokio::fs::File::open(path.as_path()).await?;
    let len = file.metadata().await?.len();
    let (mut sender, body) = Channel::new(4);
    tokio::spawn(async move {
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match file.read_buf(&mut buf).await {
                Ok(0) => return,
                Ok(_) => {
                    if sender.send_data(buf.freeze()).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    sender.abort(e);
                    return;
                }
            }
        }
    });
    Ok(Response::builder().header(hyper::header::CONTENT_LENGTH, len).body(body)?)
}

/// GETs the URL `passes` times, draining and counting the body; prints one JSON line.
pub async fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut rates = Vec::with_capacity(args.passes);
    let mut bytes = 0;
    for _ in 0..args.passes.max(1) {
        let start = Instant::now();
        let response = client.get(args.url.clone()).await.with_context(|| format!("GET {}", args.url))?;
        ensure!(response.status().is_success(), "GET {}: {}", args.url, response.status());
        let expected: Option<u64> = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut body = response.into_body();
        bytes = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                bytes += data.len() as u64;
            }
        }
        ensure!(expected.is_none_or(|e| e == bytes), "GET {}: {bytes} bytes, expected {expected:?}", args.url);
        rates.push(bytes as f64 / (1024.0 * 1024.0) / start.elapsed().as_secs_f64());
    }
    let best = rates.iter().copied().fold(f64::NAN, f64::max);
    let line = json!({
        "target": "machine", "round": args.round, "workload": "loopback_get",
        "value": median(&mut rates.clone()), "unit": "MiB/s", "best": best, "passes": rates, "bytes": bytes,
    });
    println!("{line}");
    Ok(())
}
