//! The shared log on PostgreSQL: several registries (one per gateway), each with its own
//! replica, on one PostgreSQL database behave as one registry. Each test makes a database of its
//! own on the server `POSTGRES_URL` names (scripts/start-postgres.sh starts one); without it the
//! tests are reported as skipped.

use std::sync::Arc;
use std::time::Duration;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::identities::NewAccessKey;
use artifact_store_registry::{Caller, Error, Registry, postgres};

/// A database of its own for one test, dropped with it.
pub(crate) struct SharedDb {
    admin_url: String,
    name: String,
    url: String,
}

impl SharedDb {
    /// A fresh database, or `None` (the test is then skipped) when no server is configured.
    pub(crate) fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("POSTGRES_URL") else {
            crate::skip("POSTGRES_URL is not set: no PostgreSQL server to test on (scripts/start-postgres.sh)");
            return None;
        };
        Some(Self::create_on(admin_url))
    }

    /// A fresh database on the server `admin_url` names.
    fn create_on(admin_url: String) -> Self {
        let name = format!("registry_test_{}", std::process::id()) + &format!("_{}", next_id());
        let (base, _) = admin_url.rsplit_once('/').expect("a database in POSTGRES_URL");
        let url = format!("{base}/{name}");
        let statement = format!("CREATE DATABASE {name}");
        on_thread(&admin_url, move |client| client.batch_execute(&statement));
        Self { admin_url, name, url }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Every event of the shared log, read from PostgreSQL itself.
    fn events(&self) -> Vec<artifact_store_registry::Event> {
        on_thread(&self.url, |client| Ok(postgres::fetch_since(client, 0, 1000).map_err(|e| panic!("{e}")).unwrap()))
    }

    fn open(&self, replica: &tempfile::TempDir) -> Registry {
        Registry::open_shared(replica.path().join("registry.db"), &self.url, Arc::new(SystemClock)).unwrap()
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        on_thread(&self.admin_url, move |client| client.batch_execute(&statement));
    }
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// Runs `f` on a client of its own on a thread of its own: a client of the `postgres` crate
/// may not be made or dropped on an async runtime's thread.
fn on_thread<R: Send>(url: &str, f: impl FnOnce(&mut ::postgres::Client) -> Result<R, ::postgres::Error> + Send) -> R {
    std::thread::scope(|scope| {
        scope.spawn(|| f(&mut postgres::connect(url).expect("connect to PostgreSQL")).unwrap()).join().unwrap()
    })
}

/// Creates `count` buckets through `registry`, concurrently: a log of `count` events.
async fn create_buckets(registry: &Registry, count: usize) {
    let names: Vec<String> = (0..count).map(|n| format!("bucket-{n:04}")).collect();
    let creates = names.iter().map(|name| registry.create_bucket(Caller::system("test"), name, "us-east-1", false));
    for created in futures::future::join_all(creates).await {
        created.unwrap();
    }
}

fn key(id: &str) -> NewAccessKey {
    NewAccessKey { access_key: id.to_owned(), secret: format!("secret-of-{id}") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_gateway_is_read_through_another_at_once() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (db.open(&dir_a), db.open(&dir_b));
    for round in 0..20 {
        let name = format!("bucket-{round}");
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        writer.create_bucket(Caller::system("test"), &name, "us-east-1", false).await.unwrap();
        let read = name.clone();
        let seen = reader.read(move |views| views.bucket(&read)).await.unwrap();
        assert_eq!(seen.map(|bucket| bucket.name), Some(name), "read-after-write across gateways");
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_through_three_gateways_have_one_winner_and_one_chain() {
    let Some(db) = SharedDb::create() else { return };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let gateways: Vec<Registry> = dirs.iter().map(|dir| db.open(dir)).collect();
    for round in 0..10 {
        let racers: Vec<_> = (0..48)
            .map(|i| {
                let registry = gateways[i % 3].clone();
                tokio::spawn(async move {
                    registry
                        .create_bucket(
                            Caller::system(&format!("racer-{i}")),
                            &format!("contested-{round}"),
                            "us-east-1",
                            false,
                        )
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => created += 1,
                Err(Error::BucketAlreadyExists(_)) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(created, 1, "round {round}: exactly one gateway's create wins");
    }
    // Every gateway ran batches under the head's lock, and says how long it took to take it
    // and for how long it held it.
    for gateway in &gateways {
        let stats = gateway.stats();
        assert!(stats.head_wait_micros.load(std::sync::atomic::Ordering::Relaxed) > 0);
        assert!(stats.head_held_micros.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
    // Every replica, caught up, is the same chain as the shared log: same events, same hashes.
    let shared = db.events();
    assert_eq!(shared.len(), 10);
    for (position, event) in shared.iter().enumerate() {
        assert_eq!(event.sequence, position as u64 + 1, "gapless sequences");
    }
    for gateway in &gateways {
        gateway.catch_up_with_shared().await.unwrap();
        let verified = gateway.verify().await.unwrap();
        assert_eq!((verified.events, verified.first_mismatch), (10, None));
        let local = gateway.fetch_since(0, 1000).await.unwrap();
        assert_eq!(local, shared);
    }
    for gateway in gateways {
        gateway.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_through_one_gateway_authenticate_on_another_and_die_with_their_deletion() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (db.open(&dir_a), db.open(&dir_b));
    let system = || Caller::system("test");
    a.create_account(system(), "team", "111122223333", None, key("AKIATEAMROOT00000001")).await.unwrap();
    a.create_user(system(), "team", "alice").await.unwrap();
    a.create_access_key(system(), "team", "alice", key("AKIATEAMALICE0000001")).await.unwrap();
    assert_eq!(
        b.access_key_secret("AKIATEAMALICE0000001").await.unwrap().as_deref(),
        Some("secret-of-AKIATEAMALICE0000001"),
        "the secret is found by the gateway that did not make it"
    );
    b.delete_access_key(system(), "AKIATEAMALICE0000001").await.unwrap();
    a.catch_up_with_shared().await.unwrap();
    assert_eq!(a.access_key_secret("AKIATEAMALICE0000001").await.unwrap(), None, "deleted everywhere");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_catches_up_by_itself() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (db.open(&dir_a), db.open(&dir_b));
    a.create_bucket(Caller::system("test"), "news", "us-east-1", false).await.unwrap();
    // No read or write through `b`: its listener (a notification, or its poll) catches it up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while b.committed_sequence() < 1 {
        assert!(std::time::Instant::now() < deadline, "the idle gateway never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.close().await;
    b.close().await;
}

/// A gateway that joins a shared log holding more events than a catch-up applies with the
/// writer's small page cache copies them all in its first group commit, with the views of the
/// gateway that wrote them, and writes normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_joining_a_long_log_catches_up_in_bulk_and_writes_on() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = db.open(&dir_a);
    create_buckets(&a, 1_500).await;
    let b = db.open(&dir_b);
    b.catch_up_with_shared().await.unwrap();
    assert_eq!(b.committed_sequence(), a.committed_sequence());
    b.create_bucket(Caller::system("test"), "after-the-catch-up", "us-east-1", false).await.unwrap();
    assert_eq!(
        b.stats().head_caught_up_events.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing was left to apply"
    );
    let seen = a.read(|views| views.bucket("after-the-catch-up")).await.unwrap();
    assert!(seen.is_some(), "a write through the gateway that caught up reaches the other");
    b.catch_up_with_shared().await.unwrap();
    a.close().await;
    b.close().await;
    let dump = |dir: &tempfile::TempDir| {
        let conn = artifact_store_registry::sqlite::open_offline(dir.path().join("registry.db")).unwrap();
        String::from_utf8_lossy(&artifact_store_registry::sqlite::views::dump(&conn).unwrap()).into_owned()
    };
    assert_eq!(dump(&dir_b), dump(&dir_a));
}

/// A gateway far behind the shared log (new, or back after a long absence) whose first work is
/// a write applies its backlog before it asks for the head's lock, not while it holds it: the
/// other gateways' batches, which wait for the lock, do not wait for its catch-up (nor fail
/// on their lock timeout while a long one runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_far_behind_applies_its_backlog_before_it_takes_the_head() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = db.open(&dir_a);
    create_buckets(&a, 1_500).await;
    let backlog = a.committed_sequence();
    let b = db.open(&dir_b);
    b.create_bucket(Caller::system("test"), "first-work", "us-east-1", false).await.unwrap();
    assert_eq!(b.committed_sequence(), backlog + 1);
    assert_eq!(
        b.stats().head_caught_up_events.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the backlog was applied under the lock"
    );
    let stats = b.stats();
    assert!(stats.head_held_micros.load(std::sync::atomic::Ordering::Relaxed) > 0);
    a.close().await;
    b.close().await;
}

/// Two gateways' writes wait for the head, which the test holds: the one that takes it second
/// applies, under the lock, the event the first committed while it waited, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_others_commit_while_a_batch_waits_is_applied_under_the_head_and_counted() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (Arc::new(db.open(&dir_a)), Arc::new(db.open(&dir_b)));
    a.create_bucket(Caller::system("test"), "warm-a", "us-east-1", false).await.unwrap();
    b.create_bucket(Caller::system("test"), "warm-b", "us-east-1", false).await.unwrap();
    let caught_up = || {
        [&a, &b].iter().map(|r| r.stats().head_caught_up_events.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>()
    };
    let before = caught_up();

    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let url = db.url().to_owned();
    let holder = std::thread::spawn(move || {
        let mut client = postgres::connect(&url).unwrap();
        let mut tx = client.transaction().unwrap();
        tx.query("SELECT next_seq FROM registry_head FOR UPDATE", &[]).unwrap();
        locked.send(()).unwrap();
        released.recv().unwrap();
        tx.rollback().unwrap();
    });
    is_locked.recv().unwrap();
    let writes = [("a", Arc::clone(&a)), ("b", Arc::clone(&b))].map(|(name, registry)| {
        tokio::spawn(async move {
            registry.create_bucket(Caller::system("test"), &format!("from-{name}"), "us-east-1", false).await
        })
    });
    // Both batches have copied what was committed and wait for the head.
    let waiting =
        format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'", db.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let statement = waiting.clone();
        let count: i64 = on_thread(&db.admin_url, move |client| Ok(client.query_one(&statement, &[])?.get(0)));
        if count == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the two writes never waited for the head ({count} waiting)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    release.send(()).unwrap();
    holder.join().unwrap();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(caught_up() - before, 1, "the second holder applies the first one's event under the lock");
    for registry in [a, b] {
        Arc::into_inner(registry).expect("the writes are done").close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_another_log_is_refused() {
    let Some(db) = SharedDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let own = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    own.create_bucket(Caller::system("test"), "mine", "us-east-1", false).await.unwrap();
    own.close().await;
    drop(own);
    match Registry::open_shared(dir.path().join("registry.db"), &db.url, Arc::new(SystemClock)) {
        Err(Error::CommitFailed(reason)) => assert!(reason.contains("does not belong"), "{reason}"),
        other => panic!("a registry of its own was taken as a replica: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_held_by_one_gateway_at_a_time_and_freed_with_its_holder() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (db.open(&dir_a), db.open(&dir_b));
    let held = a.try_lease("gc").await.unwrap().expect("a free lease is granted");
    assert!(held.confirm().await.unwrap());
    assert!(b.try_lease("gc").await.unwrap().is_none(), "held by the other gateway");
    assert!(b.try_lease("lifecycle").await.unwrap().is_some(), "leases are independent");
    drop(held);
    // The holder's session closes on a thread of its own: the lease frees soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while b.try_lease("gc").await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the lease was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.close().await;
    b.close().await;
}

/// A gateway that keeps asking for a lease another holds (an idle gateway asks for the
/// checkpoints' every second) asks on one session, not on a new one each time: each would have
/// the server start a process, and a dozen idle gateways would start dozens a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_asked_for_again_and_again_is_asked_on_one_session() {
    let Some(db) = SharedDb::create() else { return };
    let dir_a = tempfile::tempdir().unwrap();
    let a = db.open(&dir_a);
    let held = a.try_lease("checkpoints").await.unwrap().expect("a free lease is granted");
    let (cutter, _replica, b) = through_a_cutter(&db).await;
    let before = cutter.connections();
    for _ in 0..10 {
        assert!(b.try_lease("checkpoints").await.unwrap().is_none(), "held by the other gateway");
    }
    let opened = cutter.connections() - before;
    assert!(opened <= 1, "{opened} sessions opened for 10 refused attempts at a lease");
    // Once it is free, the same gateway takes it, and asks on a session again for the next.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        if let Some(lease) = b.try_lease("checkpoints").await.unwrap() {
            break lease;
        }
        assert!(std::time::Instant::now() < deadline, "the lease was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(taken.confirm().await.unwrap());
    assert!(a.try_lease("checkpoints").await.unwrap().is_none(), "held by the gateway that took it");
    drop(taken);
    a.close().await;
    b.close().await;
}

impl SharedDb {
    /// Ends every session on the database, as a restart of PostgreSQL or a cut network does,
    /// and waits until they are gone.
    fn end_sessions(&self) {
        let statement = format!(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        );
        on_thread(&self.admin_url, move |client| client.batch_execute(&statement));
    }

    /// Lets sessions on the database be made, or not (`ALTER DATABASE ... ALLOW_CONNECTIONS`):
    /// PostgreSQL out of reach, as far as the registry can tell.
    fn allow_connections(&self, allowed: bool) {
        let statement = format!("ALTER DATABASE {} ALLOW_CONNECTIONS {allowed}", self.name);
        on_thread(&self.admin_url, move |client| client.batch_execute(&statement));
    }
}

/// Connections cut while the gateway was idle (PostgreSQL restarted): the next write and the
/// next read each find out on their first query and are served on a connection made again,
/// rather than fail once PostgreSQL is back to take them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_while_idle_are_made_again_and_no_request_fails() {
    let Some(db) = SharedDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = db.open(&dir);
    a.create_bucket(Caller::system("test"), "before", "us-east-1", false).await.unwrap();
    a.catch_up_with_shared().await.unwrap();
    db.end_sessions();
    a.create_bucket(Caller::system("test"), "after", "us-east-1", false).await.expect("a write after the cut");
    db.end_sessions();
    a.catch_up_with_shared().await.expect("a read's freshness check after the cut");
    assert!(a.read(|views| views.bucket("after")).await.unwrap().is_some());
    a.close().await;
}

/// A batch that cannot reach PostgreSQL gives its writes up before running them: their callers
/// hear that the shared log is out of reach (which the S3 layer answers 503, to be retried once
/// the database is back), not that the registry stopped or could not commit to its own disk,
/// and the registry takes writes again once PostgreSQL is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_given_up_while_postgresql_is_out_of_reach_fail_as_unreachable_and_the_next_succeed() {
    let Some(db) = SharedDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = db.open(&dir);
    a.create_bucket(Caller::system("test"), "before", "us-east-1", false).await.unwrap();
    db.allow_connections(false);
    db.end_sessions();
    let refused = a.create_bucket(Caller::system("test"), "during", "us-east-1", false).await;
    db.allow_connections(true);
    assert!(matches!(refused, Err(Error::SharedLogUnreachable(_))), "{refused:?}");
    a.create_bucket(Caller::system("test"), "after", "us-east-1", false).await.expect("a write once it is back");
    let buckets: Vec<String> = db.events().iter().map(|e| e.subject_id.clone()).collect();
    assert!(!buckets.iter().any(|b| b == "during"), "{buckets:?}");
    a.close().await;
}

/// A lease whose session was ended (a restart, a cut network) is seen lost by its holder, which
/// must stop, since another gateway may take it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_session_ended_is_seen_lost_by_its_holder() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (db.open(&dir_a), db.open(&dir_b));
    let held = a.try_lease("checkpoints").await.unwrap().expect("a free lease is granted");
    assert!(held.confirm().await.unwrap());
    db.end_sessions();
    let taken = b.try_lease("checkpoints").await.unwrap();
    assert!(taken.is_some(), "the lease is free once its session ended");
    assert!(!held.confirm().await.unwrap(), "two gateways hold the lease");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_changed_in_postgresql_is_refused_before_any_replica_applies_it() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = db.open(&dir_a);
    a.create_bucket(Caller::system("test"), "honest", "us-east-1", false).await.unwrap();
    a.create_bucket(Caller::system("test"), "target", "us-east-1", false).await.unwrap();
    a.close().await;
    // Someone with access to the database renames the second bucket in its event, leaving the
    // hashes as they were.
    on_thread(&db.url, |client| {
        client.batch_execute(
            "UPDATE events SET payload = convert_to(replace(convert_from(payload, 'UTF8'), 'target', 'forged'), 'UTF8')
             WHERE seq = 2",
        )
    });
    let b = db.open(&dir_b);
    // Refused as a broken chain at the changed event, which no retry mends.
    match b.catch_up_with_shared().await {
        Err(Error::ChainBroken { sequence: 2 }) => {}
        other => panic!("a changed event was copied into a replica: {other:?}"),
    }
    assert!(b.read(|views| views.bucket("forged")).await.is_err(), "nothing is read from a replica that refused it");
    b.close().await;
}

/// A TCP relay to PostgreSQL that, once armed, cuts the connection at the next `COMMIT`:
/// after letting it through (the commit happens, its answer is lost), or before (it never
/// arrives; the server's transaction waits, idle). Either way the client cannot tell.
struct CommitCutter {
    addr: std::net::SocketAddr,
    armed: Arc<std::sync::atomic::AtomicBool>,
    forward: Arc<std::sync::atomic::AtomicBool>,
    /// Connections made through the relay so far: sessions the client opened.
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl CommitCutter {
    fn start(upstream: std::net::SocketAddr) -> Self {
        use std::io::{Read as _, Write as _};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forward = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (armed_for_relay, forward_for_relay) = (Arc::clone(&armed), Arc::clone(&forward));
        let connections_for_relay = Arc::clone(&connections);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                connections_for_relay.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = std::net::TcpStream::connect(upstream) else { return };
                let (armed, forward) = (Arc::clone(&armed_for_relay), Arc::clone(&forward_for_relay));
                // Server to client, until the cut.
                let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
                let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let cut_for_answers = Arc::clone(&cut);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16 * 1024];
                    while let Ok(n) = from_server.read(&mut buffer) {
                        if n == 0 || cut_for_answers.load(Ordering::SeqCst) {
                            break;
                        }
                        if to_client.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
                // Client to server: a COMMIT, when armed, goes through and the answer is cut.
                std::thread::spawn(move || {
                    let (mut from_client, mut to_server) = (client, server);
                    let mut buffer = [0u8; 16 * 1024];
                    while let Ok(n) = from_client.read(&mut buffer) {
                        if n == 0 {
                            break;
                        }
                        let commit = memchr_commit(&buffer[..n]);
                        if commit && armed.swap(false, Ordering::SeqCst) {
                            cut.store(true, Ordering::SeqCst);
                            if forward.load(Ordering::SeqCst) {
                                let _ = to_server.write_all(&buffer[..n]);
                            }
                            // The client's side closes at once, whether the server has
                            // committed yet or not; the server's side is left open, as a
                            // lost network leaves it.
                            let _ = from_client.shutdown(std::net::Shutdown::Both);
                            std::thread::sleep(std::time::Duration::from_secs(120));
                            let _ = to_server.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        if to_server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, armed, forward, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The URL of `url`'s database through the relay.
    fn url(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("user@host in the URL");
        let (_, database) = rest.split_once('/').expect("a database in the URL");
        format!("{scheme_user}@{}/{database}", self.addr)
    }

    /// Cuts at the next COMMIT, after letting it through when `forward`.
    fn arm(&self, forward: bool) {
        self.forward.store(forward, std::sync::atomic::Ordering::SeqCst);
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A gateway's registry whose connections to `db` go through a [`CommitCutter`], with one
/// write committed through it (bucket `before`).
async fn through_a_cutter(db: &SharedDb) -> (CommitCutter, tempfile::TempDir, Registry) {
    let upstream: std::net::SocketAddr = {
        let (_, rest) = db.url().split_once('@').unwrap();
        rest.split_once('/').unwrap().0.parse().expect("host:port of the server")
    };
    let cutter = CommitCutter::start(upstream);
    let dir = tempfile::tempdir().unwrap();
    let registry =
        Registry::open_shared(dir.path().join("registry.db"), &cutter.url(db.url()), Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "before", "us-east-1", false).await.unwrap();
    (cutter, dir, registry)
}

/// Whether the bytes hold a simple-query `COMMIT`.
fn memchr_commit(bytes: &[u8]) -> bool {
    bytes.windows(7).any(|w| w == b"COMMIT\0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_acknowledged_when_the_shared_log_holds_it() {
    let Some(db) = SharedDb::create() else { return };
    let (cutter, _replica, registry) = through_a_cutter(&db).await;

    cutter.arm(true);
    let answered = registry.create_bucket(Caller::system("test"), "lost-answer", "us-east-1", false).await;
    let shared = db.events();
    assert_eq!(shared.len(), 2, "the COMMIT went through: the shared log holds both buckets");
    // What the shared log holds was written: the caller hears so, not of a failure that
    // would make it retry (or give up on) a write that stands.
    answered.expect("a committed write is acknowledged, though the COMMIT's answer was lost");
    let seen = registry.read(|views| views.bucket("lost-answer")).await.unwrap();
    assert!(seen.is_some(), "the replica holds what was acknowledged");
    registry.create_bucket(Caller::system("test"), "after", "us-east-1", false).await.unwrap();
    registry.close().await;
}

/// A PostgreSQL server of the test's own (scripts/start-postgres.sh), for server settings no
/// other test may see; stopped and deleted on drop.
struct OwnPostgres {
    dir: tempfile::TempDir,
    url: String,
}

impl OwnPostgres {
    fn script(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
    }

    fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("artifact-store-own-pg-").tempdir().unwrap();
        let ran = std::process::Command::new(Self::script("start-postgres.sh"))
            .env("POSTGRES_DIR", dir.path().join("pg"))
            .output()
            .unwrap();
        assert!(ran.status.success(), "start-postgres.sh: {}", String::from_utf8_lossy(&ran.stderr));
        let stdout = String::from_utf8_lossy(&ran.stdout);
        let url = stdout.lines().find_map(|line| line.strip_prefix("POSTGRES_URL=")).expect("POSTGRES_URL");
        Self { dir, url: url.to_owned() }
    }

    /// Sets a server-wide setting (as the superuser, whom the test server trusts on loopback)
    /// and has the server read its settings again; `None` resets it.
    fn set(&self, name: &str, value: Option<&str>) {
        let superuser = self.url.replacen("artifact_store@", "postgres@", 1);
        let statement = match value {
            Some(value) => format!("ALTER SYSTEM SET {name} = '{value}'"),
            None => format!("ALTER SYSTEM RESET {name}"),
        };
        on_thread(&superuser, move |client| {
            client.batch_execute(&statement)?;
            client.batch_execute("SELECT pg_reload_conf()")
        });
        // The server's processes read the file again on their own time.
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script("stop-postgres.sh")).arg(self.dir.path().join("pg")).output();
    }
}

/// A COMMIT whose answer was lost, waiting for a synchronous standby: acknowledged only once
/// the standby holds it, as an answered COMMIT is. Ending its server process (as one whose
/// COMMIT never arrived is ended) would make it visible without the standby, and a failover
/// would then lose an acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_waiting_for_a_standby_is_acknowledged_only_once_the_standby_has_it() {
    if std::env::var_os("POSTGRES_URL").is_none() {
        crate::skip("POSTGRES_URL is not set: PostgreSQL is not installed for this run (scripts/install-test-deps.sh)");
        return;
    }
    let server = OwnPostgres::start();
    let db = SharedDb::create_on(server.url.clone());
    let (cutter, _replica, registry) = through_a_cutter(&db).await;

    // Every commit now waits for a standby that does not answer (until the setting is reset).
    server.set("synchronous_standby_names", Some("standby_that_has_not_answered"));
    cutter.arm(true);
    let write = tokio::spawn(async move {
        let answered = registry.create_bucket(Caller::system("test"), "lost-answer", "us-east-1", false).await;
        (answered, registry)
    });
    // Three times as long as a transaction still in progress is waited for before its process
    // is ended.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acknowledged_early = write.is_finished();
    server.set("synchronous_standby_names", None);
    let (answered, registry) = write.await.unwrap();
    assert!(!acknowledged_early, "a write the standby did not hold was acknowledged: {answered:?}");
    answered.expect("acknowledged once the standby answered");
    assert_eq!(db.events().len(), 2, "the shared log holds both buckets");
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_never_arrived_is_reported_failed_and_leaves_nothing() {
    let Some(db) = SharedDb::create() else { return };
    let (cutter, _replica, registry) = through_a_cutter(&db).await;

    // The COMMIT is lost on its way: the server's transaction waits, idle, holding the head's
    // lock. The writer learns its outcome by ending it (a rollback), not by waiting out the
    // server's idle timeout, and reports the write failed.
    cutter.arm(false);
    let answered = registry.create_bucket(Caller::system("test"), "never-committed", "us-east-1", false).await;
    assert!(
        matches!(answered, Err(Error::SharedLogUnreachable(_))),
        "a write whose COMMIT never arrived is not acknowledged, for want of the database: {answered:?}"
    );
    let shared = db.events();
    assert_eq!(shared.len(), 1, "the shared log holds only the first bucket");
    // The stranded transaction was ended, not left to the server's idle timeout (60 s) while
    // it holds the head's lock that every gateway's writes wait for.
    let head_free = on_thread(&db.url, |client| {
        for _ in 0..50 {
            let mut tx = client.transaction()?;
            if tx.query("SELECT next_seq FROM registry_head WHERE id = 0 FOR UPDATE NOWAIT", &[]).is_ok() {
                return Ok(true);
            }
            drop(tx);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(false)
    });
    assert!(head_free, "the head's lock is held by a transaction whose COMMIT never arrived");
    // The next write goes through.
    registry.create_bucket(Caller::system("test"), "after", "us-east-1", false).await.unwrap();
    let seen = registry.read(|views| views.bucket("never-committed")).await.unwrap();
    assert!(seen.is_none(), "nothing of the failed write is visible");
    registry.close().await;
}

/// A replica whose commit fails after the shared log's (a full disk under it): the shared log
/// holds the batch, so its writes stand and are acknowledged. Every gateway reads them, the one
/// whose replica failed as soon as it has copied them again, and its replica stays a copy of
/// the shared chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stand_when_a_replica_fails_to_commit_after_the_shared_log() {
    let Some(db) = SharedDb::create() else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (db.open(&dir_a), db.open(&dir_b));
    let test = || Caller::system("test");
    a.create_bucket(test(), "before", "us-east-1", false).await.unwrap();

    a.fail_replica_commits(1);
    a.create_bucket(test(), "during", "us-east-1", false).await.expect("acknowledged: the shared log holds it");
    let shared = db.events();
    assert_eq!(shared.len(), 2, "the shared log holds both buckets");
    for (name, registry) in [("another gateway", &b), ("the gateway whose replica failed", &a)] {
        let seen = registry.read(|views| views.bucket("during")).await.unwrap();
        assert!(seen.is_some(), "{name} reads the acknowledged write");
    }
    a.create_bucket(test(), "after", "us-east-1", false).await.unwrap();
    assert!(b.read(|views| views.bucket("after")).await.unwrap().is_some());
    a.close().await;
    b.close().await;

    // The failed replica holds the shared chain, event for event, and its views replay it.
    let shared = db.events();
    let mut replica = artifact_store_registry::sqlite::open_offline(dir_a.path().join("registry.db")).unwrap();
    let verified = artifact_store_registry::log::verify(&replica).unwrap();
    assert_eq!(verified.first_mismatch, None);
    assert_eq!(verified.head.sequence, shared.last().unwrap().sequence);
    assert_eq!(verified.head.hash, shared.last().unwrap().hash);
    let dump = artifact_store_registry::sqlite::views::dump(&replica).unwrap();
    artifact_store_registry::log::replay(&mut replica).unwrap();
    assert_eq!(artifact_store_registry::sqlite::views::dump(&replica).unwrap(), dump);
}
