//! S3 test helpers: the moto server of `scripts/with-moto.sh` (`SOC_TEST_S3_ENDPOINT`), fresh
//! buckets, and [`FaultProxy`], a loopback TCP proxy in front of moto that can delay bytes or
//! answer HTTP errors, to test the server against a slow or failing S3.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use soc_server::Config;
use soc_server::s3::S3ObjectStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The moto endpoint, if the tests run under `scripts/with-moto.sh`.
pub fn s3_endpoint() -> Option<String> {
    std::env::var("SOC_TEST_S3_ENDPOINT")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Returns early from a test (with a note) when no S3 endpoint is configured.
#[macro_export]
macro_rules! require_s3 {
    () => {
        match $crate::common::s3::s3_endpoint() {
            Some(endpoint) => endpoint,
            None => {
                eprintln!(
                    "skipped: SOC_TEST_S3_ENDPOINT is not set (run under scripts/with-moto.sh)"
                );
                return;
            }
        }
    };
}

/// A bucket name no other test uses (moto's state is shared by every test).
pub fn fresh_bucket_name() -> String {
    // Bucket names: lowercase letters, digits and `-`, at most 63 characters.
    super::unique("soc")
        .replace('_', "-")
        .to_ascii_lowercase()
        .chars()
        .take(63)
        .collect()
}

/// Settings for S3 at `endpoint` and `bucket` in `dir`, with short timeouts and backoff so
/// fault tests run in seconds: 500 ms to connect, 3 s an operation, 2 attempts, upload retries
/// after 50 ms doubling up to 400 ms.
pub fn s3_config(dir: &Path, endpoint: &str, bucket: &str) -> Config {
    let mut config = Config::defaults();
    config.database_url = Some(format!("sqlite://{}", dir.join("soc.db").display()));
    config.data_dir = dir.to_path_buf();
    config.log_dir = Default::default();
    config.port = 0;
    config.max_agents_per_tenant = 1000;
    config.s3_bucket = Some(bucket.to_owned());
    config.s3_endpoint_url = Some(endpoint.to_owned());
    config.s3_force_path_style = None;
    config.aws_region = "us-east-1".into();
    config.aws_access_key_id = Some("test".into());
    config.aws_secret_access_key = Some("test".into());
    config.aws_session_token = None;
    config.s3_connect_timeout_ms = 500;
    config.s3_operation_timeout_ms = 3000;
    config.s3_max_attempts = 2;
    config.s3_retry_backoff_ms = 50;
    config.s3_retry_max_backoff_ms = 400;
    config
}

/// A store of `bucket` on moto itself (not through a proxy), for checking what S3 holds.
pub async fn direct_store(endpoint: &str, bucket: &str) -> S3ObjectStore {
    let config = s3_config(Path::new("/nonexistent"), endpoint, bucket);
    S3ObjectStore::connect(&config.s3_settings(), bucket).await
}

/// A new, empty bucket on moto, and a store of it.
pub async fn fresh_bucket(endpoint: &str) -> S3ObjectStore {
    let store = direct_store(endpoint, &fresh_bucket_name()).await;
    store.create_bucket().await.expect("create bucket on moto");
    store
}

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// What [`FaultProxy`] does to new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes both ways.
    Pass,
    /// Forward, but hold every chunk from S3 for this long before passing it on.
    Delay(Duration),
    /// Read the request and answer this HTTP status with an S3 error body.
    Status(u16),
}

/// A TCP proxy on loopback in front of an S3 endpoint. Changing the fault closes the open
/// connections, so pooled connections cannot bypass the new behaviour.
pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free port in front of `upstream` (an `http://host:port` endpoint).
    pub async fn start(upstream: &str, fault: Fault) -> Self {
        Self::start_on(0, upstream, fault).await
    }

    /// A proxy on `port` (0: any) in front of `upstream`.
    pub async fn start_on(port: u16, upstream: &str, fault: Fault) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream endpoint http://IP:PORT");
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(fault);
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(handle(conn, upstream, rx));
            }
        });
        Self {
            addr,
            fault: tx,
            task,
        }
    }

    /// The proxy's endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what new connections get and closes the open ones.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let current = *fault.borrow_and_update();
    let work = async move {
        match current {
            Fault::Pass => {
                let mut server = TcpStream::connect(upstream).await?;
                tokio::io::copy_bidirectional(&mut client, &mut server).await?;
            }
            Fault::Delay(delay) => {
                let server = TcpStream::connect(upstream).await?;
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::io::copy(&mut client_read, &mut server_write);
                let answers = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = server_read.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        tokio::time::sleep(delay).await;
                        client_write.write_all(&buf[..n]).await?;
                    }
                };
                tokio::try_join!(requests, answers)?;
            }
            Fault::Status(status) => {
                read_request(&mut client).await?;
                let (reason, code) = match status {
                    503 => ("Service Unavailable", "ServiceUnavailable"),
                    500 => ("Internal Server Error", "InternalError"),
                    _ => ("Error", "InternalError"),
                };
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>injected by the test proxy</Message></Error>"
                );
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                client.write_all(head.as_bytes()).await?;
                client.write_all(body.as_bytes()).await?;
                client.shutdown().await?;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        _ = work => {}
        _ = fault.changed() => {}
    }
}

/// Reads one HTTP request (head and a `content-length` body), so that the answer is not lost to
/// a reset caused by unread bytes.
async fn read_request(conn: &mut TcpStream) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = data.len() - head_end;
    while have < body_len {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Ok(())
}
