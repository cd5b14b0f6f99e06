//! Owners as S3 names them (`<Owner>`: an account's name and canonical id): of a bucket, and
//! of the objects and uploads listed in it.

use registry::policy::canonical_id;
use s3s::dto::Owner;

use super::Gateway;
use super::error::Result;

/// An account as S3 names an owner: its name and canonical id.
pub(super) fn account_owner(name: String, account_id: &str) -> Owner {
    Owner { display_name: Some(name), id: Some(canonical_id(account_id)) }
}

/// The bucket's owning account (`NoSuchBucket` when the bucket does not exist): the owner
/// S3 reports for the bucket, and for its objects and uploads.
pub(super) async fn bucket_owner(gw: &Gateway, bucket: &str) -> Result<Owner> {
    let name = bucket.to_owned();
    let account = gw
        .registry
        .read(move |reads| {
            let Some(bucket) = reads.bucket(&name)? else { return Err(registry::Error::NoSuchBucket(name)) };
            // A bucket created by a configured key belongs to the root account.
            match reads.account_of_key(&bucket.owner)? {
                Some(account) => Ok(Some(account)),
                None => reads.account(registry::state::ROOT_ACCOUNT),
            }
        })
        .await?;
    Ok(account.map(|a| account_owner(a.name, &a.id)).unwrap_or_default())
}
