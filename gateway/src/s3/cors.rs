//! Put/Get/DeleteBucketCors. The registry checks and records the rules; [`crate::cors`]
//! answers browsers from them (preflights, and the headers of actual responses).

use registry::event::v1::{CorsRule, CorsSet};
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::error::Result;
use super::{Gateway, caller};

pub(super) async fn put_bucket_cors(
    gw: &Gateway,
    req: S3Request<PutBucketCorsInput>,
) -> Result<S3Response<PutBucketCorsOutput>> {
    let rules = req.input.cors_configuration.cors_rules.iter().map(recorded).collect();
    gw.registry.set_cors(caller(&req), CorsSet { bucket: req.input.bucket.clone(), rules }).await?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub(super) async fn get_bucket_cors(
    gw: &Gateway,
    req: S3Request<GetBucketCorsInput>,
) -> Result<S3Response<GetBucketCorsOutput>> {
    let name = req.input.bucket.clone();
    let rules = gw
        .registry
        .read(move |reads| match reads.bucket(&name)? {
            Some(_) => reads.bucket_cors(&name),
            None => Err(registry::Error::NoSuchBucket(name)),
        })
        .await?;
    let Some(rules) = rules else {
        return Err(s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist").into());
    };
    Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules.into_iter().map(answered).collect()) }))
}

pub(super) async fn delete_bucket_cors(
    gw: &Gateway,
    req: S3Request<DeleteBucketCorsInput>,
) -> Result<S3Response<DeleteBucketCorsOutput>> {
    gw.registry.delete_cors(caller(&req), &req.input.bucket).await?;
    Ok(S3Response::with_status(DeleteBucketCorsOutput {}, http::StatusCode::NO_CONTENT))
}

fn recorded(rule: &CORSRule) -> CorsRule {
    CorsRule {
        id: rule.id.clone(),
        allowed_methods: rule.allowed_methods.clone(),
        allowed_origins: rule.allowed_origins.clone(),
        allowed_headers: rule.allowed_headers.clone().unwrap_or_default(),
        expose_headers: rule.expose_headers.clone().unwrap_or_default(),
        max_age_seconds: rule.max_age_seconds,
    }
}

fn answered(rule: CorsRule) -> CORSRule {
    CORSRule {
        id: rule.id,
        allowed_methods: rule.allowed_methods,
        allowed_origins: rule.allowed_origins,
        allowed_headers: (!rule.allowed_headers.is_empty()).then_some(rule.allowed_headers),
        expose_headers: (!rule.expose_headers.is_empty()).then_some(rule.expose_headers),
        max_age_seconds: rule.max_age_seconds,
    }
}
