//! Accounts, users, access keys and users' policies: each change checked as IAM checks it,
//! recorded as an event without its secret, and replayed to the same views.

use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::identities::NewAccessKey;
use artifact_store_registry::sqlite::views;
use artifact_store_registry::{Caller, Error, log, sqlite};

use crate::engines::{self, Opened};

fn key(id: &str) -> NewAccessKey {
    NewAccessKey { access_key: id.to_owned(), secret: format!("secret-of-{id}-0123456789abcdefghijklmno") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_changes_are_checked_recorded_without_secrets_and_replayed() {
    for opened in engines::each(|| Arc::new(ManualClock::new(1_800_000_000_000))) {
        checked_recorded_without_secrets_and_replayed(&opened).await;
    }
}

async fn checked_recorded_without_secrets_and_replayed(opened: &Opened) {
    let registry = &opened.registry;
    let another = opened.another_gateway();
    let op = || Caller::system("operator");

    // The first start records the root account, its root user and the configured key; a
    // second start records nothing more.
    let root = registry.ensure_root_account("ROOTKEY0000000000000", "111111111111").await.unwrap();
    assert_eq!((root.name.as_str(), root.id.as_str()), ("root", "111111111111"));
    let head = registry.committed_sequence();
    registry.ensure_root_account("ROOTKEY0000000000000", "999999999999").await.unwrap();
    assert_eq!(registry.committed_sequence(), head, "a second start records nothing");
    assert_eq!(
        registry.access_key_secret("ROOTKEY0000000000000").await.unwrap(),
        None,
        "the root secret is configured"
    );

    // Names as IAM takes them; duplicates and unknown owners refused.
    assert!(matches!(registry.create_user(op(), "root", "bad name").await, Err(Error::InvalidIdentityName(_))));
    assert!(matches!(registry.create_user(op(), "nobody", "alice").await, Err(Error::NoSuchEntity(_))));
    registry.create_user(op(), "root", "alice").await.unwrap();
    assert!(matches!(registry.create_user(op(), "root", "alice").await, Err(Error::EntityAlreadyExists(_))));
    assert!(matches!(registry.create_user(op(), "root", "root").await, Err(Error::EntityAlreadyExists(_))));

    // A key's secret is kept beside the log, never in it.
    registry.create_access_key(op(), "root", "alice", key("ALICEKEY000000000000")).await.unwrap();
    assert_eq!(
        registry.access_key_secret("ALICEKEY000000000000").await.unwrap().as_deref(),
        Some("secret-of-ALICEKEY000000000000-0123456789abcdefghijklmno")
    );
    if let Some((another, _)) = &another {
        let secret = another.access_key_secret("ALICEKEY000000000000").await.unwrap();
        assert!(secret.is_some_and(|s| s.starts_with("secret-of-ALICE")), "signs on every gateway");
    }
    let taken = registry.create_access_key(op(), "root", "alice", key("ROOTKEY0000000000000")).await;
    assert!(matches!(taken, Err(Error::EntityAlreadyExists(_))));

    // Policies are checked as identity policies before they are recorded.
    let malformed = registry.put_user_policy(op(), "root", "alice", "p", r#"{"Statement":[]}"#.into()).await;
    assert!(matches!(malformed, Err(Error::MalformedPolicy(_))), "{malformed:?}");
    let reads = r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#;
    registry.put_user_policy(op(), "root", "alice", "reads", reads.into()).await.unwrap();

    // A user with keys or policies stays; the root user always does.
    assert!(matches!(registry.delete_user(op(), "root", "alice").await, Err(Error::DeleteConflict(_))));
    assert!(matches!(registry.delete_user(op(), "root", "root").await, Err(Error::DeleteConflict(_))));
    assert_eq!(registry.set_access_key_status(op(), "ALICEKEY000000000000", true).await.unwrap(), None);
    registry.set_access_key_status(op(), "ALICEKEY000000000000", false).await.unwrap().unwrap();
    let key_now = registry.read(|r| r.access_key("ALICEKEY000000000000")).await.unwrap().unwrap();
    assert!(!key_now.active);
    registry.delete_access_key(op(), "ALICEKEY000000000000").await.unwrap();
    assert_eq!(registry.access_key_secret("ALICEKEY000000000000").await.unwrap(), None, "the secret goes with its key");
    if let Some((another, replica)) = another {
        // Signing checks the key's state first, a read that catches the gateway up.
        let state = another.read(|r| r.access_key("ALICEKEY000000000000")).await.unwrap();
        assert!(state.is_some_and(|key| key.deleted), "deleted on every gateway");
        assert_eq!(another.access_key_secret("ALICEKEY000000000000").await.unwrap(), None, "on every gateway");
        another.close().await;
        let conn = sqlite::open_offline(&replica).unwrap();
        let left: u64 = conn
            .query_row("SELECT count(*) FROM access_key_secrets WHERE access_key = 'ALICEKEY000000000000'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(left, 0, "nor left in another gateway's replica");
    }
    assert!(matches!(registry.delete_access_key(op(), "ALICEKEY000000000000").await, Err(Error::NoSuchEntity(_))));
    registry.delete_user_policy(op(), "root", "alice", "reads").await.unwrap();
    registry.delete_user(op(), "root", "alice").await.unwrap();
    // The deleted key still names whose events it signed.
    let owner = registry.read(|r| r.account_of_key("ALICEKEY000000000000")).await.unwrap().unwrap();
    assert_eq!(owner.name, "root");

    let other =
        registry.create_account(op(), "partner", "222222222222", None, key("PARTNERKEY0000000000")).await.unwrap();
    assert_eq!(other.id, "222222222222");
    let same_id = registry.create_account(op(), "third", "222222222222", None, key("THIRDKEY000000000000")).await;
    assert!(matches!(same_id, Err(Error::EntityAlreadyExists(_))));
    let partner_root = registry.read(|r| r.access_keys("partner", "root")).await.unwrap();
    assert_eq!(partner_root.len(), 1, "{}", opened.engine);
    registry.close().await;

    // No event holds a secret, and a replay from the log alone gives the same views.
    let conn = sqlite::open_offline(opened.path()).unwrap();
    let payloads: Vec<String> = conn
        .prepare("SELECT CAST(payload AS TEXT) FROM events")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(payloads.iter().all(|p| !p.contains("secret-of-")), "a secret reached the log");
    let before = views::dump(&conn).unwrap();
    let mut conn = conn;
    let replayed = log::replay(&mut conn).unwrap();
    assert_eq!(replayed.first_violation, None);
    assert_eq!(views::dump(&conn).unwrap(), before);
}
