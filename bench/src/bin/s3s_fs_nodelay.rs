//! The benchmark's baseline: the s3s-fs crate's `FileSystem` store, served by s3s through
//! hyper as the gateway serves, with `TCP_NODELAY` on every connection.
//!
//! s3s-fs's own binary (0.14.1) leaves Nagle's algorithm on, so each small response waits for
//! the client's delayed ACK (tens of milliseconds): comparing against it flatters the gateway
//! on small objects. This is the strongest honest configuration of the same store.
//!
//! ```text
//! s3s-fs-nodelay --host 127.0.0.1 --port 9100 --access-key AK --secret-key SK /data
//! ```

use std::path::PathBuf;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

/// The command line of s3s-fs's own binary, so that scripts start either the same way.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long)]
    port: u16,
    /// Access key clients sign with.
    #[arg(long)]
    access_key: String,
    /// Secret key clients sign with.
    #[arg(long)]
    secret_key: String,
    /// Folder the objects are kept in.
    root: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = s3s_fs::FileSystem::new(&args.root)
        .map_err(|err| anyhow::anyhow!("store in {}: {err:?}", args.root.display()))?;
    let service = {
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(SimpleAuth::from_single(args.access_key, args.secret_key));
        builder.build()
    };
    let listener = TcpListener::bind((args.host.as_str(), args.port)).await?;
    eprintln!("s3s-fs (TCP_NODELAY) on http://{}", listener.local_addr()?);
    let http = Builder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        // The one difference from s3s-fs's binary.
        socket.set_nodelay(true)?;
        let connection = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
