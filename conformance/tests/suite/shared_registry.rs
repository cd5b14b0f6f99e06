//! Several gateways on one registry shared on PostgreSQL and one blob store (a shared data
//! folder, or the run's S3 upstream under one prefix) behave as one S3 service (issue 19):
//! clients spread across them read what any of them acknowledged, conditional writes have one
//! winner, a multipart upload moves between them, Object Lock and keys hold everywhere, every
//! read lands in the one chain, and a gateway killed mid-load or a PostgreSQL restart loses
//! nothing acknowledged.
//!
//! The PostgreSQL server is the one `POSTGRES_URL` names (scripts/test.sh starts one); each test
//! makes a database of its own on it. Without it the tests are reported as skipped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use artifact_store_conformance::events::of_type;
use artifact_store_conformance::raw::{Payload, ROOT, send_from};
use artifact_store_conformance::sdk::{create_bucket, enable_versioning, failure, get, put};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, bytes, metrics, skip};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockMode, ObjectLockRetentionMode};

/// A database of its own on a PostgreSQL server, made with `psql`.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    /// On the server `POSTGRES_URL` names; `None` (and the test reported as skipped) without it.
    fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("POSTGRES_URL") else {
            skip("POSTGRES_URL is not set: no PostgreSQL server for a shared registry (scripts/start-postgres.sh)");
            return None;
        };
        Some(Self::create_on(&admin_url))
    }

    fn create_on(admin_url: &str) -> Self {
        let name = format!("gateways_{:016x}", rand());
        let (base, _) = admin_url.rsplit_once('/').expect("a database in the URL");
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        Self { admin_url: admin_url.to_owned(), url: format!("{base}/{name}"), name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-q", &self.admin_url, "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

fn psql(url: &str, statement: &str) {
    let ran =
        Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", statement]).output().expect("run psql");
    assert!(ran.status.success(), "psql {statement}: {}", String::from_utf8_lossy(&ran.stderr));
}

fn rand() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `count` gateways on the registry at `url` and one blob store: the data folder `data` they
/// share, or the run's S3 upstream under one prefix.
async fn gateways(count: usize, url: &str, data: &Path) -> Vec<Server> {
    gateways_with(count, url, data, &[]).await
}

/// [`gateways`], with more settings in their environment.
async fn gateways_with(count: usize, url: &str, data: &Path, settings: &[(&str, &str)]) -> Vec<Server> {
    start_gateways(count, data, &shared_env(url), settings).await
}

/// The settings of every gateway on the registry at `url`: the run's blob store (an upstream
/// prefix of its own for each call) and the registry.
fn shared_env(url: &str) -> Vec<(String, String)> {
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_REGISTRY_URL".to_owned(), url.to_owned()));
    env
}

/// `count` gateways with `env` and `settings` on the data folder `data`.
async fn start_gateways(count: usize, data: &Path, env: &[(String, String)], settings: &[(&str, &str)]) -> Vec<Server> {
    let mut env = env.to_vec();
    env.extend(settings.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    let mut started = Vec::with_capacity(count);
    for _ in 0..count {
        started.push(Server::start_sharing(Transport::Http, data, env.clone()).await);
    }
    started
}

fn shared_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("artifact-store-shared-").tempdir().expect("temp folder");
    let data = dir.path().join("data");
    (dir, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_serve_as_one_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let servers = gateways(3, &db.url, &data).await;
    let s3: Vec<_> = servers.iter().map(Server::s3).collect();
    create_bucket(&s3[0], "team").await;

    // Read-after-write and list-after-write: written through one, read and listed through the
    // next two at once. Small bodies are inline in the registry, larger ones in the store.
    let mut written = Vec::new();
    for i in 0..24 {
        let body = bytes(if i % 2 == 0 { 100 } else { 70_000 }, i as u64);
        let key = format!("k/{i:02}");
        put(&s3[i % 3], "team", &key, &body).await;
        assert_eq!(get(&s3[(i + 1) % 3], "team", &key).await, body, "{key} read through another gateway");
        let listed = s3[(i + 2) % 3].list_objects_v2().bucket("team").prefix("k/").send().await.expect("list");
        assert_eq!(listed.contents().len(), i + 1, "list-after-write through the third gateway");
        written.push((key, body));
    }

    // `If-None-Match: *` raced through all three: exactly one winner.
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let client = s3[i % 3].clone();
            tokio::spawn(async move {
                let sent = client
                    .put_object()
                    .bucket("team")
                    .key("release.tar")
                    .if_none_match("*")
                    .body(ByteStream::from(bytes(64, 1000 + i as u64)))
                    .send()
                    .await;
                if sent.is_ok() { Ok(()) } else { Err(failure(sent).0) }
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(_) => winners += 1,
            Err(status) => assert!(status == 412 || status == 409, "a losing conditional write answered {status}"),
        }
    }
    assert_eq!(winners, 1, "one conditional write wins across gateways");

    // A multipart upload started on one gateway, parts on the two others, completed on a third.
    let upload = s3[0].create_multipart_upload().bucket("team").key("big.bin").send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let parts = [bytes(5 << 20, 7), bytes(1 << 20, 8)];
    let mut completed = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let number = index as i32 + 1;
        let answer = s3[1 + index]
            .upload_part()
            .bucket("team")
            .key("big.bin")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .expect("upload part");
        completed.push(CompletedPart::builder().part_number(number).e_tag(answer.e_tag().expect("etag")).build());
    }
    s3[2]
        .complete_multipart_upload()
        .bucket("team")
        .key("big.bin")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete on a third gateway");
    assert_eq!(get(&s3[0], "team", "big.bin").await, parts.concat());

    // Versions are ordered by commit, whichever gateway wrote them.
    enable_versioning(&s3[1], "team").await;
    let mut ids = Vec::new();
    for round in 0..6 {
        let written = s3[round % 3]
            .put_object()
            .bucket("team")
            .key("versioned")
            .body(ByteStream::from(bytes(32, 2000 + round as u64)))
            .send()
            .await
            .expect("put version");
        ids.push(written.version_id().expect("version id").to_owned());
    }
    let listed = s3[2].list_object_versions().bucket("team").prefix("versioned").send().await.expect("versions");
    let newest_first: Vec<&str> = listed.versions().iter().filter_map(|v| v.version_id()).collect();
    ids.reverse();
    assert_eq!(newest_first, ids, "versions listed newest first in commit order");
    assert_eq!(get(&s3[1], "team", "versioned").await, bytes(32, 2005));

    // Every gateway's reads land in the one chain, which verifies: 24 keys, the multipart
    // object and the newest version, each read once. Records commit after their response.
    let mut events = servers[0].events();
    for _ in 0..50 {
        if of_type(&events, "v1.object.retrieved").len() >= 26 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        events = servers[0].events();
    }
    assert_eq!(of_type(&events, "v1.object.retrieved").len(), 26, "the reads of all gateways are recorded");
    for (position, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, position as u64 + 1, "one gapless chain");
    }
    let verified = servers[2].cli(&["verify"]);
    assert!(verified.status.success(), "verify: {}", String::from_utf8_lossy(&verified.stdout));
    for (key, body) in &written {
        assert_eq!(&get(&s3[2], "team", key).await, body);
    }
    // Every gateway wrote under the shared head's lock, and its metrics say for how long it
    // took the lock and held it.
    for server in &servers {
        let scrape = server.scrape().await;
        for name in [
            "artifact_store_registry_shared_head_wait_seconds_total",
            "artifact_store_registry_shared_head_held_seconds_total",
        ] {
            let value = metrics::sample(&scrape, name, &[]).unwrap_or_else(|| panic!("{name} is not in the scrape"));
            assert!(value > 0.0, "{name} is {value} on a gateway that wrote");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_lock_and_keys_hold_on_every_gateway_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let servers = gateways(3, &db.url, &data).await;
    let s3: Vec<_> = servers.iter().map(Server::s3).collect();

    s3[0].create_bucket().bucket("evidence").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let until = aws_sdk_s3::primitives::DateTime::from_secs(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3600,
    );
    let written = s3[1]
        .put_object()
        .bucket("evidence")
        .key("report.pdf")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"signed report"))
        .send()
        .await
        .expect("put under retention");
    let version = written.version_id().expect("version").to_owned();
    let refused = s3[2].delete_object().bucket("evidence").key("report.pdf").version_id(&version).send().await;
    assert_eq!(failure(refused), (403, "AccessDenied".to_owned()), "retention holds on another gateway");
    let retention = s3[0].get_object_retention().bucket("evidence").key("report.pdf").version_id(&version).send().await;
    let mode = retention.expect("retention").retention().and_then(|r| r.mode().cloned());
    assert_eq!(mode, Some(ObjectLockRetentionMode::Compliance));

    // A user and key made through one gateway's registry sign at once on the others, and a
    // deleted key stops signing on them.
    let made = servers[0].cli(&["user", "create", "builder"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let key = servers[0].cli(&["--json", "key", "create", "builder"]);
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key: serde_json::Value = serde_json::from_slice(&key.stdout).expect("key JSON");
    let (id, secret) = (key["access_key"].as_str().unwrap(), key["secret_key"].as_str().unwrap());
    let builder = artifact_store_conformance::raw::Key { access_key: id, secret_key: secret };
    for server in &servers[1..] {
        // No policy yet: authenticated, and denied.
        let denied = server.s3_as(builder).list_objects_v2().bucket("evidence").send().await;
        assert_eq!(failure(denied), (403, "AccessDenied".to_owned()), "the new key signs on every gateway");
    }
    let deleted = servers[1].cli(&["key", "delete", id]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    // Documented bound: a key change reaches the other gateways within their poll interval.
    let mut refused = None;
    for _ in 0..100 {
        let answer = servers[2].s3_as(builder).list_objects_v2().bucket("evidence").send().await;
        let (_, code) = failure(answer);
        if code == "InvalidAccessKeyId" {
            refused = Some(code);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused.as_deref(), Some("InvalidAccessKeyId"), "a deleted key stops signing on the others");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_load_loses_nothing_acknowledged_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let mut servers = gateways(3, &db.url, &data).await;
    let s3: Vec<_> = servers.iter().map(Server::s3).collect();
    create_bucket(&s3[0], "load").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            let (client, stop) = (s3[writer % 3].clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("w{writer}/{n:04}");
                    let body = bytes(if n.is_multiple_of(3) { 20_000 } else { 300 }, writer as u64 * 100_000 + n);
                    let sent = client.put_object().bucket("load").key(&key).body(ByteStream::from(body.clone())).send();
                    if sent.await.is_ok() {
                        acknowledged.push((key, body));
                    }
                    n += 1;
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    servers[1].kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(acknowledged.len() > 20, "the load ran: {} writes", acknowledged.len());
    for (index, (key, body)) in acknowledged.iter().enumerate() {
        let reader = if index % 2 == 0 { &s3[0] } else { &s3[2] };
        assert_eq!(&get(reader, "load", key).await, body, "{key}, acknowledged before or after the kill");
    }
    let verified = servers[0].cli(&["verify"]);
    assert!(verified.status.success(), "verify: {}", String::from_utf8_lossy(&verified.stdout));
}

/// The sequences of the automatic checkpoints in the shared data folder, oldest first.
fn checkpoints_made(data: &Path) -> Vec<u64> {
    let mut made: Vec<u64> = std::fs::read_dir(data.join("checkpoints"))
        .map(|entries| {
            entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".json")?.parse().ok()).collect()
        })
        .unwrap_or_default();
    made.sort_unstable();
    made
}

/// Waits up to 30 s for a checkpoint at or past `sequence`.
async fn checkpoint_reaching(data: &Path, sequence: u64) -> Vec<u64> {
    for _ in 0..300 {
        let made = checkpoints_made(data);
        if made.last().is_some_and(|&last| last >= sequence) {
            return made;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no checkpoint reached event {sequence}: {:?}", checkpoints_made(data));
}

/// How many checkpoints a gateway's log says it signed.
fn signed_by(server: &Server) -> usize {
    server.log().lines().filter(|line| line.contains("checkpoint signed")).count()
}

/// How many checkpoints each gateway's log says it signed, once the logs tell of every
/// checkpoint in `data` (a gateway logs one after writing its file), or after 10 s.
async fn signers(servers: &[Server], data: &Path) -> Vec<usize> {
    for _ in 0..100 {
        let signed: Vec<usize> = servers.iter().map(signed_by).collect();
        if signed.iter().sum::<usize>() >= checkpoints_made(data).len() {
            return signed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    servers.iter().map(signed_by).collect()
}

/// Automatic checkpoints run once, not once per gateway: the gateway holding the lease signs
/// them all, and when it dies another takes the lease and goes on from the newest checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn automatic_checkpoints_are_signed_by_one_gateway_at_a_time_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let settings = [
        ("ARTIFACT_STORE_REGISTRY_CHECKPOINT_EVERY_EVENTS", "10"),
        ("ARTIFACT_STORE_REGISTRY_CHECKPOINT_INTERVAL_SECONDS", "0"),
    ];
    let mut servers = gateways_with(2, &db.url, &data, &settings).await;
    let s3: Vec<_> = servers.iter().map(Server::s3).collect();
    create_bucket(&s3[0], "signed").await;
    for n in 0..30 {
        put(&s3[n % 2], "signed", &format!("first/{n}"), b"x").await;
    }
    let head = servers[0].events().last().expect("events").sequence;
    checkpoint_reaching(&data, head - 9).await;
    let signers = signers(&servers, &data).await;
    let made = checkpoints_made(&data);
    assert!(signers.iter().filter(|&&signed| signed > 0).count() == 1, "one gateway signs: {signers:?}");
    assert_eq!(signers.iter().sum::<usize>(), made.len(), "each checkpoint signed once: {made:?}");
    assert!(made.windows(2).all(|pair| pair[1] >= pair[0] + 10), "ten events apart at least: {made:?}");

    // The signer dies: its session, and with it the lease, ends; the other gateway signs.
    let signer = signers.iter().position(|&signed| signed > 0).expect("a signer");
    let survivor = 1 - signer;
    servers[signer].kill();
    for n in 0..30 {
        put(&s3[survivor], "signed", &format!("second/{n}"), b"y").await;
    }
    let head = servers[survivor].events().last().expect("events").sequence;
    checkpoint_reaching(&data, head - 9).await;
    let mut survivor_signed = 0;
    for _ in 0..100 {
        survivor_signed = signed_by(&servers[survivor]);
        if survivor_signed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(survivor_signed > 0, "the survivor took the lease: {}", servers[survivor].log());
    let verified = servers[survivor].cli(&["verify"]);
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "verify: {report}");
    assert!(!report.contains("checkpoint: none"), "verify checked the log against a checkpoint: {report}");
}

/// A PostgreSQL server of the test's own (scripts/start-postgres.sh), which the test stops and
/// starts again; stopped and deleted on drop.
struct OwnPostgres {
    dir: PathBuf,
    url: String,
}

impl OwnPostgres {
    fn script(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts").join(name)
    }

    fn start(dir: &Path) -> Self {
        let ran = Command::new(Self::script("start-postgres.sh")).env("POSTGRES_DIR", dir).output().expect("start");
        assert!(ran.status.success(), "start-postgres.sh: {}", String::from_utf8_lossy(&ran.stderr));
        let stdout = String::from_utf8_lossy(&ran.stdout);
        let url = stdout.lines().find_map(|line| line.strip_prefix("POSTGRES_URL=")).expect("POSTGRES_URL");
        Self { dir: dir.to_owned(), url: url.to_owned() }
    }

    /// The server's processes: the postmaster (its pid file's first line) and its children.
    fn processes(&self) -> Vec<String> {
        let cluster = std::fs::read_to_string(self.dir.join("cluster-path"))
            .map_or_else(|_| self.dir.join("cluster"), |path| PathBuf::from(path.trim()));
        let pid_file = std::fs::read_to_string(cluster.join("postmaster.pid")).expect("postmaster.pid");
        let postmaster = pid_file.lines().next().expect("the postmaster's pid").trim().to_owned();
        let children = Command::new("pgrep").args(["-P", &postmaster]).output().expect("pgrep");
        let mut pids: Vec<String> =
            String::from_utf8_lossy(&children.stdout).split_whitespace().map(str::to_owned).collect();
        pids.push(postmaster);
        pids
    }

    /// Stops every process of the server until the guard is dropped: meanwhile it takes
    /// connections and queries into its sockets' buffers and never answers, as a hung host does.
    fn hang(&self) -> Hung<'_> {
        let ran = Command::new("kill").arg("-STOP").args(self.processes()).output().expect("kill");
        assert!(ran.status.success(), "kill -STOP: {}", String::from_utf8_lossy(&ran.stderr));
        Hung(self)
    }

    /// Stops the server as a crash would (`-m immediate`), keeping its data.
    fn crash(&self) {
        let ran = Command::new(Self::script("stop-postgres.sh")).arg("--keep").arg(&self.dir).output().expect("stop");
        assert!(ran.status.success(), "stop-postgres.sh --keep: {}", String::from_utf8_lossy(&ran.stderr));
    }
}

/// A server stopped by [`OwnPostgres::hang`]; resumed on drop, a failed assertion's included, so
/// that nothing waits for it for ever.
struct Hung<'a>(&'a OwnPostgres);

impl Drop for Hung<'_> {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").args(self.0.processes()).output();
    }
}

/// A database on a PostgreSQL server of the test's own, which the test stops, hangs or starts
/// again. Dropped in the order of its fields: the database, then the server, then its folder.
struct OwnDatabase {
    db: Database,
    postgres: OwnPostgres,
    _dir: tempfile::TempDir,
}

/// An [`OwnDatabase`]; `None`, the test reported skipped, without PostgreSQL.
fn own_database() -> Option<OwnDatabase> {
    if std::env::var_os("POSTGRES_URL").is_none() {
        skip("POSTGRES_URL is not set: PostgreSQL is not installed for this run (scripts/install-test-deps.sh)");
        return None;
    }
    let dir = tempfile::Builder::new().prefix("artifact-store-own-pg-").tempdir().expect("temp folder");
    let postgres = OwnPostgres::start(&dir.path().join("pg"));
    let db = Database::create_on(&postgres.url);
    Some(OwnDatabase { db, postgres, _dir: dir })
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new(Self::script("stop-postgres.sh")).arg(&self.dir).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_wait_out_a_postgresql_restart_and_nothing_acknowledged_is_lost_issue_19() {
    let Some(own) = own_database() else { return };
    let (postgres, db) = (&own.postgres, &own.db);
    let (_dir, data) = shared_folder();
    let servers = gateways(2, &db.url, &data).await;
    let s3: Vec<_> = servers.iter().map(Server::s3).collect();
    create_bucket(&s3[0], "steady").await;

    let write = |client: &aws_sdk_s3::Client, key: String, body: Vec<u8>| {
        let sent = client.put_object().bucket("steady").key(key).body(ByteStream::from(body)).send();
        async move {
            sent.await.map(|_| ()).map_err(|e| {
                let raw = e.raw_response();
                let body = raw.and_then(|r| r.body().bytes()).map(String::from_utf8_lossy).unwrap_or_default();
                (raw.map(|r| r.status().as_u16()), body.into_owned())
            })
        }
    };
    let mut acknowledged = Vec::new();
    for n in 0..10u64 {
        let body = bytes(200, n);
        write(&s3[(n % 2) as usize], format!("before/{n}"), body.clone()).await.expect("write before");
        acknowledged.push((format!("before/{n}"), body));
    }

    postgres.crash();
    for (n, client) in s3.iter().enumerate() {
        let refused = write(client, format!("during/{n}"), bytes(200, 100 + n as u64)).await;
        let (status, body) = refused.expect_err("a write while PostgreSQL is away is refused");
        assert_eq!(status, Some(503), "a write while PostgreSQL is away answers 503: {body}");
        // The client is told what to wait for: the database, not a disk with free space.
        assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
        assert!(body.contains("database is out of reach"), "{body}");
    }
    for server in &servers {
        let ready = server.send(&server.request("GET", "/_ready")).await;
        assert_eq!(ready.status, 503, "/_ready fails while PostgreSQL is away: {}", ready.text());
    }

    let _started_again = OwnPostgres::start(&postgres.dir);
    // The gateways were not restarted: each connects again for the first request it serves
    // once PostgreSQL is back, and that request does not fail on a connection that died.
    for (n, client) in s3.iter().enumerate() {
        let body = bytes(200, 200 + n as u64);
        let written = write(client, format!("after/{n}"), body.clone()).await;
        assert_eq!(written, Ok(()), "gateway {n}'s first write once PostgreSQL is back");
        acknowledged.push((format!("after/{n}"), body));
    }
    for server in &servers {
        assert_eq!(server.send(&server.request("GET", "/_ready")).await.status, 200, "ready again");
    }
    for (index, (key, body)) in acknowledged.iter().enumerate() {
        assert_eq!(&get(&s3[index % 2], "steady", key).await, body, "{key}");
    }
    for (n, server) in servers.iter().enumerate() {
        server.assert_absent("steady", &format!("during/{n}")).await;
    }
    let verified = servers[0].cli(&["verify"]);
    assert!(verified.status.success(), "verify: {}", String::from_utf8_lossy(&verified.stdout));
}

/// A PostgreSQL server that stops answering without closing its connections (its host hangs,
/// or the link to it freezes): `/_ready` says the gateway is not ready, in time for a balancer's
/// check, instead of answering only when the server does; and nothing is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_whose_postgresql_hangs_answers_not_ready_issue_19() {
    let Some(own) = own_database() else { return };
    let (postgres, db) = (&own.postgres, &own.db);
    let (_dir, data) = shared_folder();
    let servers = gateways(1, &db.url, &data).await;
    let gateway = &servers[0];
    let s3 = gateway.s3();
    create_bucket(&s3, "hung").await;
    assert_eq!(gateway.send(&gateway.request("GET", "/_ready")).await.status, 200, "ready before");

    let hung = postgres.hang();
    let write = tokio::spawn({
        let s3 = s3.clone();
        async move { s3.put_object().bucket("hung").key("during").body(ByteStream::from_static(b"x")).send().await }
    });
    // A probe that waited for the server would wait for ever (the raw client gives up after a
    // minute, and the test fails).
    let ready = gateway.send(&gateway.request("GET", "/_ready")).await;
    drop(hung);
    assert_eq!(ready.status, 503, "/_ready while PostgreSQL hangs: {}", ready.text());
    assert!(ready.text().contains("did not answer"), "{}", ready.text());

    // Once the server answers again, the write queued meanwhile commits (it was never
    // acknowledged before) and the gateway is ready again, without a restart.
    write.await.expect("the write's task").expect("the write once PostgreSQL answers");
    assert_eq!(get(&s3, "hung", "during").await, b"x");
    let mut ready = gateway.send(&gateway.request("GET", "/_ready")).await;
    for _ in 0..50 {
        if ready.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = gateway.send(&gateway.request("GET", "/_ready")).await;
    }
    assert_eq!(ready.status, 200, "ready again: {}", ready.text());
}

/// HAProxy running `deploy/haproxy.cfg` unchanged, in front of three gateways; killed on drop.
struct LoadBalancer {
    child: std::process::Child,
    addr: SocketAddr,
    endpoint: String,
}

impl LoadBalancer {
    /// `None` (the test reported as skipped) when HAProxy is not installed.
    async fn start(gateways: &[Server]) -> Option<Self> {
        if Command::new("haproxy").arg("-v").output().is_err() {
            skip("haproxy is not installed (scripts/install-test-deps.sh installs it)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy.cfg");
        let mut command = Command::new("haproxy");
        command.arg("-db").arg("-f").arg(config).env("LISTEN", format!("127.0.0.1:{port}"));
        for (index, gateway) in gateways.iter().enumerate() {
            command.env(format!("GATEWAY_{}", index + 1), gateway.addr().to_string());
        }
        let child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let balancer = Self { child, addr, endpoint: format!("http://{addr}") };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(balancer);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("haproxy did not listen on {port}");
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_behind_the_documented_load_balancer_see_one_service_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let servers = gateways(3, &db.url, &data).await;
    let Some(balancer) = LoadBalancer::start(&servers).await else { return };
    let config = servers[0].s3_config(artifact_store_conformance::raw::Key {
        access_key: artifact_store_conformance::ACCESS_KEY,
        secret_key: artifact_store_conformance::SECRET_KEY,
    });
    let s3 = aws_sdk_s3::Client::from_conf(config.endpoint_url(&balancer.endpoint).build());
    create_bucket(&s3, "balanced").await;
    let writers: Vec<_> = (0..24u64)
        .map(|n| {
            let s3 = s3.clone();
            tokio::spawn(async move {
                let body = bytes(if n.is_multiple_of(2) { 500 } else { 50_000 }, 3000 + n);
                put(&s3, "balanced", &format!("lb/{n:02}"), &body).await;
                assert_eq!(get(&s3, "balanced", &format!("lb/{n:02}")).await, body, "read back through the balancer");
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let listed = s3.list_objects_v2().bucket("balanced").prefix("lb/").send().await.expect("list");
    assert_eq!(listed.contents().len(), 24);
    for (index, server) in servers.iter().enumerate() {
        assert!(server.log().contains("path=/balanced/lb/"), "gateway {} served none of the requests", index + 1);
    }
}

/// boto3 and the aws cli send uploads with `Expect: 100-continue` and, when refused before
/// `100 Continue`, keep the connection and send no body. The gateway closes such a connection;
/// the documented balancer must close the client's side too, or it reads the client's next
/// request as the body it announced (the next request then arrives as `ET /...`, refused as
/// `SignatureDoesNotMatch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_upload_whose_body_never_came_does_not_swallow_the_next_request_issue_19() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let servers = gateways(3, &db.url, &data).await;
    let Some(balancer) = LoadBalancer::start(&servers).await else { return };
    let signed = |method: &str, target: &str| {
        let request = servers[0].request(method, target);
        let request = if method == "PUT" {
            request.header("expect", "100-continue").header("content-length", "1")
        } else {
            request
        };
        // Kept alive, as those clients keep it: the helper's own `connection: close` goes.
        let bytes = request.sign(ROOT, std::time::SystemTime::now(), Payload::Unsigned).to_bytes();
        String::from_utf8(bytes).unwrap().replace("connection: close\r\n", "")
    };
    let mut connection = tokio::net::TcpStream::connect(balancer.addr).await.expect("connect to the balancer");
    connection.write_all(signed("PUT", "/no-such-bucket/k").as_bytes()).await.unwrap();
    let mut refusal = Vec::new();
    while !refusal.windows(8).any(|w| w == b"</Error>") {
        let mut buffer = [0; 4096];
        let read = connection.read(&mut buffer).await.expect("the refusal");
        assert!(read > 0, "closed before the refusal: {}", String::from_utf8_lossy(&refusal));
        refusal.extend_from_slice(&buffer[..read]);
    }
    let refusal = String::from_utf8_lossy(&refusal).to_lowercase();
    assert!(refusal.starts_with("http/1.1 404") && refusal.contains("nosuchbucket"), "{refusal}");
    assert!(refusal.contains("connection: close"), "the client is told to close: {refusal}");

    // A client that reuses the connection anyway is not answered for a request it did not send.
    let _ = connection.write_all(signed("GET", "/no-such-bucket").as_bytes()).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), connection.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("SignatureDoesNotMatch"), "the next request was read as the body: {rest}");
}

/// A bucket policy set or removed through one gateway decides the next request on every
/// other gateway, even one that had just decided a request on that bucket (and kept what it
/// read).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_changed_through_one_gateway_decides_the_next_request_on_the_others_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let servers = gateways(2, &db.url, &data).await;
    let (writer, reader) = (&servers[0], &servers[1]);
    let s3 = writer.s3();
    create_bucket(&s3, "opened").await;
    put(&s3, "opened", "public/a.txt", b"for everyone").await;
    let anonymous = || reader.request("GET", "/opened/public/a.txt");
    let denied = reader.send(&anonymous()).await;
    assert_eq!((denied.status, denied.code().as_deref()), (403, Some("AccessDenied")), "{}", denied.text());

    let policy = r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::opened/public/*"}]}"#;
    s3.put_bucket_policy().bucket("opened").policy(policy).send().await.expect("policy");
    let allowed = reader.send(&anonymous()).await;
    assert_eq!((allowed.status, allowed.body.as_slice()), (200, b"for everyone".as_slice()), "{}", allowed.text());

    s3.delete_bucket_policy().bucket("opened").send().await.expect("policy removed");
    let closed = reader.send(&anonymous()).await;
    assert_eq!((closed.status, closed.code().as_deref()), (403, Some("AccessDenied")), "closed on every gateway");
}

/// Behind the balancer, a gateway that trusts it records and authorizes each request by the
/// client's own address, which the balancer appends to `X-Forwarded-For`; an address a client
/// writes into that header itself is never believed, through the balancer or around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_the_balancer_the_client_address_is_the_source_and_cannot_be_forged_issue_19() {
    // Loopback clients at addresses of their own; the balancer connects from 127.0.0.1.
    let barred = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    let welcome = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10));
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let servers = gateways_with(3, &db.url, &data, &[("ARTIFACT_STORE_SERVER_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let Some(balancer) = LoadBalancer::start(&servers).await else { return };
    guarded_report(&servers[0].s3(), "sourced", r#"{"IpAddress": {"aws:SourceIp": "127.0.0.9/32"}}"#).await;
    let gateway = &servers[1];
    // Unsigned, as clients send it: the balancer appends to it.
    let read = |forged: &str| {
        gateway
            .request("GET", "/sourced/report")
            .sign(ROOT, std::time::SystemTime::now(), Payload::Signed)
            .header("x-forwarded-for", forged)
    };

    // Through the balancer: the barred client is refused whatever it claims to be, and the
    // welcome one is recorded under its own address, not the balancer's nor the one it claims.
    assert_access_denied(&send_from(barred, balancer.addr, &read("127.0.0.10")).await);
    let served = send_from(welcome, balancer.addr, &read("127.0.0.9")).await;
    assert_eq!((served.status, served.body.as_slice()), (200, b"figures".as_slice()), "{}", served.text());
    let source = recorded_source(gateway, &served).await;
    assert_eq!(source, "127.0.0.10", "recorded by the client's address");

    // Around the balancer, the header is a client's word and changes nothing.
    assert_access_denied(&send_from(barred, gateway.addr(), &read("127.0.0.10")).await);
    let served = send_from(welcome, gateway.addr(), &read("127.0.0.9")).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let source = recorded_source(gateway, &served).await;
    assert!(source.starts_with("127.0.0.10:"), "the connection's own address and port: {source}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_balancer_that_ends_tls_secure_transport_is_its_word_when_told_issue_19() {
    let balancer_side = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11));
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let trusted = ("ARTIFACT_STORE_SERVER_TRUSTED_PROXIES", "127.0.0.1/32");
    let env = shared_env(&db.url);
    let servers =
        start_gateways(3, &data, &env, &[trusted, ("ARTIFACT_STORE_SERVER_TRUST_FORWARDED_PROTO", "true")]).await;
    let Some(balancer) = LoadBalancer::start(&servers).await else { return };
    // AWS's usual guard: nothing is read over plain HTTP.
    guarded_report(&servers[0].s3(), "tls-only", r#"{"Bool": {"aws:SecureTransport": "false"}}"#).await;
    // A gateway that trusts the balancer for client addresses only.
    let addresses_only = start_gateways(1, &data, &env, &[trusted]).await;
    let gateway = &servers[2];
    let read_from = |gateway: &Server, proto: &[&str]| {
        let mut request =
            gateway.request("GET", "/tls-only/report").sign(ROOT, std::time::SystemTime::now(), Payload::Signed);
        for line in proto {
            request = request.header("x-forwarded-proto", line);
        }
        request
    };
    let read = |proto: &[&str]| read_from(gateway, proto);

    // A client over plain HTTP to the balancer claims TLS: the balancer replaces its word.
    assert_access_denied(&send_from(stranger, balancer.addr, &read(&["https"])).await);

    // A balancer that ended TLS says so, and is believed.
    let served = send_from(balancer_side, gateway.addr(), &read(&["https"])).await;
    assert_eq!((served.status, served.body.as_slice()), (200, b"figures".as_slice()), "{}", served.text());
    // One that appends to what the client sent: a plain-HTTP client's claim in front of the
    // balancer's `http` does not make the request TLS.
    assert_access_denied(&send_from(balancer_side, gateway.addr(), &read(&["https, http"])).await);
    assert_access_denied(&send_from(balancer_side, gateway.addr(), &read(&["https", "http"])).await);
    assert_access_denied(&send_from(balancer_side, gateway.addr(), &read(&[])).await);

    // Around the balancer, the header is a client's word and changes nothing.
    assert_access_denied(&send_from(stranger, gateway.addr(), &read(&["https"])).await);
    // Nor does the balancer's, on a gateway not told to believe it.
    let other = &addresses_only[0];
    assert_access_denied(&send_from(balancer_side, other.addr(), &read_from(other, &["https"])).await);
}

/// Creates `bucket` holding `report` (`figures`), guarded by a bucket policy that denies
/// everyone `s3:GetObject` under `condition` (a policy's JSON `Condition` value).
async fn guarded_report(s3: &aws_sdk_s3::Client, bucket: &str, condition: &str) {
    create_bucket(s3, bucket).await;
    put(s3, bucket, "report", b"figures").await;
    let policy = format!(
        r#"{{"Statement": [{{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::{bucket}/*", "Condition": {condition}}}]}}"#
    );
    s3.put_bucket_policy().bucket(bucket).policy(policy).send().await.expect("policy");
}

/// Asserts that `response` is S3's 403 `AccessDenied`.
fn assert_access_denied(response: &artifact_store_conformance::raw::RawResponse) {
    let expected = (403, Some("AccessDenied"));
    assert_eq!((response.status, response.code().as_deref()), expected, "{}", response.text());
}

/// The source address of the retrieval record of the read `served` answered, once recorded.
async fn recorded_source(gateway: &Server, served: &artifact_store_conformance::raw::RawResponse) -> String {
    let request_id = served.header("x-amz-request-id").expect("a request id").to_owned();
    let of_this_read =
        |e: &artifact_store_conformance::events::Event| e.context.request_id.as_ref() == Some(&request_id);
    let events = gateway
        .wait_for_events("sourced", "report", |events| {
            of_type(events, "v1.object.retrieved").into_iter().any(&of_this_read)
        })
        .await;
    let record = events.iter().find(|e| of_this_read(e)).expect("the record");
    record.context.source_addr.clone().expect("a source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_moves_to_postgresql_and_back_with_its_chain_issue_19() {
    let Some(db) = Database::create() else { return };
    let mut embedded = Server::start(Transport::Http).await;
    let s3 = embedded.s3();
    create_bucket(&s3, "moved").await;
    let objects: Vec<(String, Vec<u8>)> =
        (0..6u64).map(|n| (format!("o/{n}"), bytes(if n % 2 == 0 { 300 } else { 90_000 }, 4000 + n))).collect();
    for (key, body) in &objects {
        put(&s3, "moved", key, body).await;
    }
    assert!(embedded.cli(&["user", "create", "mover"]).status.success());
    let key = embedded.cli(&["--json", "key", "create", "mover"]);
    let key: serde_json::Value = serde_json::from_slice(&key.stdout).expect("key JSON");
    let before = embedded.events();
    embedded.terminate();
    embedded.wait_exit().await;

    let copied = embedded.cli(&["registry", "copy", "--to", &db.url]);
    assert!(copied.status.success(), "copy to PostgreSQL: {}", String::from_utf8_lossy(&copied.stderr));
    let report = String::from_utf8_lossy(&copied.stdout);
    assert!(report.contains(&format!("copied: {} events", before.len())), "{report}");
    let again = embedded.cli(&["registry", "copy", "--to", &db.url]);
    assert!(!again.status.success(), "a second copy into a database that holds a log is refused");

    // A gateway on the copy serves what the embedded one stored (its folder, or its prefix of
    // the upstream), and its keys.
    let mut env: Vec<(String, String)> = upstream_env()
        .into_iter()
        .map(|(name, value)| match embedded.setting(&name) {
            Some(same) => (name, same.to_owned()),
            None => (name, value),
        })
        .collect();
    env.push(("ARTIFACT_STORE_REGISTRY_URL".to_owned(), db.url.clone()));
    let shared = Server::start_sharing(Transport::Http, &embedded.data_dir(), env).await;
    for (key, body) in &objects {
        assert_eq!(&get(&shared.s3(), "moved", key).await, body, "{key} on the copy");
    }
    let mover = artifact_store_conformance::raw::Key {
        access_key: key["access_key"].as_str().unwrap(),
        secret_key: key["secret_key"].as_str().unwrap(),
    };
    let denied = shared.s3_as(mover).list_objects_v2().bucket("moved").send().await;
    assert_eq!(failure(denied), (403, "AccessDenied".to_owned()), "the copied key signs (and has no policy)");
    let after = shared.events();
    assert_eq!(after[..before.len()], before[..], "the same chain, event for event");

    // And back to a data folder of its own: the same chain again.
    let back = tempfile::tempdir().expect("temp folder");
    let back_dir = back.path().join("data");
    let copied = shared.cli(&["registry", "copy", "--from", &db.url, "--to", back_dir.to_str().unwrap()]);
    assert!(copied.status.success(), "copy back: {}", String::from_utf8_lossy(&copied.stderr));
    let listed = Command::new(artifact_store_conformance::server::binary_path())
        .args(["events", "list", "--json", "--data-dir", back_dir.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("events list");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let back_events = String::from_utf8_lossy(&listed.stdout).lines().count();
    assert_eq!(back_events, shared.events().len(), "every event of the shared log is in the copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gc_pass_that_loses_its_lease_deletes_nothing_more_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let mut env = upstream_env();
    if !env.is_empty() {
        skip("on the S3 backend: the blob's presence is read from the local store's folder");
        return;
    }
    env.push(("ARTIFACT_STORE_REGISTRY_URL".to_owned(), db.url.clone()));
    env.push(("ARTIFACT_STORE_GC_ENABLED".to_owned(), "false".to_owned()));
    let server = Server::start_sharing(Transport::Http, &data, env).await;
    let s3 = server.s3();
    create_bucket(&s3, "leased").await;
    let body = bytes(20_000, 5150);
    put(&s3, "leased", "gone", &body).await;
    s3.delete_object().bucket("leased").key("gone").send().await.expect("delete");
    let hex = artifact_store_conformance::blake3_hex(&body);
    let blob = data.join("blobs").join(&hex[..2]).join(&hex);
    assert!(blob.is_file());

    // gc marks the blob, then waits at its barrier before deleting.
    let (gc, barrier) = gc_paused(&server, &data).await;

    // Its lease's session ends (a network cut, a server restart): the lock is free, and
    // another gateway's pass may take it and finish the marks.
    let key = i64::from_le_bytes(blake3::hash(b"gc").as_bytes()[..8].try_into().unwrap());
    psql(
        &db.admin_url,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 \
             AND ((classid::bigint << 32) | objid::bigint) = {key}"
        ),
    );
    std::fs::write(&barrier, b"").expect("open the barrier");
    let gc = gc.wait_with_output().expect("gc");
    assert!(!gc.status.success(), "a pass without its lease went on: {}", String::from_utf8_lossy(&gc.stdout));
    assert!(String::from_utf8_lossy(&gc.stderr).contains("lease was lost"), "{}", String::from_utf8_lossy(&gc.stderr));
    assert!(blob.is_file(), "the pass deleted a blob after losing its lease");

    // The next pass finishes what the lost one marked.
    let next = server.cli(&["gc", "--min-age", "0s", "--json"]);
    assert!(next.status.success(), "{}", String::from_utf8_lossy(&next.stderr));
    assert!(!blob.is_file(), "the next pass deletes the marked blob");
    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify: {}", String::from_utf8_lossy(&verified.stdout));
}

/// Starts `gc` on `server`'s data folder `data` and waits until it has marked its first batch
/// and stopped at its barrier; returns it and the barrier file that lets it go on.
async fn gc_paused(server: &Server, data: &Path) -> (std::process::Child, PathBuf) {
    let barrier = data.parent().expect("test folder").join("gc-barrier");
    let reached = PathBuf::from(format!("{}.reached", barrier.display()));
    let gc = artifact_store_conformance::cli::spawn_gc_paused(server, &barrier);
    for _ in 0..600 {
        if reached.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached.exists(), "gc did not reach its barrier");
    (gc, barrier)
}

/// Two gateways sharing `data` and the registry at `url`, with `body` stored through the first
/// and deleted, so that its blob is gc's to take; and that blob's file.
async fn two_gateways_and_a_garbage_blob(url: &str, data: &Path, body: &[u8]) -> (Vec<Server>, PathBuf) {
    let servers = gateways(2, url, data).await;
    let s3 = servers[0].s3();
    create_bucket(&s3, "marked").await;
    put(&s3, "marked", "gone", body).await;
    s3.delete_object().bucket("marked").key("gone").send().await.expect("delete");
    let hex = artifact_store_conformance::blake3_hex(body);
    let blob = data.join("blobs").join(&hex[..2]).join(&hex);
    assert!(blob.is_file());
    (servers, blob)
}

/// A gc pass killed after marking (here `artifact-store gc`, killed at its barrier) left its
/// marks to the next pass: writes of those bytes waited 30 s for it and answered 503 (found by
/// an attacker's pass). Its lease ended with its session, so no pass lives on any gateway, and
/// a write on another gateway finishes the marks and stores its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_of_bytes_a_killed_gc_pass_had_marked_is_stored_by_another_gateway() {
    let Some(db) = Database::create() else { return };
    if !upstream_env().is_empty() {
        skip("on the S3 backend: every write uploads an object of its own, which no pass marked");
        return;
    }
    let (_dir, data) = shared_folder();
    let body = bytes(20_000, 5160);
    let (servers, blob) = two_gateways_and_a_garbage_blob(&db.url, &data, &body).await;
    let (mut gc, _barrier) = gc_paused(&servers[0], &data).await;
    gc.kill().expect("kill gc");
    gc.wait().expect("reap gc");
    assert!(blob.is_file(), "gc was killed before it deleted anything");

    let written = servers[1].s3().put_object().bucket("marked").key("again").body(body.clone().into()).send().await;
    if let Err(err) = written {
        panic!("PUT of the marked bytes: {:?}\n{}", failure::<(), _>(Err(err)), servers[1].log());
    }
    assert_eq!(get(&servers[0].s3(), "marked", "again").await, body);
    let next = servers[0].cli(&["gc", "--min-age", "0s"]);
    assert!(next.status.success(), "{}", String::from_utf8_lossy(&next.stderr));
    assert!(blob.is_file(), "gc removed the blob of the new object");
    let verified = servers[0].cli(&["verify"]);
    assert!(verified.status.success(), "verify: {}", String::from_utf8_lossy(&verified.stdout));
}

/// A write that meets a mark finishes it only when no pass lives: a pass on one gateway holds
/// the lease (not the other gateways' gc locks), and a write of the bytes it marked on another
/// gateway waits for it. Had the write finished the marks, the pass would have deleted the
/// bytes the write placed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_on_another_gateway_waits_for_the_live_gc_pass_that_marked_its_bytes() {
    let Some(db) = Database::create() else { return };
    if !upstream_env().is_empty() {
        skip("on the S3 backend: every write uploads an object of its own, which no pass marked");
        return;
    }
    let (_dir, data) = shared_folder();
    let body = bytes(20_000, 5170);
    let (servers, blob) = two_gateways_and_a_garbage_blob(&db.url, &data, &body).await;
    let (gc, barrier) = gc_paused(&servers[0], &data).await;

    let writer = {
        let (s3, body) = (servers[1].s3(), body.clone());
        tokio::spawn(async move { put(&s3, "marked", "again", &body).await })
    };
    for _ in 0..600 {
        if servers[1].log().contains("gc is deleting the blob of this write") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(servers[1].log().contains("gc is deleting the blob of this write"), "{}", servers[1].log());
    std::fs::write(&barrier, b"").expect("open the barrier");
    let gc = gc.wait_with_output().expect("gc");
    assert!(gc.status.success(), "gc failed: {}", String::from_utf8_lossy(&gc.stderr));
    writer.await.expect("PUT task");

    // gc deleted the blob it marked itself: the waiting PUT did not take its marks over.
    let report: serde_json::Value = serde_json::from_slice(&gc.stdout).expect("gc --json");
    assert_eq!(report["blobs_removed"], 1, "{report}\n{}", servers[1].log());
    assert!(blob.is_file(), "the acknowledged PUT's blob file is gone\n{}", servers[1].log());
    assert_eq!(get(&servers[0].s3(), "marked", "again").await, body);
    let verified = servers[0].cli(&["verify"]);
    assert!(verified.status.success(), "verify: {}", String::from_utf8_lossy(&verified.stdout));
}

/// PUTs `body` asking for SSE-S3.
async fn put_sse_s3(
    s3: &aws_sdk_s3::Client,
    key: &str,
    body: &[u8],
) -> Result<
    aws_sdk_s3::operation::put_object::PutObjectOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
> {
    s3.put_object()
        .bucket("team")
        .key(key)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
}

/// The master key ids recorded as shared, in order.
fn recorded_master_keys(server: &Server) -> Vec<String> {
    let events = server.events();
    of_type(&events, "v1.encryption.master_key.set")
        .iter()
        .map(|e| e.payload["key_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_without_the_shared_master_key_encrypts_nothing_the_others_cannot_read() {
    let Some(db) = Database::create() else { return };
    // Each gateway has a data folder, and so a master key, of its own. Objects of 100 bytes
    // are inline in the registry, which every gateway reads.
    let env = shared_env(&db.url);
    let mut first = Server::start_with(Transport::Http, &[], env.clone()).await;
    create_bucket(&first.s3(), "team").await;
    put_sse_s3(&first.s3(), "from-first", &bytes(100, 1)).await.expect("SSE-S3 through the first gateway");
    let shared = recorded_master_keys(&first);
    assert_eq!(shared.len(), 1, "the first gateway records its master key: {shared:?}");

    let foreign = Server::start_with(Transport::Http, &[], env.clone()).await;
    let before = foreign.events().len();
    let (status, code) = failure(put_sse_s3(&foreign.s3(), "from-foreign", &bytes(100, 2)).await);
    assert_eq!((status, code.as_str()), (500, "InternalError"), "no data key wrapped by a key the others lack");
    // Its KMS keys sit beside its own master key: the others lack them too.
    let kms = foreign
        .s3()
        .put_object()
        .bucket("team")
        .key("kms-from-foreign")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(ByteStream::from(bytes(100, 2)))
        .send()
        .await;
    assert_eq!(failure(kms), (500, "InternalError".to_owned()), "nor by its KMS keys");
    assert!(!foreign.data_dir().join("keys/kms").exists(), "not even the default KMS key is made");
    assert_eq!(foreign.events().len(), before, "a refused write records nothing");
    assert!(foreign.log().contains("encryption.master_key_file"), "the log says how to mend it");
    put(&foreign.s3(), "team", "plain", &bytes(100, 3)).await;
    assert_eq!(recorded_master_keys(&foreign), shared, "a foreign key is never recorded as the shared one");

    let key_file = first.data_dir().join("keys/master.key");
    let mut with_key = env.clone();
    with_key.push(("ARTIFACT_STORE_MASTER_KEY_FILE".to_owned(), key_file.display().to_string()));
    let second = Server::start_with(Transport::Http, &[], with_key).await;
    assert_eq!(get(&second.s3(), "team", "from-first").await, bytes(100, 1));
    put_sse_s3(&second.s3(), "from-second", &bytes(100, 4)).await.expect("SSE-S3 with the shared key");
    assert_eq!(get(&first.s3(), "team", "from-second").await, bytes(100, 4));

    // A rotation: the first records its new key at its next start; the second, not restarted,
    // goes on with the old one, which the first keeps among its retired keys.
    artifact_store_conformance::cli::expect(&first, &["kms", "rotate-master"], 0);
    first.restart().await;
    let shared = recorded_master_keys(&first);
    assert_eq!(shared.len(), 2, "the rotated key is recorded: {shared:?}");
    put_sse_s3(&first.s3(), "after-rotation", &bytes(100, 5)).await.expect("SSE-S3 with the new key");
    put_sse_s3(&second.s3(), "before-restart", &bytes(100, 6)).await.expect("SSE-S3 with the retired key");
    assert_eq!(get(&second.s3(), "team", "after-rotation").await, bytes(100, 5));
    assert_eq!(get(&first.s3(), "team", "before-restart").await, bytes(100, 6));
}

/// Found by an attacker's pass: a gateway starting on a data folder other gateways share
/// removed every temp file in it, the bodies of the others' uploads in flight, which then
/// failed with 500: any restart or rolling upgrade failed every upload of the cluster. On a
/// shared registry a gateway starting removes only temp files untouched for an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_starting_beside_others_leaves_their_uploads_in_flight_alone_issue_19() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    // One blob store for both: the same environment (an upstream prefix is drawn per call).
    let env = shared_env(&db.url);
    let first = start_gateways(1, &data, &env, &[]).await.remove(0);
    create_bucket(&first.s3(), "uploads").await;
    let body = bytes(8 << 20, 5);
    let head = first
        .request("PUT", "/uploads/in-flight")
        .header("content-length", &body.len().to_string())
        .sign(ROOT, std::time::SystemTime::now(), Payload::Unsigned)
        .to_bytes();
    let mut upload = tokio::net::TcpStream::connect(first.addr()).await.expect("connect");
    upload.write_all(&head).await.expect("send the head");
    let (sent, rest) = body.split_at(5 << 20);
    upload.write_all(sent).await.expect("send most of the body");
    // Its body is being written to a temp file on the local store (the S3 backend streams it
    // upstream instead, and has none).
    let tmp = data.join("tmp");
    for _ in 0..100 {
        if first.on_s3_backend() || std::fs::read_dir(&tmp).is_ok_and(|mut entries| entries.next().is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = start_gateways(1, &data, &env, &[]).await.remove(0);
    upload.write_all(rest).await.expect("send the rest of the body");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), upload.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "the upload in flight: {answer}\n{}", first.log());
    assert!(get(&second.s3(), "uploads", "in-flight").await == body, "the other gateway reads the upload's bytes");
}

/// Found by an attacker's pass: each gateway decides retention by its own clock, so a gateway
/// whose clock ran ten minutes ahead deleted a version under COMPLIANCE retention for five
/// more minutes, and its event, stamped by that clock, looked lawful to `verify`. A gateway
/// whose clock is more than 2 s off PostgreSQL's now decides no write (503) until it agrees.
/// (The clock is moved with libfaketime, preloaded into the gateway.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_whose_clock_is_off_decides_no_write_issue_19() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    let Some(db) = Database::create() else { return };
    if !Path::new(LIBFAKETIME).exists() {
        skip("libfaketime is not installed (scripts/install-test-deps.sh installs it)");
        return;
    }
    let (dir, data) = shared_folder();
    // One blob store for both: the same environment (an upstream prefix is drawn per call).
    let env = shared_env(&db.url);
    let honest = start_gateways(1, &data, &env, &[]).await.remove(0);
    let s3 = honest.s3();
    s3.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let until = aws_sdk_s3::primitives::DateTime::from_secs(
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
            + 300,
    );
    let locked = s3
        .put_object()
        .bucket("locked")
        .key("evidence")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"evidence"))
        .send()
        .await
        .expect("a version locked for five minutes");
    let version = locked.version_id().expect("version id").to_owned();
    // The gateway starts with its clock right, then it jumps ten minutes ahead (libfaketime
    // reads the offset from the file at every call).
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0").expect("the clock's offset");
    let offset_file = offset.display().to_string();
    let faked = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let fast = start_gateways(1, &data, &env, &faked).await.remove(0);
    std::fs::write(&offset, "+10m").expect("the clock jumps");
    let before = honest.events().len();
    let deleted = fast.s3().delete_object().bucket("locked").key("evidence").version_id(&version).send().await;
    assert_eq!(failure(deleted).0, 503, "a delete decided by a clock ten minutes ahead\n{}", fast.log());
    let written = fast.s3().put_object().bucket("locked").key("other").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(failure(written).0, 503, "a write stamped by a clock ten minutes ahead");
    assert!(fast.log().contains("ms ahead of PostgreSQL's"), "the log says why\n{}", fast.log());
    assert_eq!(honest.events().len(), before, "nothing recorded through the gateway whose clock is off");
    assert_eq!(get(&s3, "locked", "evidence").await, b"evidence", "the locked version stands");
    // The gateway whose clock agrees still writes.
    put(&s3, "locked", "other", b"y").await;
}

/// Found by an attacker's pass: `verify` on a shared registry checked this host's replica,
/// which took each event once, when it was pulled, so an event rewritten in PostgreSQL since
/// (a bucket's versioning turned to Suspended in its payload) passed: "chain intact". It now
/// walks PostgreSQL's events, re-hashed, against the replica's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_finds_an_event_rewritten_in_postgresql_issue_19() {
    let Some(db) = Database::create() else { return };
    let (_dir, data) = shared_folder();
    let server = gateways(1, &db.url, &data).await.remove(0);
    let s3 = server.s3();
    create_bucket(&s3, "audited").await;
    enable_versioning(&s3, "audited").await;
    put(&s3, "audited", "k", b"v").await;
    let verified = server.cli(&["verify", "--no-blobs"]);
    assert!(verified.status.success(), "before: {verified:#?}");
    let events = server.events();
    let versioning = of_type(&events, "v1.bucket.versioning.set")[0].sequence;
    psql(
        &db.url,
        &format!(
            "UPDATE events SET payload = convert_to('{{\"bucket\":\"audited\",\"status\":\"Suspended\"}}', 'UTF8') \
             WHERE seq = {versioning}"
        ),
    );
    let verified = server.cli(&["verify", "--no-blobs"]);
    let out = String::from_utf8_lossy(&verified.stdout).into_owned() + &String::from_utf8_lossy(&verified.stderr);
    assert_eq!(verified.status.code(), Some(1), "after the rewrite: {out}");
    assert!(out.contains(&format!("shared log: event {versioning} in PostgreSQL")), "{out}");
}
