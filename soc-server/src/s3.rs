//! [`S3ObjectStore`]: soc-core's [`ModelStore`] (opaque bytes by key) on an S3 bucket, for the
//! model artifacts (`S3_BUCKET`) and the log archives (`S3_LOGS_BUCKET`) alike.

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use soc_core::store::{ModelStore, StorageError, validate_key};

use crate::config::S3Settings;

/// An S3 client configured from `settings`: region, endpoint and path style, static
/// credentials or the standard AWS chain, connect and operation timeouts, attempts.
/// One client serves every bucket.
pub async fn client(settings: &S3Settings) -> Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_timeout(settings.operation_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts));
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(c) = &settings.credentials {
        loader = loader.credentials_provider(Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "soc-server-settings",
        ));
    }
    let shared = loader.load().await;
    let mut s3 =
        aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style);
    if settings.checksums_when_required {
        s3 = s3
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    Client::from_conf(s3.build())
}

/// Objects of one S3 bucket as a [`ModelStore`]: key `a/b` is the object `a/b`.
///
/// Keys follow soc-core's [`validate_key`] (checked before any request), so the same keys work
/// on the filesystem store that caches this one. Errors: a missing object is
/// [`StorageError::NotFound`]; everything else S3 or the network can answer (timeouts,
/// refused connections, 5xx, throttling, a missing bucket, denied access) is
/// [`StorageError::Unavailable`] with the SDK's full error chain in the message.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
}

impl S3ObjectStore {
    /// The store of `bucket`, through `client`.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The store of `bucket`, with a client built from `settings`.
    pub async fn connect(settings: &S3Settings, bucket: impl Into<String>) -> Self {
        Self::new(client(settings).await, bucket)
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 client (shared with other buckets).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Checks that the bucket exists and answers (one `HeadBucket`).
    pub async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("check bucket", "", e))
    }

    /// Creates the bucket (in the client's region). An existing bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), StorageError> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error("create bucket", "", e)),
        }
    }

    /// Maps an SDK error of operation `op` on `key` to a [`StorageError`].
    fn error<E>(&self, op: &str, key: &str, err: SdkError<E, HttpResponse>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if err.as_service_error().and_then(|e| e.code()) == Some("NoSuchKey") {
            return StorageError::NotFound(key.to_owned());
        }
        StorageError::Unavailable(format!(
            "S3 {op} `s3://{}/{key}` failed: {}",
            self.bucket,
            DisplayErrorContext(&err)
        ))
    }
}

#[async_trait]
impl ModelStore for S3ObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("put", key, e))
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        validate_key(key)?;
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("get", key, e))?;
        let body = object.body.collect().await.map_err(|e| {
            StorageError::Unavailable(format!(
                "S3 get `s3://{}/{key}`: reading the body failed: {}",
                self.bucket,
                DisplayErrorContext(&e)
            ))
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut request = self.client.list_objects_v2().bucket(&self.bucket);
            if !prefix.is_empty() {
                request = request.prefix(prefix);
            }
            if let Some(token) = continuation.take() {
                request = request.continuation_token(token);
            }
            let page = request
                .send()
                .await
                .map_err(|e| self.error("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(str::to_owned),
            );
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => {
                    continuation = Some(token.to_owned());
                }
                _ => break,
            }
        }
        // S3 lists in UTF-8 byte order already; sorting states the contract, not the server's.
        keys.sort_unstable();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        // S3 answers 204 for a missing key too, as the contract wants.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("delete", key, e))
    }
}
