//! Domain operations: each checks the views inside the writer's transaction, refuses with a
//! domain [`Error`] or appends its events, and resolves once they are durable.
//!
//! Checks and appends share one transaction, so two racing requests cannot both pass a
//! check that only one of them may pass (two CreateBucket of one name, two `If-None-Match: *`
//! writes of one key).

use crate::acl::{ObjectAcl, Ownership};
use crate::deletions::{self, Placement};
use crate::error::{Error, Result};
use crate::event::v1::{
    self, AclEntry, BlobCorrupt, BucketAclSet, BucketCreated, BucketEncryptionSet, BucketPolicySet, BucketRef,
    BucketTaggingSet, BypassedFor, CorsSet, KeysRewrapped, LegalHoldSet, LifecycleApplied, LifecycleSet, MasterKeySet,
    MultipartCompleted, MultipartCreated, ObjectAclSet, ObjectDeleted, ObjectLockSet, ObjectPut, Origin, OwnershipSet,
    PackageFinalized, PartUploaded, Payload, PublicAccessBlockSet, Retention, RetentionBypassed, RetentionSet,
    Retrieved, TaggingSet, UploadRef, VersionRef, VersioningSet, VersioningStatus,
};
use crate::event::{Event, EventDraft, RequestContext};
use crate::inline::{self, InlineBlob};
use crate::lifecycle::{self, Action, BucketRules, Effect, Rule};
use crate::packages::{Manifest, Sealed};
use crate::policy::{Policy, PolicyKind};
use crate::queries::Reads;
use crate::retention;
use crate::sqlite::{Registry, Writer};
pub use crate::state::NULL_VERSION;
use crate::state::{Bucket, ObjectVersion, Upload};

/// Who is making a change: the actor recorded on the event and the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key, or a system actor such as `lifecycle`.
    pub actor: String,
    /// The request.
    pub context: RequestContext,
}

impl Caller {
    /// A system actor with no request (the lifecycle sweeper, maintenance commands).
    #[must_use]
    pub fn system(actor: &str) -> Self {
        Self { actor: actor.to_owned(), context: RequestContext::default() }
    }

    pub(crate) fn draft(&self, payload: Payload) -> EventDraft {
        EventDraft { payload, actor: self.actor.clone(), context: self.context.clone() }
    }
}

/// A condition on the current version that a write requires (conditional PUT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// `If-Match`: the current version's ETag must be this.
    pub if_match: Option<String>,
    /// `If-None-Match: *`: there must be no current version.
    pub if_none_match_any: bool,
}

/// A new version to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// The version; its `version_id` is used only if the bucket has versioning enabled,
    /// otherwise it becomes `null`. Retention defaults from the bucket when absent.
    pub put: ObjectPut,
    /// A condition on the current version.
    pub condition: WriteCondition,
    /// How the caller placed the blobs of this version in the store (after which deletion
    /// epoch, or under which pin); `None` when it placed none and names blobs already
    /// referenced (a copy, a completion). See [`crate::deletions`].
    pub placement: Option<Placement>,
    /// The version's ACL, its owner and its grants besides the owner's full control,
    /// recorded with it (`v1.object.acl.set`, in the same transaction): empty on most
    /// writes, and only on a bucket whose ownership enables ACLs.
    pub acl: ObjectAcl,
}

/// A version that was recorded: its event (the receipt) and the id it got, which is `null`
/// unless the bucket has versioning enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecorded {
    /// The `v1.object.put` or `v1.multipart.completed` event.
    pub event: Event,
    /// The version id.
    pub version_id: String,
    /// Retention applied (given, or the bucket's default).
    pub retention: Option<Retention>,
}

/// What a DeleteObject did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed or the delete marker created, if any.
    pub version_id: Option<String>,
    /// Whether that version is a delete marker.
    pub delete_marker: bool,
    /// The event, when anything changed.
    pub event: Option<Event>,
}

fn require_bucket(conn: &dyn Reads, name: &str) -> Result<Bucket> {
    conn.bucket(name)?.ok_or_else(|| Error::NoSuchBucket(name.to_owned()))
}

fn require_lock_bucket(conn: &dyn Reads, name: &str) -> Result<Bucket> {
    let bucket = require_bucket(conn, name)?;
    if !bucket.object_lock_enabled {
        return Err(Error::ObjectLockNotEnabled { bucket: name.to_owned() });
    }
    Ok(bucket)
}

