//! `artifact-store verify`: checks that the data directory is what its log says it is.
//!
//! 1. The chain: every event's payload digest, hash and link to the previous event
//!    ([`registry::log::verify_with_progress`]); the first event that does not match is named.
//!    On a shared log the checks read this host's replica, so PostgreSQL's events are walked
//!    first, each re-hashed and compared with the replica's ([`registry::Registry::check_shared_log`]):
//!    an event changed there after this host copied it is named too.
//! 2. The views and the rules ([`registry::audit`]): a snapshot of the registry (`VACUUM
//!    INTO` a temp file) is replayed from its log and its views dump compared with the stored
//!    ones, so a view row changed behind the log's back is found; each differing table is
//!    named with the key of a differing row. As it replays, every event is checked against
//!    the rules in force at its sequence (no locked version deleted or overwritten, no
//!    retention weakened beyond its mode, nothing changed under a sealed package), and the
//!    first event that breaks one is named: an event appended on the strength of edited views.
//! 3. The log still extends the newest checkpoint the gateway signed by itself, in the data
//!    folder, `registry.checkpoint_copy_dir` or `registry.checkpoint_copy_s3`
//!    ([`super::checkpoint::check_newest`]), and with
//!    `--checkpoint FILE` that signed checkpoint ([`super::checkpoint::check`]): this catches a
//!    log truncated, or rewritten whole with recomputed hashes.
//! 4. The blobs (unless `--no-blobs`): every blob the views reference must exist, and its
//!    bytes must be what the registry recorded. In the local store every blob file is
//!    re-hashed and must hash to its name (a multipart part's blob, named by its BLAKE3
//!    subtrees at its offset, is hashed there: see [`crate::outboard::BlobHasher`]). In an S3
//!    upstream, where blob names are random, each object version's blobs are streamed back in
//!    order (bounded memory): together they must hash to the version's BLAKE3, and each to its
//!    part's MD5 (its ETag), which names the blob that changed. A part of an upload in
//!    progress has only its MD5 to match. With the blobs, every data key the views record for
//!    a live version or an upload's part must unwrap with the keys here
//!    ([`check_live_keys`]): a retired master key destroyed too soon is named with the
//!    versions it leaves unreadable.
//! 5. The inline blobs (bytes of small objects kept in the registry, always checked): each
//!    must hash to its digest, and each one the views reference must exist
//!    ([`registry::inline::check`]).
//!
//! Safe beside a serving gateway: the registry is opened read-only (WAL readers never block
//! the writer) and the live database is never written. The snapshot goes to the system temp
//! directory (`TMPDIR`) and is removed afterwards.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

use anyhow::Context as _;
use futures::StreamExt as _;
use registry::audit::{self, ViewsAudit};
use registry::event::v1::{BlobPart, ObjectContent, Payload};
use registry::log::{self, ChainHead};
use registry::sqlite::{self, views};
use rusqlite::Connection;
use serde::Serialize;

use super::progress::{self, Unit};
use super::{Outcome, existing_registry, print_line};
use crate::backend::fs::FsBlobStore;
use crate::backend::s3::S3BlobStore;
use crate::backend::{BlobError, BlobId, BlobStore};
use crate::config::{Backend, Config};
use crate::crypto::{self, KeyProvider, KeyRing};
use crate::digest::Md5;
use crate::outboard::{self, BlobHasher};
use crate::rehash;
use registry::queries::Reads as _;

/// Flags of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Skip re-hashing blobs and checking that referenced blobs exist.
    #[arg(long)]
    pub no_blobs: bool,

    /// Also prove that the log extends this signed checkpoint (see `checkpoint create`).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<std::path::PathBuf>,

    /// Trust this public key (hex) for `--checkpoint` instead of the configured key's, for an
    /// auditor who does not hold the secret.
    #[arg(long, value_name = "HEX", requires = "checkpoint")]
    pub public_key: Option<String>,
}

