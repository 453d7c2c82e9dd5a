//! Contract cases that every implementation of a port must pass: run once against the
//! in-memory fakes (`tests/it/contract_memory.rs`) and once against the AWS adapters on the
//! emulator (`tests/e2e/`), so the fakes the fast tests rely on cannot drift from
//! what the product runs on.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use cdf_provisioning::domain::bulk::{BulkTask, RowOutcome, RowResult, TaskId, TaskStatus};
use cdf_provisioning::domain::checkpoint::{Checkpoint, Checkpoints, PolicyStep};
use cdf_provisioning::domain::record::{NewRecord, Outcome};
use cdf_provisioning::domain::registry::ThingDeleted;
use cdf_provisioning::domain::{
    Arn, CommandError, CommandRecord, CommandResult, CommandStatus, CommandType, ErrorCode, IdempotencyKey, LeaseToken,
    Timestamp,
};
use cdf_provisioning::ports::bulk::{Acceptance, FinishedRow};
use cdf_provisioning::ports::state::TakeOver;
use cdf_provisioning::ports::{
    BulkStore, Certificates, CommandQueue, CommandSender, CreateOutcome, ErrorKind, StateStore, TemplateStore,
    WriteCondition,
};

const NOW: i64 = 1_764_000_000_000;
const LEASE_MS: i64 = 60_000;
/// The expiry a take-over sets: later than a fresh record's (`NOW` + 1 day, in seconds).
const EXPIRES_LATER: i64 = NOW / 1000 + 20 * 86_400;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn tok(token: &str) -> LeaseToken {
    LeaseToken::new(token)
}

fn fresh(key: &IdempotencyKey, token: &str) -> CommandRecord {
    CommandRecord::start(NewRecord {
        key: key.clone(),
        command_type: CommandType::DeleteThing,
        subject: Some("contract-thing".into()),
        payload_hash: "hash-1".into(),
        lease_token: tok(token),
        now: at(NOW),
        lease: std::time::Duration::from_millis(u64::try_from(LEASE_MS).unwrap()),
        retention: std::time::Duration::from_secs(86_400),
    })
}