/// Resolves an optional version id to a version, as GET, tagging and retention calls do.
fn require_version(conn: &dyn Reads, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectVersion> {
    match version_id {
        Some(id) => conn.version(bucket, key, id)?.ok_or(Error::NoSuchVersion),
        None => conn.latest_version(bucket, key)?.filter(|v| !v.is_delete_marker).ok_or(Error::NoSuchKey),
    }
}

/// An upload in progress of this bucket and key.
fn require_upload(conn: &dyn Reads, bucket: &str, key: &str, upload_id: &str) -> Result<Upload> {
    conn.upload(upload_id)?.filter(|u| u.created.bucket == bucket && u.created.key == key).ok_or(Error::NoSuchUpload)
}

fn version_ref(version: &ObjectVersion) -> VersionRef {
    VersionRef { bucket: version.bucket.clone(), key: version.key.clone(), version_id: version.version_id.clone() }
}

/// Appends a new version after the checks every write shares; used by PUT, copy and
/// multipart completion. `inline` bytes are stored after the checks, just before the event.
pub(crate) fn append_version(
    writer: &mut Writer<'_>,
    caller: &Caller,
    new: NewVersion,
    upload_id: Option<String>,
    inline: Option<&InlineBlob>,
) -> Result<VersionRecorded> {
    let NewVersion { mut put, condition, placement, mut acl } = new;
    let bucket = require_bucket(writer.views(), &put.bucket)?;
    if !acl.is_empty() {
        if !writer.views().bucket_ownership(&put.bucket)?.acls_enabled() {
            // ACLs were disabled after the upload started, or after the write was decided:
            // the bucket's owner owns what is written now, as on S3. A write that asks for
            // grants itself is refused as it would have been a moment later.
            if upload_id.is_none() && !acl.grants.is_empty() {
                return Err(Error::AclsDisabled);
            }
            acl = ObjectAcl::default();
        }
        let blocked = writer.views().public_access_block(&put.bucket)?.is_some_and(|b| b.block_public_acls);
        if blocked && acl.grants.iter().any(crate::acl::is_public) {
            return Err(Error::PublicAclBlocked);
        }
    }
    for part in &put.content.parts {
        if inline.is_none_or(|blob| blob.locator() != part.blob) {
            match deletions::check_reference(writer, &part.blob, placement) {
                // A copy that placed nothing names the blobs its source referenced when it read
                // it: unreferenced now, the source is gone, which is not gc's doing.
                Err(Error::BlobDeleted { .. }) if placement.is_none() && matches!(put.origin, Origin::Copy { .. }) => {
                    return Err(Error::CopySourceChanged);
                }
                checked => checked?,
            }
        }
    }
    writer.views().refuse_sealed(&put.bucket, &put.key)?;
    if condition != WriteCondition::default() {
        let current = writer.views().latest_version(&put.bucket, &put.key)?.filter(|v| !v.is_delete_marker);
        if condition.if_none_match_any && current.is_some() {
            return Err(Error::PreconditionFailed);
        }
        if let Some(expected) = &condition.if_match {
            let matches = current.as_ref().is_some_and(|v| etag_matches(expected, &v.content.etag));
            if !matches {
                return Err(if current.is_none() { Error::NoSuchKey } else { Error::PreconditionFailed });
            }
        }
    }
    if !bucket.versioning_enabled() {
        put.version_id = NULL_VERSION.to_owned();
    }
    if put.retention.is_none()
        && let Some(default) = &bucket.default_retention
    {
        put.retention = Some(retention::default_retention(default, writer.now()));
    }
    let (version_id, retention, key) = (put.version_id.clone(), put.retention, put.key.clone());
    let payload = match upload_id {
        Some(upload_id) => Payload::MultipartCompleted(MultipartCompleted { upload_id, version: put }),
        None => Payload::ObjectPut(put),
    };
    if let Some(blob) = inline {
        inline::store_for(writer, blob)?;
    }
    let event = writer.append(caller.draft(payload))?;
    if !acl.is_empty() {
        let version = VersionRef { bucket: bucket.name.clone(), key, version_id: version_id.clone() };
        let set = ObjectAclSet { version, grants: acl.grants, owner: acl.owner };
        writer.append(caller.draft(Payload::ObjectAclSet(set)))?;
    }
    Ok(VersionRecorded { event, version_id, retention })
}

/// Compares ETags the way `If-Match` does: quotes are optional, `*` matches anything.
#[must_use]
pub fn etag_matches(condition: &str, etag: &str) -> bool {
    let trim = |s: &str| s.trim().trim_start_matches("W/").trim_matches('"').to_owned();
    condition.split(',').any(|c| c.trim() == "*" || trim(c) == trim(etag))
}

impl Registry {
    /// Creates a bucket (`v1.bucket.created`).
    ///
    /// # Errors
    /// [`Error::BucketAlreadyExists`].
    pub async fn create_bucket(
        &self,
        caller: Caller,
        name: &str,
        region: &str,
        object_lock_enabled: bool,
    ) -> Result<Event> {
        self.create_bucket_with(caller, name, region, object_lock_enabled, None, Vec::new()).await
    }

    /// Creates a bucket (`v1.bucket.created`) with the object ownership and ACL grants its
    /// request asked for (`v1.bucket.ownership.set`, `v1.bucket.acl.set`), in one transaction:
    /// a refused ACL creates nothing.
    ///
    /// # Errors
    /// [`Error::BucketAlreadyExists`], [`Error::AclWithEnforcedOwnership`] for grants on a
    /// bucket whose ownership disables ACLs.
    pub async fn create_bucket_with(
        &self,
        caller: Caller,
        name: &str,
        region: &str,
        object_lock_enabled: bool,
        ownership: Option<Ownership>,
        grants: Vec<AclEntry>,
    ) -> Result<Event> {
        if !grants.is_empty() && !ownership.unwrap_or_default().acls_enabled() {
            return Err(Error::AclWithEnforcedOwnership);
        }
        let payload = Payload::BucketCreated(BucketCreated {
            bucket: name.to_owned(),
            region: region.to_owned(),
            object_lock_enabled,
        });
        let name = name.to_owned();
        self.write(move |writer| {
            if writer.views().bucket(&name)?.is_some() {
                return Err(Error::BucketAlreadyExists(name));
            }
            let created = writer.append(caller.draft(payload))?;
            if let Some(ownership) = ownership.and_then(Ownership::name) {
                let set = OwnershipSet { bucket: name.clone(), ownership: ownership.to_owned() };
                writer.append(caller.draft(Payload::OwnershipSet(set)))?;
            }
            if !grants.is_empty() {
                writer.append(caller.draft(Payload::BucketAclSet(BucketAclSet { bucket: name, grants })))?;
            }
            Ok(created)
        })
        .await
    }

    /// Sets the bucket's object ownership (`v1.bucket.ownership.set`). S3 refuses
    /// `BucketOwnerEnforced` while the bucket's ACL grants others, and records nothing.
    ///
    /// # Errors
    /// [`Error::AclWithEnforcedOwnership`], [`Error::NoSuchBucket`].
    pub async fn set_ownership(&self, caller: Caller, bucket: &str, ownership: Ownership) -> Result<Event> {
        let bucket = bucket.to_owned();
        let Some(name) = ownership.name() else {
            return Err(Error::AclWithEnforcedOwnership);
        };
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if !ownership.acls_enabled() && !writer.views().bucket_acl(&bucket)?.is_empty() {
                return Err(Error::AclWithEnforcedOwnership);
            }
            let set = OwnershipSet { bucket, ownership: name.to_owned() };
            writer.append(caller.draft(Payload::OwnershipSet(set)))
        })
        .await
    }

    /// Deletes the bucket's ownership controls (`v1.bucket.ownership.deleted`): ACLs are then
    /// enabled, as with `ObjectWriter`. Nothing is recorded when they were deleted already.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_ownership(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if writer.views().bucket_ownership(&bucket)? == Ownership::Unset {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::OwnershipDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Sets the bucket's ACL (`v1.bucket.acl.set`): its grants besides the owner's full
    /// control. S3 refuses it while the bucket's ownership disables ACLs, and a public one
    /// while its public access block says `BlockPublicAcls`, and records nothing.
    ///
    /// # Errors
    /// [`Error::AclsDisabled`], [`Error::PublicAclBlocked`], [`Error::NoSuchBucket`].
    pub async fn set_bucket_acl(&self, caller: Caller, bucket: &str, grants: Vec<AclEntry>) -> Result<Event> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if !writer.views().bucket_ownership(&bucket)?.acls_enabled() {
                return Err(Error::AclsDisabled);
            }
            let blocked = writer.views().public_access_block(&bucket)?.is_some_and(|b| b.block_public_acls);
            if blocked && grants.iter().any(crate::acl::is_public) {
                return Err(Error::PublicAclBlocked);
            }
            writer.append(caller.draft(Payload::BucketAclSet(BucketAclSet { bucket, grants })))
        })
        .await
    }

    /// Deletes an empty bucket (`v1.bucket.deleted`).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::BucketNotEmpty`] while any version, delete marker or
    /// upload remains.
    pub async fn delete_bucket(&self, caller: Caller, name: &str) -> Result<Event> {
        let name = name.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &name)?;
            if !writer.views().bucket_is_empty(&name)? {
                return Err(Error::BucketNotEmpty(name));
            }
            writer.append(caller.draft(Payload::BucketDeleted(BucketRef { bucket: name })))
        })
        .await
    }

    /// Enables or suspends versioning (`v1.bucket.versioning.set`).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`]; [`Error::VersioningRequiredByObjectLock`] when suspending an
    /// Object Lock bucket.
    pub async fn set_versioning(&self, caller: Caller, bucket: &str, status: VersioningStatus) -> Result<Event> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            let current = require_bucket(writer.views(), &bucket)?;
            if current.object_lock_enabled && status == VersioningStatus::Suspended {
                return Err(Error::VersioningRequiredByObjectLock { bucket });
            }
            writer.append(caller.draft(Payload::VersioningSet(VersioningSet { bucket, status })))
        })
        .await
    }

    /// Sets the bucket's Object Lock configuration (`v1.bucket.object_lock.set`), turning
    /// Object Lock on for a bucket created without it, as S3 does since 2023, once its
    /// versioning is `Enabled` (for good: its versioning can no longer be suspended).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`]; [`Error::ObjectLockNeedsVersioning`] when the bucket has no
    /// Object Lock yet and its versioning is not `Enabled`.
    pub async fn set_object_lock(&self, caller: Caller, set: ObjectLockSet) -> Result<Event> {
        self.write(move |writer| {
            let bucket = require_bucket(writer.views(), &set.bucket)?;
            if !bucket.object_lock_enabled && !bucket.versioning_enabled() {
                return Err(Error::ObjectLockNeedsVersioning { bucket: set.bucket });
            }
            writer.append(caller.draft(Payload::ObjectLockSet(set)))
        })
        .await
    }

    /// Records a new object version (`v1.object.put`), checking the write condition and
    /// applying the bucket's versioning and default retention.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::PreconditionFailed`], [`Error::NoSuchKey`] (If-Match
    /// on a missing key); [`Error::BlobDeleted`] when gc may have taken a blob the write
    /// placed, [`Error::CopySourceChanged`] when a copy's source went after the copy read it.
    pub async fn put_object(&self, caller: Caller, new: NewVersion) -> Result<VersionRecorded> {
        self.write(move |writer| append_version(writer, &caller, new, None, None)).await
    }

    /// Records a new object version whose bytes are `blob` (`v1.object.put`, as
    /// [`Registry::put_object`] does), storing the bytes in the same transaction. The
    /// version's only part must name `blob.locator()`.
    ///
    /// # Errors
    /// As [`Registry::put_object`]; nothing is stored when the version is refused.
    pub async fn put_inline_object(
        &self,
        caller: Caller,
        new: NewVersion,
        blob: InlineBlob,
    ) -> Result<VersionRecorded> {
        debug_assert!(new.put.content.parts.iter().all(|part| part.blob == blob.locator()));
        self.write(move |writer| append_version(writer, &caller, new, None, Some(&blob))).await
    }

    /// Deletes the current version (making a delete marker where versioning asks for one)
    /// or, with `version_id`, one version for good.
    ///
    /// `marker_version_id` is the id a delete marker gets in a versioning-enabled bucket.
    /// `if_match` (`If-Match`: an ETag, or `*`) makes the delete conditional on the key's
    /// current version, as S3's conditional deletes are.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`]; [`Error::ObjectLocked`] when the version is protected and the
    /// caller may not bypass; [`Error::NoSuchKey`] or [`Error::PreconditionFailed`] when
    /// `if_match` does not hold.
    pub async fn delete_object(
        &self,
        caller: Caller,
        target: VersionRef,
        by_id: bool,
        marker_version_id: String,
        bypass_governance: bool,
        if_match: Option<String>,
    ) -> Result<Deleted> {
        self.write(move |writer| {
            delete_object(writer, &caller, target, by_id, marker_version_id, bypass_governance, if_match.as_deref())
        })
        .await
    }

    /// Several deletes in one transaction; each gets its own outcome, as DeleteObjects
    /// reports per key.
    ///
    /// # Errors
    /// Only failures of the whole commit; per-key refusals are in the returned list.
    pub async fn delete_objects(
        &self,
        caller: Caller,
        targets: Vec<(VersionRef, bool, String, Option<String>)>,
        bypass_governance: bool,
    ) -> Result<Vec<Result<Deleted>>> {
        self.write(move |writer| {
            Ok(targets
                .into_iter()
                .map(|(target, by_id, marker, if_match)| {
                    delete_object(writer, &caller, target, by_id, marker, bypass_governance, if_match.as_deref())
                })
                .collect())
        })
        .await
    }

    /// Replaces a version's tags (`v1.object.tagging.set`); returns the version id.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`] (a delete marker holds no tags, current or named by id).
    pub async fn set_tagging(
        &self,
        caller: Caller,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
        tags: v1::StringMap,
    ) -> Result<String> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            writer.views().refuse_sealed(&bucket, &key)?;
            // Unlike a read, a current delete marker is not "no such key" here (AWS answers 405).
            let version = match version_id.as_deref() {
                Some(id) => writer.views().version(&bucket, &key, id)?.ok_or(Error::NoSuchVersion)?,
                None => writer.views().latest_version(&bucket, &key)?.ok_or(Error::NoSuchKey)?,
            };
            if version.is_delete_marker {
                return Err(Error::DeleteMarker);
            }
            writer.append(caller.draft(Payload::TaggingSet(TaggingSet { version: version_ref(&version), tags })))?;
            Ok(version.version_id)
        })
        .await
    }

    /// Records a version's data keys wrapped anew (`v1.object.keys.rewrapped`), if each part
    /// it names still has the wrapped key it was read with (`previous`, in the same order): a
    /// version deleted or changed since is left alone. Returns whether the event was appended.
    /// Retention and package seals allow it: the bytes and their digests stay the same.
    ///
    /// # Errors
    /// The engine's errors.
    pub async fn rewrap_keys(
        &self,
        caller: Caller,
        rewrapped: KeysRewrapped,
        previous: Vec<v1::WrappedKey>,
    ) -> Result<bool> {
        self.write(move |writer| {
            let v = &rewrapped.version;
            let Some(version) = writer.views().version(&v.bucket, &v.key, &v.version_id)? else {
                return Ok(false);
            };
            let unchanged = rewrapped.parts.len() == previous.len()
                && rewrapped.parts.iter().zip(&previous).all(|(new, old)| {
                    usize::try_from(new.part)
                        .ok()
                        .and_then(|i| version.content.parts.get(i))
                        .is_some_and(|part| part.blob == new.blob && part.wrapped_key.as_ref() == Some(old))
                });
            if !unchanged || rewrapped.parts.is_empty() {
                return Ok(false);
            }
            writer.append(caller.draft(Payload::KeysRewrapped(rewrapped)))?;
            Ok(true)
        })
        .await
    }

    /// Records `key_id` as the master key the gateways sharing this registry wrap SSE-S3 data
    /// keys with (`v1.encryption.master_key.set`), if the recorded one is still `replaces`
    /// (`None`: none is recorded yet). Returns the key recorded afterwards: `key_id`, or the
    /// one another gateway recorded first.
    ///
    /// # Errors
    /// The engine's errors.
    pub async fn record_master_key(&self, caller: Caller, key_id: String, replaces: Option<String>) -> Result<String> {
        self.write(move |writer| {
            let recorded = writer.views().master_key()?;
            if recorded.as_deref() == Some(key_id.as_str()) || recorded != replaces {
                return Ok(recorded.unwrap_or(key_id));
            }
            writer.append(caller.draft(Payload::MasterKeySet(MasterKeySet { key_id: key_id.clone() })))?;
            Ok(key_id)
        })
        .await
    }

    /// Sets, extends, shortens or lifts a version's retention (`v1.retention.set`).
    ///
    /// # Errors
    /// [`Error::ObjectLockNotEnabled`] on a bucket without Object Lock; [`Error::NoSuchKey`],
    /// [`Error::NoSuchVersion`]; [`Error::ObjectLocked`] when the change is not allowed.
    pub async fn set_retention(
        &self,
        caller: Caller,
        target: VersionRef,
        by_id: bool,
        requested: Option<Retention>,
        bypass_governance: bool,
    ) -> Result<Event> {
        self.write(move |writer| {
            require_lock_bucket(writer.views(), &target.bucket)?;
            writer.views().refuse_sealed(&target.bucket, &target.key)?;
            let id = by_id.then_some(target.version_id.as_str());
            let version = require_version(writer.views(), &target.bucket, &target.key, id)?;
            // A marker has no bytes to keep; locked, it could never be deleted to bring its
            // object back. What an earlier version of this check let through may still be
            // lifted, as any retention may.
            if version.is_delete_marker && requested.is_some() {
                return Err(Error::DeleteMarker);
            }
            if !retention::may_change_retention(version.retention, requested, writer.now(), bypass_governance) {
                return Err(Error::ObjectLocked);
            }
            let weakened = !retention::may_change_retention(version.retention, requested, writer.now(), false);
            if weakened {
                record_bypass(writer, &caller, &version, BypassedFor::RetentionChange)?;
            }
            writer.append(caller.draft(Payload::RetentionSet(RetentionSet {
                version: version_ref(&version),
                retention: requested,
                bypass_governance: weakened,
            })))
        })
        .await
    }

    /// Switches a version's legal hold (`v1.legal_hold.set`).
    ///
    /// # Errors
    /// [`Error::ObjectLockNotEnabled`] on a bucket without Object Lock; [`Error::NoSuchKey`],
    /// [`Error::NoSuchVersion`]; [`Error::DeleteMarker`] to put one on a delete marker.
    pub async fn set_legal_hold(&self, caller: Caller, target: VersionRef, by_id: bool, on: bool) -> Result<Event> {
        self.write(move |writer| {
            require_lock_bucket(writer.views(), &target.bucket)?;
            writer.views().refuse_sealed(&target.bucket, &target.key)?;
            let id = by_id.then_some(target.version_id.as_str());
            let version = require_version(writer.views(), &target.bucket, &target.key, id)?;
            // Lifting one (set before this check existed) stays possible.
            if version.is_delete_marker && on {
                return Err(Error::DeleteMarker);
            }
            writer.append(caller.draft(Payload::LegalHoldSet(LegalHoldSet { version: version_ref(&version), on })))
        })
        .await
    }

    /// Sets an object version's ACL grants (`v1.object.acl.set`): the version `target` names
    /// when `by_id`, else the latest. Its owner stays. Refused as
    /// [`Registry::set_bucket_acl`] is.
    ///
    /// # Errors
    /// [`Error::AclsDisabled`], [`Error::PublicAclBlocked`], [`Error::NoSuchKey`],
    /// [`Error::NoSuchVersion`], [`Error::DeleteMarker`].
    pub async fn set_object_acl(
        &self,
        caller: Caller,
        target: VersionRef,
        by_id: bool,
        grants: Vec<AclEntry>,
    ) -> Result<Event> {
        self.write(move |writer| {
            let views = writer.views();
            require_bucket(views, &target.bucket)?;
            // An ACL can make a sealed member public: a change like any other.
            views.refuse_sealed(&target.bucket, &target.key)?;
            let id = by_id.then_some(target.version_id.as_str());
            let version = require_version(views, &target.bucket, &target.key, id)?;
            if version.is_delete_marker {
                return Err(Error::DeleteMarker);
            }
            if !views.bucket_ownership(&target.bucket)?.acls_enabled() {
                return Err(Error::AclsDisabled);
            }
            let blocked = views.public_access_block(&target.bucket)?.is_some_and(|b| b.block_public_acls);
            if blocked && grants.iter().any(crate::acl::is_public) {
                return Err(Error::PublicAclBlocked);
            }
            let owner = views.object_acl(&version.bucket, &version.key, &version.version_id)?.owner;
            writer.append(caller.draft(Payload::ObjectAclSet(ObjectAclSet {
                version: version_ref(&version),
                grants,
                owner,
            })))
        })
        .await
    }

    /// Starts a multipart upload (`v1.multipart.created`).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn create_multipart_upload(&self, caller: Caller, created: MultipartCreated) -> Result<Event> {
        self.write(move |writer| {
            require_bucket(writer.views(), &created.bucket)?;
            writer.views().refuse_sealed(&created.bucket, &created.key)?;
            writer.append(caller.draft(Payload::MultipartCreated(created)))
        })
        .await
    }

    /// Records an uploaded part (`v1.multipart.part.uploaded`) whose blob the caller placed
    /// in the store as `placement` tells.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`] when the upload was completed or aborted meanwhile, or is not
    /// an upload of the part's bucket and key; [`Error::BlobDeleted`] when gc may have taken
    /// the part's blob.
    pub async fn upload_part(&self, caller: Caller, part: PartUploaded, placement: Placement) -> Result<Event> {
        self.write(move |writer| {
            require_upload(writer.views(), &part.bucket, &part.key, &part.upload_id)?;
            writer.views().refuse_sealed(&part.bucket, &part.key)?;
            deletions::check_reference(writer, &part.part.blob, Some(placement))?;
            writer.append(caller.draft(Payload::PartUploaded(part)))
        })
        .await
    }

    /// Completes an upload (`v1.multipart.completed`): the version appears and the upload
    /// ends. `expected_parts` are the (number, ETag) pairs the gateway composed the object
    /// from; if any changed since it read them, the completion is refused.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`], [`Error::InvalidPart`], and those of [`Registry::put_object`].
    pub async fn complete_multipart_upload(
        &self,
        caller: Caller,
        upload_id: String,
        expected_parts: Vec<(u32, String)>,
        new: NewVersion,
    ) -> Result<VersionRecorded> {
        self.write(move |writer| {
            require_upload(writer.views(), &new.put.bucket, &new.put.key, &upload_id)?;
            let stored = writer.views().parts(&upload_id, 0, usize::MAX)?;
            for (number, etag) in &expected_parts {
                let same = stored.iter().any(|p| p.number == *number && p.part.etag == *etag);
                if !same {
                    return Err(Error::InvalidPart { number: *number });
                }
            }
            append_version(writer, &caller, new, Some(upload_id), None)
        })
        .await
    }

    /// Aborts an upload (`v1.multipart.aborted`).
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub async fn abort_multipart_upload(&self, caller: Caller, upload: UploadRef) -> Result<Event> {
        self.write(move |writer| {
            require_upload(writer.views(), &upload.bucket, &upload.key, &upload.upload_id)?;
            writer.append(caller.draft(Payload::MultipartAborted(upload)))
        })
        .await
    }

    /// Records a read without waiting for its commit (`v1.object.retrieved`); `on_failure`
    /// hears if it could not be recorded.
    ///
    /// # Errors
    /// [`Error::WriterStopped`].
    pub fn record_retrieval(
        &self,
        caller: Caller,
        retrieved: Retrieved,
        on_failure: impl FnOnce(Error) + Send + 'static,
    ) -> Result<()> {
        self.write_detached(
            move |writer| writer.append(caller.draft(Payload::Retrieved(retrieved))).map(drop),
            on_failure,
        )
    }

    /// Records a read that refused damaged bytes (`v1.blob.corrupt`) without waiting for its
    /// commit; `on_failure` hears if it could not be recorded.
    ///
    /// # Errors
    /// [`Error::WriterStopped`].
    pub fn record_corruption(
        &self,
        caller: Caller,
        corrupt: BlobCorrupt,
        on_failure: impl FnOnce(Error) + Send + 'static,
    ) -> Result<()> {
        self.write_detached(
            move |writer| writer.append(caller.draft(Payload::BlobCorrupt(corrupt))).map(drop),
            on_failure,
        )
    }
}