/// Everything `verify` found; printed as text or, with `--json`, as one object.
#[derive(Debug, Serialize)]
struct Report {
    /// Whether every check passed.
    ok: bool,
    chain: ChainReport,
    views: ViewsAudit,
    /// Where the newest automatic checkpoint the log was checked against is (a file or an
    /// `s3://` object), if there is one.
    checkpoint: Option<String>,
    /// `None` with `--no-blobs`.
    blobs: Option<BlobsReport>,
    inline: registry::inline::Checked,
    /// One line per problem, each naming what is wrong.
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ChainReport {
    /// Events checked (including the first mismatch).
    events: u64,
    /// Head of the intact part of the chain.
    head_sequence: u64,
    head_hash: String,
    first_mismatch: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
struct BlobsReport {
    /// Blobs re-hashed.
    checked: u64,
    /// Their total size.
    bytes: u64,
    /// Blobs whose bytes are not the ones recorded.
    corrupt: Vec<String>,
    /// Distinct blobs the views reference.
    referenced: u64,
    /// Referenced blobs that do not exist.
    missing: Vec<String>,
    /// Blob files nothing references (not a problem: `gc` removes them).
    unreferenced: u64,
    /// Blobs under a customer's key (SSE-C), which only its owner can decrypt: their presence
    /// is checked, not their bytes.
    customer_keyed: u64,
    /// Blobs whose data key only a master key destroyed since unwraps: not read. Those of
    /// deleted versions or aborted uploads (until gc removes them) are expected after
    /// `kms rewrap`; a live version's or upload part's is also named by the keys check.
    keys_destroyed: u64,
}

/// Runs the checks and prints the report.
///
/// # Errors
///
/// No registry, or a failure to read it or the blobs (a runtime error, not a failed check).
pub async fn run(config: &Config, args: &VerifyArgs, json: bool) -> anyhow::Result<Outcome> {
    let path = existing_registry(config).await?;
    // The checks below read this host's replica of a shared log, which took each event once,
    // when it was pulled: PostgreSQL's own rows are walked and compared with it first.
    let shared_mismatch = match &config.registry.url {
        Some(_) => {
            let registry = super::open_registry(config).await?;
            let checked = registry.check_shared_log().await.context("cannot walk the shared log");
            registry.close().await;
            checked?
        }
        None => None,
    };

    let registry_path = path.clone();
    let (chain, views, inline, referenced) =
        tokio::task::spawn_blocking(move || check_registry(&registry_path)).await.context("registry checks")??;

    let mut problems = Vec::new();
    if let Some(sequence) = shared_mismatch {
        problems.push(format!(
            "shared log: event {sequence} in PostgreSQL is not the one recorded (changed, missing or out of \
             the chain since this host copied it)"
        ));
    }
    if let Some(sequence) = chain.first_mismatch {
        problems.push(format!(
            "chain: event {sequence} does not match the hash chain (intact up to event {})",
            chain.head_sequence
        ));
    }
    problems.extend(views.problems());
    problems.extend(inline.corrupt.iter().map(|id| format!("blob {id}: its bytes do not hash to its name")));
    problems.extend(inline.missing.iter().map(|id| format!("blob {id}: referenced by the registry but missing")));
    if let Some(file) = &args.checkpoint {
        problems.extend(super::checkpoint::check(config, file, args.public_key.as_deref()).await?);
    }
    let (checkpoint, found) = super::checkpoint::check_newest(config).await?;
    problems.extend(found);

    let blobs = if args.no_blobs {
        None
    } else {
        // Encrypted blobs are decrypted to be checked; `registry replay` needs no key, this does.
        let keys = KeyRing::open(&config.master_key_path())?;
        let (live, key_path) = (path.clone(), config.master_key_path());
        let unwrapped = tokio::task::spawn_blocking(move || check_live_keys(&live, KeyRing::open(&key_path)?.as_ref()));
        problems.extend(unwrapped.await.context("the data keys check")??);
        let (blobs, corrupt) = match config.storage.backend {
            Backend::Fs => {
                let store = FsBlobStore::open(&config.storage.data_dir)
                    .with_context(|| format!("cannot open the blob store in {}", config.storage.data_dir.display()))?;
                (check_blobs(&store, keys.as_ref(), &path, referenced).await?, "its bytes do not hash to its name")
            }
            Backend::S3 => {
                let store = S3BlobStore::open(&config.upstream).context("cannot set up the upstream client")?;
                let report = check_upstream_blobs(&store, keys.as_ref(), &path, referenced).await?;
                (report, "its bytes are not the ones recorded")
            }
        };
        problems.extend(blobs.corrupt.iter().map(|id| format!("blob {id}: {corrupt}")));
        problems.extend(blobs.missing.iter().map(|id| format!("blob {id}: referenced by the registry but missing")));
        Some(blobs)
    };

    let report = Report { ok: problems.is_empty(), chain, views, checkpoint, blobs, inline, problems };
    print_report(&report, json)?;
    Ok(if report.ok { Outcome::Ok } else { Outcome::CheckFailed })
}

/// Checks 1, 2 and 5; returns the blobs in a store the views reference, for check 4.
fn check_registry(path: &Path) -> anyhow::Result<(ChainReport, ViewsAudit, registry::inline::Checked, Vec<String>)> {
    let conn = sqlite::open_read_only(path).with_context(|| format!("cannot open {}", path.display()))?;
    let chain = check_chain(&conn)?;
    let views = check_views(&conn)?;
    let inline = registry::inline::check(&conn)?;
    // The stored views (not the rebuilt ones): those are what the gateway serves from.
    let referenced = referenced_blobs(&conn)?;
    Ok((chain, views, inline, referenced))
}

fn check_chain(conn: &Connection) -> anyhow::Result<ChainReport> {
    let head = ChainHead::load(conn)?;
    let bar = progress::bar("chain", head.sequence, Unit::Events);
    let verified = log::verify_with_progress(conn, |sequence| bar.set_position(sequence))?;
    bar.finish_and_clear();
    Ok(ChainReport {
        events: verified.events,
        head_sequence: verified.head.sequence,
        head_hash: hex::encode(verified.head.hash),
        first_mismatch: verified.first_mismatch,
    })
}

fn check_views(conn: &Connection) -> anyhow::Result<ViewsAudit> {
    let scratch =
        tempfile::Builder::new().prefix("artifact-store-verify-").tempdir().context("cannot create a temp dir")?;
    let bar = progress::bar("views", views::applied(conn)?, Unit::Events);
    let audit = audit::audit_views(conn, scratch.path(), |sequence| bar.set_position(sequence))
        .context("cannot replay a snapshot of the registry")?;
    bar.finish_and_clear();
    Ok(audit)
}

/// Every blob in a store the views reference, in order: inline ones are check 5's.
/// (`registry::queries` answers one blob at a time; this reads the same `blob_refs` view
/// whole.)
fn referenced_blobs(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT blob FROM blob_refs ORDER BY blob")?;
    let blobs = statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(blobs.into_iter().filter(|blob| !registry::inline::is_locator(blob)).collect())
}

/// Check 4. `referenced` was read before the blobs are listed, so each of them was committed
/// before the listing started (a version is recorded only after its blob is committed).
///
/// An encrypted blob is named by its plaintext through its data key: it is decrypted (every
/// segment must authenticate) and its plaintext's name turned into the name it must have. A
/// part's blob named by its subtrees is hashed at the offset its event recorded.
async fn check_blobs(
    store: &FsBlobStore,
    keys: Option<&KeyRing>,
    registry: &Path,
    referenced: Vec<String>,
) -> anyhow::Result<BlobsReport> {
    let registry_path = registry.to_owned();
    let recorded = tokio::task::spawn_blocking(move || recorded_parts(&sqlite::open_read_only(&registry_path)?))
        .await
        .context("registry read")??;
    let mut entries = Vec::new();
    let mut listing = store.list().await.context("cannot list blobs")?;
    while let Some(entry) = listing.next().await {
        entries.push(entry.context("cannot list blobs")?);
    }
    let mut report = BlobsReport { referenced: referenced.len() as u64, ..BlobsReport::default() };

    let referenced_set: HashSet<&str> = referenced.iter().map(String::as_str).collect();
    let total = entries.iter().map(|e| e.size).sum();
    let bar = progress::bar("blobs", total, Unit::Bytes);
    for entry in &entries {
        if recorded.get(entry.id.as_str()).is_some_and(is_customer_keyed) {
            report.customer_keyed += 1;
            continue;
        }
        if recorded.get(entry.id.as_str()).is_some_and(|part| key_destroyed(keys, part)) {
            report.keys_destroyed += 1;
            continue;
        }
        let rehashed = match recorded.get(entry.id.as_str()) {
            Some(part) if part.wrapped_key.is_some() => encrypted_name(store, keys, part).await,
            Some(part) if subtrees_name(part).is_some_and(|name| hex::encode(name) == entry.id.as_str()) => {
                name_hashed_at_offset(store, part).await
            }
            _ => store.rehash(&entry.id).await.map(|hash| Some(hash.to_hex().to_string())),
        };
        // A blob no event names (a write refused after its blob was placed, such as a failed
        // `If-None-Match`) may be encrypted under a key nothing recorded: not a problem, gc
        // removes it.
        let encrypted = recorded.get(entry.id.as_str()).is_some_and(|part| part.wrapped_key.is_some());
        let named = referenced_set.contains(entry.id.as_str()) || encrypted;
        match rehashed {
            Ok(Some(name)) if name == entry.id.as_str() => {}
            Ok(_) if !named => {}
            Ok(_) => report.corrupt.push(entry.id.to_string()),
            // Removed by a gc running meanwhile: it was unreferenced, and is gone.
            Err(BlobError::NotFound) => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot read blob {}", entry.id)),
        }
        report.checked += 1;
        report.bytes += entry.size;
        bar.inc(entry.size);
    }
    bar.finish_and_clear();

    let listed: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    report.unreferenced = listed.iter().filter(|id| !referenced_set.contains(*id)).count() as u64;
    let unlisted: Vec<&str> = referenced.iter().map(String::as_str).filter(|id| !listed.contains(id)).collect();
    report.missing = confirm_missing(store, registry, &unlisted).await?;
    Ok(report)
}

/// Every blob the log ever recorded that is not named by the plain BLAKE3 of its bytes
/// (versions' and uploads' parts, deleted ones too: their blobs stay until gc takes them), by
/// id, with the part that names it: encrypted ones, with the last wrapping of their data key
/// (`kms rewrap` may have wrapped it anew), and multipart parts with the subtrees their upload
/// recorded (a completed version's parts no longer carry them).
fn recorded_parts(conn: &Connection) -> anyhow::Result<HashMap<String, BlobPart>> {
    let mut found: HashMap<String, BlobPart> = HashMap::new();
    let mut events = conn.prepare(
        "SELECT event_type, payload FROM events
         WHERE event_type IN ('v1.object.put', 'v1.multipart.part.uploaded', 'v1.multipart.completed',
                              'v1.object.keys.rewrapped')
         ORDER BY seq",
    )?;
    let mut rows = events.query([])?;
    while let Some(row) = rows.next()? {
        let (event_type, payload): (String, Vec<u8>) = (row.get(0)?, row.get(1)?);
        let parts = match Payload::decode(&event_type, &payload).context("an event's payload")? {
            Payload::ObjectPut(put) => put.content.parts,
            Payload::MultipartCompleted(completed) => completed.version.content.parts,
            Payload::PartUploaded(uploaded) => vec![uploaded.part],
            Payload::KeysRewrapped(rewrapped) => {
                for anew in rewrapped.parts {
                    if let Some(part) = found.get_mut(&anew.blob) {
                        part.wrapped_key = Some(anew.wrapped_key);
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        for part in parts.into_iter().filter(|p| p.wrapped_key.is_some() || p.subtrees.is_some()) {
            let subtrees = found.get(&part.blob).and_then(|known| known.subtrees.clone());
            let subtrees = part.subtrees.clone().or(subtrees);
            found.insert(part.blob.clone(), BlobPart { subtrees, ..part });
        }
    }
    Ok(found)
}

/// The live data keys (of versions and of uploads' parts, in the views) that do not unwrap
/// with `keys`; customers' keys (SSE-C) are theirs. Reads no blob.
fn check_live_keys(path: &Path, keys: Option<&KeyRing>) -> anyhow::Result<Vec<String>> {
    let conn = sqlite::open_read_only(path).with_context(|| format!("cannot open {}", path.display()))?;
    let problem = |part: &BlobPart| -> Option<String> {
        let wrapped = part.wrapped_key.as_ref().filter(|w| w.key_id != crypto::CUSTOMER_KEY_ID)?;
        match keys {
            None => Some("encrypted, and there is no master key".to_owned()),
            Some(keys) => keys.unwrap(wrapped).err().map(|err| format!("its data key is unreadable: {err}")),
        }
    };
    let mut problems = Vec::new();
    let mut versions = conn.prepare(
        "SELECT bucket, key, version_id, content FROM object_versions WHERE content LIKE '%\"wrapped_key\"%'",
    )?;
    let mut rows = versions.query([])?;
    while let Some(row) = rows.next()? {
        let (bucket, key, version_id, content): (String, String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let content: ObjectContent = serde_json::from_str(&content).context("a version's content")?;
        for (number, part) in (1..).zip(&content.parts) {
            if let Some(why) = problem(part) {
                problems.push(format!("version {version_id} of {bucket}/{key}, part {number}: {why}"));
            }
        }
    }
    let mut parts =
        conn.prepare("SELECT upload_id, part_number, part FROM multipart_parts WHERE part LIKE '%\"wrapped_key\"%'")?;
    let mut rows = parts.query([])?;
    while let Some(row) = rows.next()? {
        let (upload_id, number, part): (String, u32, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let part: BlobPart = serde_json::from_str(&part).context("an upload's part")?;
        if let Some(why) = problem(&part) {
            problems.push(format!("upload {upload_id}, part {number}: {why}"));
        }
    }
    Ok(problems)
}

/// Whether `part`'s data key was wrapped by a master key that no longer exists (a retired one
/// destroyed after `kms rewrap` wrapped the live versions' keys anew).
fn key_destroyed(keys: Option<&KeyRing>, part: &BlobPart) -> bool {
    let (Some(keys), Some(wrapped)) = (keys, &part.wrapped_key) else { return false };
    crypto::is_master_key_id(&wrapped.key_id)
        && matches!(keys.unwrap(wrapped), Err(crypto::KeyRingError::UnknownKey(_)))
}

/// Whether `part` is under a customer's key (SSE-C), which `verify` does not have.
fn is_customer_keyed(part: &BlobPart) -> bool {
    part.wrapped_key.as_ref().is_some_and(|wrapped| wrapped.key_id == crypto::CUSTOMER_KEY_ID)
}

/// The name an encrypted blob must have: that of its plaintext's name ([`hasher_for`]) under
/// its data key; `None` when a segment does not authenticate.
async fn encrypted_name(
    store: &FsBlobStore,
    keys: Option<&KeyRing>,
    part: &BlobPart,
) -> Result<Option<String>, BlobError> {
    let unwrap = |keys: Option<&KeyRing>| {
        let keys = keys.ok_or_else(|| io::Error::other("the blob is encrypted and there is no master key"))?;
        keys.unwrap(part.wrapped_key.as_ref().expect("an encrypted part")).map_err(io::Error::other)
    };
    let key = unwrap(keys)?;
    let mut hasher = hasher_for(part, |name| key.blob_id(name));
    if part.size > 0 {
        let stored = store.get(&BlobId::new(part.blob.as_str()), None).await?;
        let mut plaintext = Box::pin(key.open_stream::<_, BlobError>(part.size, (0, part.size - 1), stored));
        while let Some(chunk) = plaintext.next().await {
            match chunk {
                Ok(bytes) => hasher.update(&bytes),
                Err(BlobError::Forged(_)) => return Ok(None),
                Err(err) => return Err(err),
            };
        }
    }
    Ok(hasher.finish().map(|hashed| key.blob_id(&hashed.name())))
}

/// The name the blob of a multipart part hashed at its offset must have; `None` when it is not
/// the part's length.
async fn name_hashed_at_offset(store: &FsBlobStore, part: &BlobPart) -> Result<Option<String>, BlobError> {
    let mut hasher = hasher_for(part, |name| hex::encode(name));
    if part.size > 0 {
        let mut stored = store.get(&BlobId::new(part.blob.as_str()), None).await?;
        while let Some(chunk) = stored.next().await {
            hasher.update(&chunk?);
        }
    }
    Ok(hasher.finish().map(|hashed| hex::encode(hashed.name())))
}

/// The plaintext name the subtrees `part`'s upload recorded give it
/// ([`outboard::PartHashes::blob_name`]).
fn subtrees_name(part: &BlobPart) -> Option<[u8; 32]> {
    let subtrees = part.subtrees.as_ref()?;
    outboard::part_blob_name_of_hex(subtrees.offset, &subtrees.chaining_values)
}

/// A hasher that computes what `part`'s plaintext is named by: its subtrees at the offset its
/// upload recorded, when those give the blob its name (`name_of` turns a plaintext's name into
/// a blob id); else its BLAKE3 (a whole object's blob, or a part stored before parts were
/// named by their subtrees).
fn hasher_for(part: &BlobPart, name_of: impl Fn(&[u8; 32]) -> String) -> BlobHasher {
    let by_subtrees = subtrees_name(part).is_some_and(|name| name_of(&name) == part.blob);
    let offset = part.subtrees.as_ref().filter(|_| by_subtrees).map(|subtrees| subtrees.offset);
    BlobHasher::new(offset, Some(part.size))
}

/// What an upstream object's bytes must be: its blobs in order, with their MD5s, and the
/// BLAKE3 of them all (`None` for a part of an upload in progress: MD5 only).
struct Recorded {
    parts: Vec<BlobPart>,
    blake3: Option<String>,
}

/// Every distinct byte sequence the views record (a copy shares its source's), in order, and
/// the blobs of the store's own multipart uploads in progress, which exist only once they are
/// completed (their parts are inside the upstream's upload, not objects).
fn recorded_contents(conn: &Connection) -> anyhow::Result<(Vec<Recorded>, HashSet<String>)> {
    let pending: HashSet<String> = conn.store_uploads()?.into_iter().map(|u| u.blob).collect();
    let mut seen = HashSet::new();
    let mut recorded = Vec::new();
    let mut versions = conn.prepare("SELECT content FROM object_versions WHERE is_delete_marker = 0 ORDER BY seq")?;
    for content in versions.query_map([], |row| row.get::<_, String>(0))? {
        let content: ObjectContent = serde_json::from_str(&content?).context("a version's content")?;
        // Bytes kept in the registry are check 5's; the upstream never held them.
        if content.parts.iter().any(|p| registry::inline::is_locator(&p.blob)) {
            continue;
        }
        if seen.insert(content.parts.iter().map(|p| p.blob.clone()).collect::<Vec<_>>()) {
            recorded.push(Recorded { parts: content.parts, blake3: Some(content.blake3) });
        }
    }
    let mut parts = conn.prepare("SELECT part FROM multipart_parts")?;
    for part in parts.query_map([], |row| row.get::<_, String>(0))? {
        let part: BlobPart = serde_json::from_str(&part?).context("an upload's part")?;
        if pending.contains(&part.blob) {
            continue;
        }
        if seen.insert(vec![part.blob.clone()]) {
            recorded.push(Recorded { parts: vec![part], blake3: None });
        }
    }
    Ok((recorded, pending))
}

/// Check 4 on an S3 upstream. The recorded contents are read before the blobs are listed, as
/// for the local store.
async fn check_upstream_blobs(
    store: &S3BlobStore,
    keys: Option<&KeyRing>,
    registry: &Path,
    referenced: Vec<String>,
) -> anyhow::Result<BlobsReport> {
    let registry_path = registry.to_owned();
    let (recorded, pending) =
        tokio::task::spawn_blocking(move || recorded_contents(&sqlite::open_read_only(&registry_path)?))
            .await
            .context("registry read")??;
    let mut listed = HashSet::new();
    let mut listing = store.list().await.context("cannot list blobs")?;
    while let Some(entry) = listing.next().await {
        listed.insert(entry.context("cannot list blobs")?.id.as_str().to_owned());
    }
    let mut report = BlobsReport { referenced: referenced.len() as u64, ..BlobsReport::default() };

    let total = recorded.iter().flat_map(|r| &r.parts).map(|p| p.size).sum();
    let bar = progress::bar("blobs", total, Unit::Bytes);
    let mut vanished = Vec::new();
    for content in &recorded {
        if content.parts.iter().any(is_customer_keyed) {
            report.customer_keyed += content.parts.len() as u64;
            continue;
        }
        if content.parts.iter().any(|part| key_destroyed(keys, part)) {
            report.keys_destroyed += content.parts.len() as u64;
            continue;
        }
        let mut whole = blake3::Hasher::new();
        let mut complete = true;
        let mut corrupt = Vec::new();
        for part in &content.parts {
            let id = BlobId::new(part.blob.clone());
            // A part of an object completed as one upstream multipart upload is a range of
            // that object.
            let range =
                part.offset.filter(|_| part.size > 0).map(|offset| (offset, offset + crypto::stored_size(part) - 1));
            // An empty encrypted part holds only its one empty segment's tag, nothing to hash.
            if (part.offset.is_some() && range.is_none()) || (part.size == 0 && part.wrapped_key.is_some()) {
                continue;
            }
            let stream = match store.get(&id, range).await {
                Ok(stream) if part.size > 0 => rehash::plaintext(keys.map(|k| k as &dyn KeyProvider), part, stream)?,
                Ok(stream) => stream,
                // Reported as missing below if it is still referenced.
                Err(BlobError::NotFound) => {
                    vanished.push(part.blob.clone());
                    complete = false;
                    continue;
                }
                Err(err) => return Err(err).with_context(|| format!("cannot read blob {id}")),
            };
            let mut md5 = Md5::new();
            let mut size = 0;
            let mut stream = stream;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    // An encrypted blob that does not authenticate: counted as short below.
                    Err(BlobError::Forged(_)) => break,
                    Err(err) => return Err(err).with_context(|| format!("cannot read blob {id}")),
                };
                whole.update(&chunk);
                md5.update(&chunk);
                size += chunk.len() as u64;
                bar.inc(chunk.len() as u64);
            }
            if size != part.size || hex::encode(md5.finalize()) != part.etag {
                corrupt.push(part.blob.clone());
            }
            report.checked += 1;
            report.bytes += size;
        }
        let whole_differs = content.blake3.as_ref().is_some_and(|b| whole.finalize().to_hex().as_str() != b);
        if complete && whole_differs && corrupt.is_empty() {
            // Every part matches its MD5 and yet the whole does not: blame them all.
            corrupt.extend(content.parts.iter().map(|p| p.blob.clone()));
        }
        report.corrupt.extend(corrupt);
    }
    bar.finish_and_clear();
    report.corrupt.sort();
    report.corrupt.dedup();

    let referenced_set: HashSet<&str> = referenced.iter().map(String::as_str).collect();
    report.unreferenced = listed.iter().filter(|id| !referenced_set.contains(id.as_str())).count() as u64;
    let mut unlisted: Vec<&str> =
        referenced.iter().map(String::as_str).filter(|id| !listed.contains(*id) && !pending.contains(*id)).collect();
    unlisted.extend(vanished.iter().map(String::as_str).filter(|id| listed.contains(*id)));
    report.missing = confirm_missing(store, registry, &unlisted).await?;
    Ok(report)
}

/// Of the referenced blobs the listing did not show, those that are really gone: not there
/// now, and still referenced now (a gc may have removed one that stopped being referenced).
async fn confirm_missing(store: &dyn BlobStore, registry: &Path, unlisted: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut absent = Vec::new();
    for id in unlisted {
        match store.size(&BlobId::new(*id)).await {
            Ok(_) => {}
            Err(BlobError::NotFound | BlobError::InvalidId) => absent.push((*id).to_owned()),
            Err(err) => return Err(err).with_context(|| format!("cannot read blob {id}")),
        }
    }
    if absent.is_empty() {
        return Ok(absent);
    }
    let registry = registry.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let conn = sqlite::open_read_only(&registry)?;
        let mut missing = Vec::new();
        for id in absent {
            if conn.blob_refs(&id)? > 0 {
                missing.push(id);
            }
        }
        Ok(missing)
    })
    .await
    .context("blob reference check")?
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        print_line(&mut out, &serde_json::to_string(report)?)?;
        return Ok(());
    }
    let chain = &report.chain;
    let mut lines = vec![match chain.first_mismatch {
        None => format!("chain: {} events intact, head {} {}", chain.events, chain.head_sequence, chain.head_hash),
        Some(sequence) => format!("chain: broken at event {sequence}"),
    }];
    lines.push(if report.views.matches_log {
        "views: match the log".to_owned()
    } else {
        "views: differ from the log".to_owned()
    });
    lines.push(match &report.views.first_violation {
        None => "rules: every event keeps the rules in force at its sequence".to_owned(),
        Some(violation) => format!("rules: broken by event {}", violation.sequence),
    });
    lines.push(match &report.checkpoint {
        Some(origin) => format!("checkpoint: checked against {origin}"),
        None => "checkpoint: none signed yet".to_owned(),
    });
    let inline = &report.inline;
    lines.push(format!(
        "inline: {} checked ({}), {} corrupt, {} missing",
        inline.checked,
        indicatif::HumanBytes(inline.bytes),
        inline.corrupt.len(),
        inline.missing.len()
    ));
    if let Some(blobs) = &report.blobs {
        lines.push(format!(
            "blobs: {} checked ({}), {} corrupt; {} referenced, {} missing; {} unreferenced; {} under customers' keys, not read{}",
            blobs.checked,
            indicatif::HumanBytes(blobs.bytes),
            blobs.corrupt.len(),
            blobs.referenced,
            blobs.missing.len(),
            blobs.unreferenced,
            blobs.customer_keyed,
            match blobs.keys_destroyed {
                0 => String::new(),
                n => format!("; {n} under destroyed keys, not read"),
            }
        ));
    }
    lines.extend(report.problems.iter().map(|problem| format!("FAILED {problem}")));
    lines.push(if report.ok { "ok".to_owned() } else { format!("{} problem(s)", report.problems.len()) });
    for line in lines {
        if !print_line(&mut out, &line)? {
            break;
        }
    }
    Ok(())
}