fn condition_failed<T: std::fmt::Debug>(result: Result<T, cdf_provisioning::ports::PortError>, what: &str) {
    match result {
        Err(e) => assert_eq!(e.kind, ErrorKind::ConditionFailed, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected a lost condition, got {v:?}"),
    }
}

/// The command-record store: conditional creation, leases, checkpoints, outcomes.
/// `prefix` keeps the keys of one run apart from any other's.
pub async fn state_store_contract(store: &dyn StateStore, prefix: &str) {
    let key = IdempotencyKey::new(format!("{prefix}-contract"));
    assert_eq!(store.get(&key).await.unwrap(), None, "no record before it is created");

    // Created once; a second create returns the stored record, unchanged.
    let record = fresh(&key, "tok-1");
    assert_eq!(store.create(&record).await.unwrap(), CreateOutcome::Created);
    let mut other = fresh(&key, "tok-other");
    other.payload_hash = "hash-2".into();
    match store.create(&other).await.unwrap() {
        CreateOutcome::Exists(existing) => assert_eq!(*existing, record),
        CreateOutcome::Created => panic!("a second create must not replace the record"),
    }
    assert_eq!(store.get(&key).await.unwrap(), Some(record.clone()), "the record reads back exactly");

    // Only the holder's token renews, checkpoints or finishes.
    condition_failed(store.renew_lease(&key, &tok("tok-stale"), at(NOW + 2 * LEASE_MS)).await, "renew by a stranger");
    store.renew_lease(&key, &tok("tok-1"), at(NOW + 2 * LEASE_MS)).await.unwrap();
    let step = Checkpoint::Policy(PolicyStep { name: "contract-policy".into(), created: true });
    condition_failed(
        store.checkpoint(&key, &tok("tok-stale"), std::slice::from_ref(&step)).await,
        "checkpoint by a stranger",
    );
    store.checkpoint(&key, &tok("tok-1"), std::slice::from_ref(&step)).await.unwrap();
    // Several steps in one write.
    store.checkpoint(&key, &tok("tok-1"), &[Checkpoint::Groups, Checkpoint::Attached]).await.unwrap();

    // A take-over must name the token and lease version it saw, and find the lease expired;
    // it counts an attempt, moves the lease and grows its version.
    let (stale, tok_1, tok_2) = (tok("tok-stale"), tok("tok-1"), tok("tok-2"));
    let renewed = store.get(&key).await.unwrap().unwrap();
    assert_eq!(renewed.lease_version, 1, "a renewal grows the lease version");
    let expired = at(NOW + 2 * LEASE_MS);
    let over = |expected, seen_version, now| TakeOver {
        expected,
        seen_version,
        token: &tok_2,
        lease_until: at(NOW + 4 * LEASE_MS),
        now,
        expires_at: EXPIRES_LATER,
    };
    condition_failed(store.take_over(&key, over(Some(&stale), 1, expired)).await, "take-over with a stale token");
    assert_eq!(store.get(&key).await.unwrap().unwrap().expires_at, record.expires_at, "a refused take-over");
    condition_failed(
        store.take_over(&key, over(Some(&tok_1), 0, expired)).await,
        "take-over of a lease renewed since it was read",
    );
    condition_failed(
        store.take_over(&key, over(Some(&tok_1), 1, at(NOW + 2 * LEASE_MS - 1))).await,
        "take-over of a live lease",
    );
    let taken = store.take_over(&key, over(Some(&tok_1), 1, expired)).await.unwrap();
    assert_eq!(taken.attempts, 2);
    assert_eq!(taken.expires_at, EXPIRES_LATER, "a take-over pushes the record's expiry out");
    assert_eq!(taken.lease_token, Some(tok("tok-2")));
    assert_eq!(taken.lease_expires_at_ms, at(NOW + 4 * LEASE_MS));
    assert_eq!(taken.lease_version, 2);
    let saved = Checkpoints::decode(&taken.checkpoints).unwrap();
    assert!(
        saved.groups && saved.attached && saved.policies["contract-policy"].created,
        "checkpoints, several saved in one write, survive a take-over"
    );
    condition_failed(
        store.checkpoint(&key, &tok("tok-1"), &[Checkpoint::Attached]).await,
        "checkpoint by the old holder",
    );

    // A retryable failure gives the lease up, keeps the error and counts against the budget
    // (the take-over above did not: it was an attempt, not a failure).
    assert_eq!(taken.failures, 0);
    let throttled = CommandError::new(ErrorCode::Throttled, "slow down");
    store.release(&key, &tok("tok-2"), &throttled, at(NOW + 2)).await.unwrap();
    let released = store.get(&key).await.unwrap().unwrap();
    assert_eq!(released.lease_expires_at_ms, at(NOW + 2));
    assert_eq!(released.error, Some(throttled));
    assert_eq!(released.status, CommandStatus::InProgress);
    assert_eq!(released.failures, 1);
    assert_eq!(released.expires_at, EXPIRES_LATER, "a release keeps the expiry");

    // The sweep: records in progress whose lease expired before the instant given, no others.
    let live_key = IdempotencyKey::new(format!("{prefix}-contract-live"));
    store.create(&fresh(&live_key, "tok-live")).await.unwrap(); // leased until NOW + LEASE_MS
    let ours = |found: Vec<CommandRecord>| -> Vec<CommandRecord> {
        found.into_iter().filter(|r| r.idempotency_key.as_str().starts_with(&format!("{prefix}-contract"))).collect()
    };
    let stale = ours(store.stale_in_progress(at(NOW + 3), 100).await.unwrap());
    assert_eq!(stale, std::slice::from_ref(&released), "the released record, read whole; not the one leased");
    assert!(ours(store.stale_in_progress(at(NOW + 2), 100).await.unwrap()).is_empty(), "expired at, not before");
    let both = ours(store.stale_in_progress(at(NOW + LEASE_MS + 1), 100).await.unwrap());
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(store.stale_in_progress(at(NOW + LEASE_MS + 1), 1).await.unwrap().len(), 1, "at most the limit");

    // The outcome is recorded once, by the holder, and clears the retryable error.
    let result = CommandResult::DeleteThing(ThingDeleted { thing_name: "contract-thing".into(), ..Default::default() });
    condition_failed(
        store.finish(&key, &tok("tok-1"), &Outcome::Succeeded(result.clone()), at(NOW + 3)).await,
        "finish by the old holder",
    );
    let finished = store.finish(&key, &tok("tok-2"), &Outcome::Succeeded(result.clone()), at(NOW + 3)).await.unwrap();
    assert_eq!(finished.status, CommandStatus::Succeeded);
    assert_eq!(finished.result, Some(result));
    assert_eq!(finished.error, None);
    assert_eq!(finished.lease_token, Some(tok("tok-2")), "a finished record names the attempt that finished it");
    assert!(!finished.event_published);
    condition_failed(
        store
            .finish(&key, &tok("tok-2"), &Outcome::Failed(CommandError::new(ErrorCode::NotFound, "x")), at(NOW + 4))
            .await,
        "a second outcome",
    );
    condition_failed(store.renew_lease(&key, &tok("tok-2"), at(NOW + 5)).await, "renewing a finished command");
    store.mark_event_published(&key).await.unwrap();
    let done = store.get(&key).await.unwrap().unwrap();
    assert!(done.event_published);
    assert_eq!(done.updated_at_ms, at(NOW + 3));
    let stale = ours(store.stale_in_progress(at(NOW + LEASE_MS + 1), 100).await.unwrap());
    assert_eq!(
        stale.iter().map(|r| r.idempotency_key.clone()).collect::<Vec<_>>(),
        [live_key],
        "a finished record is not stale"
    );

    // A result larger than any one DynamoDB item (400 KB) is stored and read back whole.
    let key = IdempotencyKey::new(format!("{prefix}-contract-large"));
    let large = CommandResult::DeleteThing(ThingDeleted {
        thing_name: "contract-thing".into(),
        detached_principals: (0..6_000)
            .map(|i| Arn::new(format!("arn:aws:iot:us-east-1:123456789012:cert/{i:064x}")))
            .collect(),
        ..Default::default()
    });
    assert!(serde_json::to_string(&large).unwrap().len() > 500_000);
    store.create(&fresh(&key, "tok-1")).await.unwrap();
    let finished = store.finish(&key, &tok("tok-1"), &Outcome::Succeeded(large.clone()), at(NOW + 3)).await.unwrap();
    assert_eq!(finished.result.as_ref(), Some(&large));
    assert_eq!(store.get(&key).await.unwrap().unwrap().result, Some(large.clone()));
    match store.create(&fresh(&key, "tok-9")).await.unwrap() {
        CreateOutcome::Exists(existing) => assert_eq!(existing.result, Some(large)),
        CreateOutcome::Created => panic!("the record exists"),
    }
}

/// Certificate adoption's window: `recent_inactive_certificates(since)` lists an INACTIVE
/// certificate made from `csr` from a little before its creation on, and not when `since`
/// is after it; the listing and the description carry its creation date, about `now`.
/// `now` is the implementation's "now".
pub async fn certificate_window_contract(certificates: &dyn Certificates, csr: &str, now: Timestamp) {
    let issued = certificates.create_certificate_from_csr(csr, false).await.unwrap();
    let before = certificates.recent_inactive_certificates(now - std::time::Duration::from_secs(600)).await.unwrap();
    let listed = before.iter().find(|c| c.certificate_id == issued.certificate_id);
    assert!(listed.is_some(), "a certificate made after `since` is listed");
    let described = certificates.describe_certificate(&issued.certificate_id).await.unwrap();
    let about_now = |at: Option<Timestamp>| {
        at.is_some_and(|at| {
            now - std::time::Duration::from_secs(60) <= at && at <= now + std::time::Duration::from_secs(60)
        })
    };
    assert!(about_now(listed.and_then(|c| c.created_at)), "listed with its creation date: {listed:?}");
    assert!(about_now(described.created_at), "described with its creation date: {described:?}");
    let after = certificates.recent_inactive_certificates(now + std::time::Duration::from_secs(600)).await.unwrap();
    assert!(
        after.iter().all(|c| c.certificate_id != issued.certificate_id),
        "a certificate made before `since` is not listed"
    );
}

/// The command queue, fed in a batch and drained: what is sent in one batch is received, each
/// message once, with a receive count of 1, and deleting every receipt handle succeeds.
/// `queue` must be empty.
pub async fn queue_contract(sender: &dyn CommandSender, queue: &dyn CommandQueue) {
    let bodies: Vec<String> = (0..3).map(|i| format!(r#"{{"contract":{i}}}"#)).collect();
    assert!(sender.send_batch(&bodies).await.unwrap().is_empty(), "every message of the batch is accepted");
    assert!(sender.send_batch(&[]).await.unwrap().is_empty(), "an empty batch is no call and no failure");
    let mut received = Vec::new();
    for _ in 0..10 {
        received.extend(queue.receive(10, std::time::Duration::from_secs(1)).await.unwrap());
        if received.len() >= bodies.len() {
            break;
        }
    }
    let mut seen: Vec<String> = received.iter().map(|m| m.body.clone()).collect();
    seen.sort();
    assert_eq!(seen, bodies, "each message arrives once");
    assert!(received.iter().all(|m| m.receive_count == 1));
    let handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
    assert!(queue.delete_batch(&handles).await.unwrap().is_empty());
}

/// The bulk store: a task is created once, each row counts once, status moves only from the
/// state it is in, and rows page in order with an outcome filter.
/// `records` is the command-record store that shares `store`'s table (a row's outcome is
/// recorded there and counted here in one write).
pub async fn bulk_store_contract(store: &dyn BulkStore, records: &dyn StateStore, prefix: &str) {
    let key = IdempotencyKey::new(format!("{prefix}-bulk-contract"));
    let task = BulkTask {
        task_id: TaskId::for_key(&key),
        idempotency_key: key,
        provisioning_template_id: "contract".into(),
        template: r#"{"Resources":{}}"#.into(),
        cdf_provisioning_parameters: serde_json::json!({"caId": "x"}),
        row_events: true,
        status: TaskStatus::InProgress,
        total_rows: 5,
        invalid_rows: 1,
        success_count: 0,
        failure_count: 0,
        skipped_count: 0,
        chunks: 1,
        created_at_ms: at(NOW),
        updated_at_ms: at(NOW),
        accepted: false,
        event_published: false,
        expires_at: NOW / 1000 + 86_400,
    };
    assert_eq!(store.get_task(&task.task_id).await.unwrap(), None);
    assert_eq!(store.create_task(&task).await.unwrap(), task);
    let mut other = task.clone();
    other.total_rows = 99;
    assert_eq!(store.create_task(&other).await.unwrap(), task, "a second create returns the first task");

    let row = |n: u32, outcome: RowOutcome| RowResult {
        row: n,
        outcome,
        thing_name: Some(format!("thing-{n}")),
        certificate_id: None,
        certificate_arn: None,
        private_key_secret: None,
        error: (outcome == RowOutcome::Failed)
            .then(|| CommandError::new(ErrorCode::ValidationFailed, "bad").at("/parameters/1")),
    };
    for (n, outcome) in
        [(0, RowOutcome::Succeeded), (1, RowOutcome::Failed), (2, RowOutcome::Succeeded), (3, RowOutcome::Skipped)]
    {
        assert!(store.record_row(&task, &row(n, outcome), at(NOW + 1)).await.unwrap(), "row {n} counts");
    }
    assert!(!store.record_row(&task, &row(0, RowOutcome::Failed), at(NOW + 2)).await.unwrap(), "a row counts once");
    let counted = store.get_task(&task.task_id).await.unwrap().unwrap();
    assert_eq!((counted.success_count, counted.failure_count, counted.skipped_count), (2, 1, 1));
    assert_eq!(counted.updated_at_ms, at(NOW + 1));

    let page = store.rows(&task.task_id, None, 2, None).await.unwrap();
    assert_eq!(page.rows.iter().map(|r| r.row).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(page.rows[1], row(1, RowOutcome::Failed), "a row result reads back exactly");
    assert_eq!(page.next, Some(1));
    let rest = store.rows(&task.task_id, page.next, 10, None).await.unwrap();
    assert_eq!(rest.rows.iter().map(|r| r.row).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(rest.next, None);
    let succeeded = store.rows(&task.task_id, None, 10, Some(RowOutcome::Succeeded)).await.unwrap();
    assert_eq!(succeeded.rows.iter().map(|r| r.row).collect::<Vec<_>>(), [0, 2]);

    // A row run to its end: its record's outcome, its result and its count, in one write.
    let row_key = IdempotencyKey::new(format!("{prefix}-bulk-contract-row-4"));
    records.create(&fresh(&row_key, "tok-row")).await.unwrap();
    let failed = Outcome::Failed(CommandError::new(ErrorCode::NotFound, "no such group").at("/parameters/Group"));
    let (stale, held) = (tok("tok-stale"), tok("tok-row"));
    let (row_0, row_4) = (row(0, RowOutcome::Failed), row(4, RowOutcome::Failed));
    let finished_row = |token, result| FinishedRow { key: &row_key, token, outcome: &failed, result };
    let stranger = store.finish_row(&task, finished_row(&stale, &row_4), at(NOW + 2)).await;
    condition_failed(stranger, "a row finished without the lease");
    let twice = store.finish_row(&task, finished_row(&held, &row_0), at(NOW + 2)).await;
    condition_failed(twice, "a row counted before");
    assert_eq!(records.get(&row_key).await.unwrap().unwrap().status, CommandStatus::InProgress, "no outcome recorded");
    let unchanged = store.get_task(&task.task_id).await.unwrap().unwrap();
    assert_eq!((unchanged.success_count, unchanged.failure_count, unchanged.skipped_count), (2, 1, 1), "none counted");
    store.finish_row(&task, finished_row(&held, &row_4), at(NOW + 2)).await.unwrap();
    let finished = records.get(&row_key).await.unwrap().unwrap();
    assert_eq!((finished.status, finished.outcome()), (CommandStatus::Failed, Some(failed.clone())));
    let counted = store.get_task(&task.task_id).await.unwrap().unwrap();
    assert_eq!((counted.success_count, counted.failure_count, counted.skipped_count), (2, 2, 1));
    let last = store.rows(&task.task_id, Some(3), 10, None).await.unwrap();
    assert_eq!(last.rows, [row(4, RowOutcome::Failed)], "the row's result reads back");
    let again = store.finish_row(&task, finished_row(&held, &row_4), at(NOW + 3)).await;
    condition_failed(again, "a row finishes once");

    assert_eq!(
        store.transition(&task.task_id, TaskStatus::Cancelling, TaskStatus::Cancelled, at(NOW + 3)).await.unwrap(),
        None
    );
    let cancelling =
        store.transition(&task.task_id, TaskStatus::InProgress, TaskStatus::Cancelling, at(NOW + 3)).await.unwrap();
    assert_eq!(cancelling.map(|t| t.status), Some(TaskStatus::Cancelling));
    assert_eq!(
        store.transition(&task.task_id, TaskStatus::InProgress, TaskStatus::Cancelling, at(NOW + 4)).await.unwrap(),
        None,
        "only once"
    );
    let totals = Acceptance { total_rows: 5, invalid_rows: 1, chunks: 1 };
    let accepted = store.finish_acceptance(&task.task_id, totals, at(NOW + 5)).await.unwrap();
    assert!(
        accepted.accepted && accepted.total_rows == 5 && accepted.success_count == 2 && accepted.failure_count == 2
    );
    // One claimant announces at a time; its own retry takes its claim up again; a claim that
    // ran out goes to the next; nothing is claimed once the announcement went out.
    let (first, second) = (IdempotencyKey::new(format!("{prefix}-a")), IdempotencyKey::new(format!("{prefix}-b")));
    let task_id = task.task_id.clone();
    let claim = |who: IdempotencyKey, until: i64, now: i64| {
        let task_id = task_id.clone();
        async move { store.claim_task_announcement(&task_id, &who, at(until), at(now)).await }
    };
    assert!(claim(first.clone(), NOW + 100, NOW + 6).await.unwrap(), "an unclaimed announcement");
    assert!(!claim(second.clone(), NOW + 100, NOW + 7).await.unwrap(), "held by another");
    assert!(claim(first.clone(), NOW + 100, NOW + 8).await.unwrap(), "the claimant's own retry");
    assert!(claim(second.clone(), NOW + 300, NOW + 101).await.unwrap(), "a claim that ran out");
    store.mark_task_event_published(&task.task_id).await.unwrap();
    assert!(store.get_task(&task.task_id).await.unwrap().unwrap().event_published);
    assert!(!claim(first.clone(), NOW + 900, NOW + 800).await.unwrap(), "published: nothing to claim");
}

/// The template store's conditional writes: `IfMatch` replaces only the version named (quoted
/// or not) and never creates; `IfAbsent` only creates. A refused write changes nothing.
/// `prefix` keeps the ids of one run apart from any other's.
pub async fn template_store_contract(store: &dyn TemplateStore, prefix: &str) {
    let id = format!("{prefix}-contract-conditional");
    let (one, two, three) = (r#"{"Resources":{}}"#, r#"{"Resources":{ }}"#, r#"{"Resources":{  }}"#);

    // If-Match on an id without a template: refused, nothing created.
    condition_failed(
        store.put_template(&id, one, &WriteCondition::IfMatch("\"deadbeef\"".into())).await,
        "if-match, none",
    );
    assert_eq!(store.template(&id).await.unwrap_err().kind, ErrorKind::NotFound, "nothing created");

    // If-absent creates once.
    let first = store.put_template(&id, one, &WriteCondition::IfAbsent).await.unwrap();
    condition_failed(store.put_template(&id, two, &WriteCondition::IfAbsent).await, "if-absent, exists");
    assert_eq!(store.template(&id).await.unwrap(), one, "the refused write changed nothing");
    let (_, stored) = store.template_version(&id).await.unwrap();
    assert_eq!(stored.version, first.version, "the version a write answers is the one a read answers");

    // If-Match replaces the version named, and only it.
    condition_failed(store.put_template(&id, two, &WriteCondition::IfMatch("\"deadbeef\"".into())).await, "stale");
    assert_eq!(store.template(&id).await.unwrap(), one, "the stale write changed nothing");
    let second = store.put_template(&id, two, &WriteCondition::IfMatch(first.version.clone())).await.unwrap();
    assert_ne!(second.version, first.version);
    condition_failed(
        store.put_template(&id, three, &WriteCondition::IfMatch(first.version.clone())).await,
        "the version replaced",
    );
    // Quotes around the ETag do not matter.
    let bare = second.version.trim_matches('"').to_owned();
    store.put_template(&id, three, &WriteCondition::IfMatch(bare)).await.unwrap();
    assert_eq!(store.template(&id).await.unwrap(), three);

    // Unconditional: replaces whatever is stored.
    store.put_template(&id, one, &WriteCondition::Always).await.unwrap();
    assert_eq!(store.template(&id).await.unwrap(), one);
    store.delete_template(&id).await.unwrap();
}