/// Appends the `v1.retention.bypassed` event of a permitted bypass of GOVERNANCE retention.
fn record_bypass(writer: &mut Writer<'_>, caller: &Caller, version: &ObjectVersion, action: BypassedFor) -> Result<()> {
    if let Some(retention) = version.retention {
        let bypassed = RetentionBypassed { version: version_ref(version), retention, action };
        writer.append(caller.draft(Payload::RetentionBypassed(bypassed)))?;
    }
    Ok(())
}

/// Whether the event that created `version`, read from the log rather than the views, gave it
/// COMPLIANCE retention still in force. Nothing shortens COMPLIANCE retention, so that alone
/// protects the version, whatever views edited behind the log's back say. (Retention set
/// later is in the views only; `verify` and the gateway's periodic check of the views catch
/// a deletion that an edit of it allowed.) One lookup by sequence, on deletions only.
fn compliance_from_log(writer: &Writer<'_>, version: &ObjectVersion) -> Result<bool> {
    let Some(event) = writer.logged_event(version.sequence)? else {
        return Ok(false);
    };
    let put = match event.decode()? {
        Payload::ObjectPut(put) => put,
        Payload::MultipartCompleted(completed) => completed.version,
        _ => return Ok(false),
    };
    let same = put.bucket == version.bucket && put.key == version.key && put.version_id == version.version_id;
    Ok(same && put.retention.is_some_and(|r| r.mode == v1::LockMode::Compliance && r.retain_until > writer.now()))
}

