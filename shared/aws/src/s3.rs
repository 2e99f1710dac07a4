//! Blobs in S3. Write-once is `PutObject` with `If-None-Match: *`: a second writer of the same
//! key gets 412 and nothing is overwritten.

use crate::config::{AwsConfig, AwsSetupError};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use executor_lifecycle::{BlobStore, PutOutcome, StoreError};

/// S3 blob store.
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("s3: {e}"))
}

impl S3BlobStore {
    /// A store on `bucket`.
    pub fn new(client: Client, bucket: String) -> S3BlobStore {
        S3BlobStore { client, bucket }
    }

    /// Checks the bucket exists.
    pub async fn check(&self, cfg: &AwsConfig) -> Result<(), AwsSetupError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsSetupError(format!(
                    "S3 bucket '{}' not reachable at {}: {}",
                    self.bucket,
                    cfg.endpoint(),
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn presigned_get(
        &self,
        key: &str,
        content_type: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        // A redirect to a missing object would be S3's 403/404 XML: answer 404 ourselves.
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(err(aws_sdk_s3::error::DisplayErrorContext(&e))),
        }
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| err(e.to_string()))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .presigned(config)
            .await
            .map_err(|e| err(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        Ok(Some(req.uri().to_string()))
    }

    async fn presigned_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| err(e.to_string()))?;
        // The type and length are signed: S3 refuses a PUT with other values.
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(content_length).unwrap_or(i64::MAX))
            .presigned(config)
            .await
            .map_err(|e| err(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        Ok(Some(req.uri().to_string()))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(err(aws_sdk_s3::error::DisplayErrorContext(&e))),
        }
    }

    async fn get_prefix(&self, key: &str, n: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", n.saturating_sub(1)))
            .send()
            .await
        {
            Ok(o) => {
                let data = o.body.collect().await.map_err(err)?;
                let mut b = data.into_bytes().to_vec();
                b.truncate(n);
                Ok(Some(b))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(err(aws_sdk_s3::error::DisplayErrorContext(&e))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_s3::error::DisplayErrorContext(&e)))
    }

    async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, StoreError> {
        let r = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/zstd")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match r {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if matches!(status, Some(412) | Some(409)) {
                    Ok(PutOutcome::AlreadyExists)
                } else {
                    Err(err(aws_sdk_s3::error::DisplayErrorContext(&e)))
                }
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => {
                let data = o.body.collect().await.map_err(err)?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    Ok(None)
                } else {
                    Err(err(aws_sdk_s3::error::DisplayErrorContext(&e)))
                }
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| err(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}
