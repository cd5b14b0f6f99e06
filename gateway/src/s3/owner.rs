//! Owners as S3 names them (`<Owner>`: an account's name and canonical id): of a bucket, and
//! of the objects and uploads listed in it; and who started an upload (`<Initiator>`).

use std::collections::HashMap;

use registry::policy::canonical_id;
use registry::queries::Reads;
use registry::state::{ROOT_ACCOUNT, ROOT_USER};
use s3s::dto::{Initiator, Owner};

use super::Gateway;
use super::error::Result;

/// An account as S3 names an owner: its name and canonical id.
pub(super) fn account_owner(name: String, account_id: &str) -> Owner {
    Owner { display_name: Some(name), id: Some(canonical_id(account_id)) }
}

/// The owner the account with id `id` is, as [`account_owner`] names it; `None` for an id
/// no account has.
pub(super) fn owner_of_account(reads: &dyn Reads, id: &str) -> registry::Result<Option<Owner>> {
    Ok(reads.accounts()?.into_iter().find(|account| account.id == id).map(|a| account_owner(a.name, &a.id)))
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

/// Who started each upload, by the access key its event names (`actors`), as S3 names an
/// initiator: a root user by its account's canonical id, another user by its ARN. Never by
/// the access key id, which is not for other accounts, or everyone under a public ACL, to
/// see. A key the registry does not hold (a configured user's) is the root account's.
pub(super) async fn initiators(gw: &Gateway, actors: Vec<String>) -> Result<Vec<Initiator>> {
    Ok(gw
        .registry
        .read(move |reads| {
            let root = reads.account(ROOT_ACCOUNT)?;
            let mut named = Vec::with_capacity(actors.len());
            for actor in actors {
                let key = reads.access_key(&actor)?;
                let account = match &key {
                    Some(key) => reads.account(&key.account)?,
                    None => root.clone(),
                };
                let Some(account) = account else {
                    named.push(Initiator::default());
                    continue;
                };
                named.push(match key.filter(|key| key.user != ROOT_USER) {
                    Some(key) => Initiator {
                        id: Some(format!("arn:aws:iam::{}:user/{}", account.id, key.user)),
                        display_name: Some(key.user),
                    },
                    None => Initiator { id: Some(canonical_id(&account.id)), display_name: Some(account.name) },
                });
            }
            Ok(named)
        })
        .await?)
}

/// The owner of each listed version (`versions`: key and version id), as GetObjectAcl names
/// it: the account recorded as its owner while the bucket's ownership enables ACLs, else
/// `bucket_owner`. A bucket without ACLs costs no read per version.
pub(super) async fn version_owners(
    gw: &Gateway,
    bucket: &str,
    bucket_owner: &Owner,
    versions: Vec<(String, String)>,
) -> Result<Vec<Owner>> {
    let name = bucket.to_owned();
    let owners = gw
        .registry
        .read(move |reads| {
            if !reads.bucket_ownership(&name)?.acls_enabled() {
                return Ok(vec![None; versions.len()]);
            }
            let mut accounts: HashMap<String, Option<Owner>> = HashMap::new();
            let mut owners = Vec::with_capacity(versions.len());
            for (key, version_id) in versions {
                let Some(id) = reads.object_acl(&name, &key, &version_id)?.owner else {
                    owners.push(None);
                    continue;
                };
                if !accounts.contains_key(&id) {
                    accounts.insert(id.clone(), owner_of_account(reads, &id)?);
                }
                owners.push(accounts[&id].clone());
            }
            Ok(owners)
        })
        .await?;
    Ok(owners.into_iter().map(|owner| owner.unwrap_or_else(|| bucket_owner.clone())).collect())
}