fn delete_object(
    writer: &mut Writer<'_>,
    caller: &Caller,
    target: VersionRef,
    by_id: bool,
    marker_version_id: String,
    bypass_governance: bool,
    if_match: Option<&str>,
) -> Result<Deleted> {
    let bucket = require_bucket(writer.views(), &target.bucket)?;
    writer.views().refuse_sealed(&target.bucket, &target.key)?;
    if let Some(expected) = if_match {
        // Evaluated against the key's current version, as S3 does: none (or a delete marker)
        // is NoSuchKey, another ETag is a failed precondition.
        let current = writer.views().latest_version(&target.bucket, &target.key)?.filter(|v| !v.is_delete_marker);
        let Some(current) = current else { return Err(Error::NoSuchKey) };
        if !etag_matches(expected, &current.content.etag) {
            return Err(Error::PreconditionFailed);
        }
    }
    let unchanged = Deleted { version_id: None, delete_marker: false, event: None };
    if by_id || bucket.versioning.is_none() {
        // Removing a version for good: by id, or the null version of an unversioned bucket.
        let id = if by_id { target.version_id.as_str() } else { NULL_VERSION };
        let Some(version) = writer.views().version(&target.bucket, &target.key, id)? else {
            // S3 answers success for a version that is not there.
            return Ok(Deleted { version_id: by_id.then(|| target.version_id.clone()), ..unchanged });
        };
        if !retention::may_delete(version.retention, version.legal_hold, writer.now(), bypass_governance)
            || compliance_from_log(writer, &version)?
        {
            return Err(Error::ObjectLocked);
        }
        let used_bypass = !retention::may_delete(version.retention, version.legal_hold, writer.now(), false);
        if used_bypass {
            record_bypass(writer, caller, &version, BypassedFor::Delete)?;
        }
        let event = writer.append(caller.draft(Payload::ObjectDeleted(ObjectDeleted {
            version: version_ref(&version),
            bypass_governance: used_bypass,
        })))?;
        return Ok(Deleted {
            version_id: Some(version.version_id),
            delete_marker: version.is_delete_marker,
            event: Some(event),
        });
    }
    // Versioned bucket, no id: a delete marker becomes the current version. Suspended
    // buckets give it the null id, replacing a null version (which must not be locked).
    let marker_id = if bucket.versioning_enabled() { marker_version_id } else { NULL_VERSION.to_owned() };
    if let Some(null) = writer.views().version(&target.bucket, &target.key, &marker_id)? {
        if !retention::may_delete(null.retention, null.legal_hold, writer.now(), bypass_governance)
            || compliance_from_log(writer, &null)?
        {
            return Err(Error::ObjectLocked);
        }
        if !retention::may_delete(null.retention, null.legal_hold, writer.now(), false) {
            record_bypass(writer, caller, &null, BypassedFor::Delete)?;
        }
    }
    let marker = VersionRef { version_id: marker_id.clone(), ..target };
    let event = writer.append(caller.draft(Payload::DeleteMarkerCreated(marker)))?;
    Ok(Deleted { version_id: Some(marker_id), delete_marker: true, event: Some(event) })
}

impl Registry {
    /// Replaces the bucket's lifecycle rules (`v1.bucket.lifecycle.set`). The gateway has
    /// validated them.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn set_lifecycle(&self, caller: Caller, bucket: &str, rules: Vec<Rule>) -> Result<Event> {
        let bucket = bucket.to_owned();
        // Rules hold strings, integers and booleans only.
        let rules = serde_json::to_value(rules).expect("lifecycle rules always serialise");
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            writer.append(caller.draft(Payload::LifecycleSet(LifecycleSet { bucket, rules })))
        })
        .await
    }

    /// Removes the bucket's lifecycle rules (`v1.bucket.lifecycle.deleted`); nothing is
    /// recorded when it has none.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_lifecycle(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            if require_bucket(writer.views(), &bucket)?.lifecycle.is_none() {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::LifecycleDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Sets the bucket's policy (`v1.bucket.policy.set`) after checking it as a bucket
    /// policy: S3 refuses a malformed one, and a public one while the bucket's public access
    /// block says `BlockPublicPolicy`, and records nothing.
    ///
    /// # Errors
    /// [`Error::MalformedPolicy`], [`Error::PublicPolicyBlocked`], [`Error::NoSuchBucket`].
    pub async fn set_bucket_policy(&self, caller: Caller, bucket: &str, policy: String) -> Result<Event> {
        let public = Policy::parse(&policy, PolicyKind::Bucket)
            .map_err(|refused| Error::MalformedPolicy(refused.0))?
            .is_public();
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if public && writer.views().public_access_block(&bucket)?.is_some_and(|b| b.block_public_policy) {
                return Err(Error::PublicPolicyBlocked);
            }
            writer.append(caller.draft(Payload::BucketPolicySet(BucketPolicySet { bucket, policy })))
        })
        .await
    }

    /// Removes the bucket's policy (`v1.bucket.policy.deleted`); nothing is recorded when
    /// it has none, and S3 answers the same.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_bucket_policy(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if writer.views().bucket_policy(&bucket)?.is_none() {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::BucketPolicyDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Sets the bucket's public access block (`v1.bucket.public_access_block.set`).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn set_public_access_block(&self, caller: Caller, block: PublicAccessBlockSet) -> Result<Event> {
        self.write(move |writer| {
            require_bucket(writer.views(), &block.bucket)?;
            writer.append(caller.draft(Payload::PublicAccessBlockSet(block)))
        })
        .await
    }

    /// Removes the bucket's public access block (`v1.bucket.public_access_block.deleted`);
    /// nothing is recorded when it has none.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_public_access_block(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if writer.views().public_access_block(&bucket)?.is_none() {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::PublicAccessBlockDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Sets the bucket's CORS configuration (`v1.bucket.cors.set`) after checking it as S3
    /// does: a refused one records nothing.
    ///
    /// # Errors
    /// [`Error::InvalidCors`], [`Error::NoSuchBucket`].
    pub async fn set_cors(&self, caller: Caller, cors: CorsSet) -> Result<Event> {
        crate::cors::check(&cors.rules).map_err(|refused| Error::InvalidCors(refused.0))?;
        self.write(move |writer| {
            require_bucket(writer.views(), &cors.bucket)?;
            writer.append(caller.draft(Payload::CorsSet(cors)))
        })
        .await
    }

    /// Sets the bucket's tags (`v1.bucket.tagging.set`), replacing those it had; the gateway
    /// checked them as S3 does.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn set_bucket_tagging(&self, caller: Caller, tagging: BucketTaggingSet) -> Result<Event> {
        self.write(move |writer| {
            require_bucket(writer.views(), &tagging.bucket)?;
            writer.append(caller.draft(Payload::BucketTaggingSet(tagging)))
        })
        .await
    }

    /// Sets the bucket's default encryption (`v1.bucket.encryption.set`), replacing any before;
    /// the gateway checked the rule.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn set_bucket_encryption(&self, caller: Caller, encryption: BucketEncryptionSet) -> Result<Event> {
        self.write(move |writer| {
            require_bucket(writer.views(), &encryption.bucket)?;
            writer.append(caller.draft(Payload::BucketEncryptionSet(encryption)))
        })
        .await
    }

    /// Removes the bucket's default encryption (`v1.bucket.encryption.deleted`); nothing is
    /// recorded when it has none.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_bucket_encryption(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if writer.views().bucket_encryption(&bucket)?.is_none() {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::BucketEncryptionDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Removes the bucket's tags (`v1.bucket.tagging.deleted`); nothing is recorded when it
    /// has none.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_bucket_tagging(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if writer.views().bucket_tags(&bucket)?.is_none() {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::BucketTaggingDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Removes the bucket's CORS configuration (`v1.bucket.cors.deleted`); nothing is
    /// recorded when it has none.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_cors(&self, caller: Caller, bucket: &str) -> Result<Option<Event>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            require_bucket(writer.views(), &bucket)?;
            if writer.views().bucket_cors(&bucket)?.is_none() {
                return Ok(None);
            }
            writer.append(caller.draft(Payload::CorsDeleted(BucketRef { bucket }))).map(Some)
        })
        .await
    }

    /// Applies actions of a lifecycle plan made outside the writer. Each action is applied
    /// only if planning its key again, inside this transaction at the writer's time, still
    /// asks for it: a version put under legal hold, or a new version written, since the plan
    /// was made is left alone. Each applied action appends `v1.lifecycle.applied` and then its
    /// effect's event. `new_id` names the delete markers it creates.
    ///
    /// Returns the actions applied.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`]; failures of the whole commit.
    pub async fn apply_lifecycle(
        &self,
        caller: Caller,
        bucket: &str,
        actions: Vec<Action>,
        day_ms: i64,
        new_id: impl Fn() -> String + Send + 'static,
    ) -> Result<Vec<Action>> {
        let bucket = bucket.to_owned();
        self.write(move |writer| {
            let state = require_bucket(writer.views(), &bucket)?;
            let rules = lifecycle::rules_of(&state)?;
            let rules = BucketRules { name: &bucket, rules: &rules, versioning: state.versioning };
            let mut applied = Vec::new();
            for action in actions {
                let versions = writer.views().versions_of_key(&bucket, &action.key)?;
                let uploads: Vec<_> = writer
                    .views()
                    .uploads(&bucket, &action.key, None, None, usize::MAX)?
                    .into_iter()
                    .filter(|u| u.created.key == action.key)
                    .collect();
                let fresh = lifecycle::plan(rules, &versions, &uploads, writer.now(), day_ms);
                if !fresh.actions.contains(&action) || writer.views().lifecycle_spares_sealed(&action)? {
                    continue;
                }
                apply_action(writer, &caller, &action, &new_id)?;
                applied.push(action);
            }
            Ok(applied)
        })
        .await
    }
}

/// Appends one lifecycle action's audit event and its effect.
fn apply_action(writer: &mut Writer<'_>, caller: &Caller, action: &Action, new_id: &dyn Fn() -> String) -> Result<()> {
    let (version_id, upload_id, effect) = match &action.effect {
        Effect::AddDeleteMarker { version_id } => (Some(version_id.clone()), None, "add_delete_marker"),
        Effect::DeleteVersion { version_id } => (Some(version_id.clone()), None, "delete_version"),
        Effect::AbortUpload { upload_id } => (None, Some(upload_id.clone()), "abort_upload"),
    };
    writer.append(caller.draft(Payload::LifecycleApplied(LifecycleApplied {
        bucket: action.bucket.clone(),
        key: action.key.clone(),
        version_id: version_id.clone(),
        upload_id: upload_id.clone(),
        rule_id: action.rule_id.clone(),
        action: action.kind.as_str().to_owned(),
        effect: effect.to_owned(),
        due: action.due,
    })))?;
    let target = VersionRef { bucket: action.bucket.clone(), key: action.key.clone(), version_id: String::new() };
    match &action.effect {
        Effect::AddDeleteMarker { .. } => {
            delete_object(writer, caller, target, false, new_id(), false, None)?;
        }
        Effect::DeleteVersion { version_id } => {
            let target = VersionRef { version_id: version_id.clone(), ..target };
            delete_object(writer, caller, target, true, String::new(), false, None)?;
        }
        Effect::AbortUpload { upload_id } => {
            let upload = UploadRef { bucket: target.bucket, key: target.key, upload_id: upload_id.clone() };
            writer.append(caller.draft(Payload::MultipartAborted(upload)))?;
        }
    }
    Ok(())
}

impl Registry {
    /// Seals `manifest.prefix` of `manifest.bucket`: records `manifest_object` (a version of
    /// the manifest key whose bytes, already in the blob store, are `manifest.encode()`) and
    /// `v1.package.finalized`, in one transaction. `placement` says how the manifest's blob
    /// was placed in the store: after reading a deletion epoch, or again under a pin once gc
    /// had taken it ([`deletions`]).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`]; [`Error::PackageExists`]; [`Error::Sealed`] when the prefix
    /// lies inside a sealed package; [`Error::PackageChanged`] when the current versions
    /// under the prefix are no longer the manifest's members (build it again);
    /// [`Error::ManifestKeyTaken`] when an object already exists at the manifest key;
    /// [`Error::ManifestMismatch`] when the manifest object does not hold the manifest; [`Error::BlobDeleted`] when gc may have
    /// taken the manifest's blob.
    pub async fn seal_package(
        &self,
        caller: Caller,
        manifest: Manifest,
        manifest_object: ObjectPut,
        placement: Placement,
    ) -> Result<Sealed> {
        self.write(move |writer| {
            let conn = writer.views();
            if conn.package(&manifest.name)?.is_some() {
                return Err(Error::PackageExists(manifest.name));
            }
            let key = manifest.key();
            if manifest_object.bucket != manifest.bucket || manifest_object.key != key {
                return Err(Error::ManifestMismatch);
            }
            let manifest_blake3 = blake3::hash(&manifest.encode()).to_hex().to_string();
            if manifest_object.content.blake3 != manifest_blake3 {
                return Err(Error::ManifestMismatch);
            }
            conn.refuse_sealed(&manifest.bucket, &key)?;
            if conn.manifest(&manifest.name, &manifest.bucket, &manifest.prefix)? != manifest {
                return Err(Error::PackageChanged);
            }
            let occupied = conn.latest_version(&manifest.bucket, &key)?;
            if occupied.is_some_and(|v| !v.is_delete_marker) {
                return Err(Error::ManifestKeyTaken { key });
            }
            let new = NewVersion {
                acl: ObjectAcl::default(),
                put: manifest_object,
                condition: WriteCondition::default(),
                placement: Some(placement),
            };
            let recorded = append_version(writer, &caller, new, None, None)?;
            let package = PackageFinalized {
                name: manifest.name,
                bucket: manifest.bucket,
                prefix: manifest.prefix,
                manifest_key: key,
                manifest_version_id: recorded.version_id,
                manifest_blake3,
                members: manifest.members.len() as u64,
                bytes: manifest.members.iter().map(|m| m.size).sum(),
            };
            let event = writer.append(caller.draft(Payload::PackageFinalized(package.clone())))?;
            Ok(Sealed { event, manifest_event: recorded.event, package })
        })
        .await
    }
}
