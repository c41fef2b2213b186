//! Recovery's journal on both backends (SQLite and MariaDB, each test in its own database):
//! incidents and their VMs move only from the state they are in, every move leaves its event,
//! the VMs of an incident are written together with its `evacuating`, approval and release,
//! and a deposed leader's writes are refused by its lease epoch.

mod common;

use common::scratch::{fence, on_both};
use steward::rebalance::leader;
use steward::store::journal::JournalError;
use steward::store::lease::Fence;
use steward::store::recovery::{IncidentRow, IncidentState, NewIncident, NewVm, Set, VmState};
use steward::store::Store;

fn incident(host: &str) -> NewIncident {
    NewIncident {
        host: host.into(),
        az: "az1".into(),
        service_id: "5e1c0a2b-0000-4000-8000-000000000001".into(),
        mode: "approve".into(),
        evidence: r#"{"host": "a1", "evidence": [{"witness": "nova_service", "detail": "naïve ünïcode"}]}"#.into(),
        service_before: r#"{"forced_down": false}"#.into(),
    }
}

/// An incident moved with no column set, as a step of the lifecycle.
async fn moved(
    store: &Store,
    id: &str,
    from: IncidentState,
    to: IncidentState,
    detail: &str,
    at: f64,
    fence: Option<&Fence>,
) -> Result<IncidentRow, JournalError> {
    store
        .incident_transition(id, from, to, &[], detail, at, fence)
        .await
}

fn vm(n: u32) -> NewVm {
    NewVm {
        vm: format!("6a1f0c3e-0000-4000-8000-{n:012}"),
        vm_name: format!("web-{n}"),
        az: "az1".into(),
        role: Some("web".into()),
        flavor: None,
        before_image: r#"{"status": "ACTIVE"}"#.into(),
    }
}

#[test]
fn incidents_move_only_from_where_they_are_and_say_so() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let i = store
            .open_incident(&incident("a1"), None, 100.0, None)
            .await
            .unwrap();
        assert_eq!(i.state, IncidentState::Suspected);
        assert!(i.approved_at.is_none());
        // Not approved: approve it; approving twice is refused.
        let i = store.approve_incident(&i.id, "admin", 101.0).await.unwrap();
        assert_eq!(i.approved_by.as_deref(), Some("admin"));
        let again = store
            .approve_incident(&i.id, "admin", 102.0)
            .await
            .unwrap_err();
        assert!(matches!(again, JournalError::Conflict(_)), "{again}");
        let i = moved(
            &store,
            &i.id,
            IncidentState::Suspected,
            IncidentState::Fencing,
            "fencing",
            103.0,
            None,
        )
        .await
        .unwrap();
        // A second writer with a stale view is refused and writes nothing.
        let stale = moved(
            &store,
            &i.id,
            IncidentState::Suspected,
            IncidentState::Cleared,
            "stale",
            104.0,
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(stale, JournalError::Conflict(_)), "{stale}");
        let i = moved(
            &store,
            &i.id,
            IncidentState::Fencing,
            IncidentState::Fenced,
            "fenced",
            105.0,
            None,
        )
        .await
        .unwrap();
        let i = moved(
            &store,
            &i.id,
            i.state,
            IncidentState::ForcedDown,
            "forced",
            106.0,
            None,
        )
        .await
        .unwrap();
        let i = store
            .start_evacuating(&i.id, &[vm(1), vm(2)], "2 to go", 107.0, None)
            .await
            .unwrap();
        assert_eq!(i.state, IncidentState::Evacuating);
        let rows = store.incident_vms(&i.id).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == VmState::Pending));
        // start_evacuating is guarded too: a second one adds no VM.
        assert!(store
            .start_evacuating(&i.id, &[vm(3)], "again", 108.0, None)
            .await
            .is_err());
        assert_eq!(store.incident_vms(&i.id).await.unwrap().len(), 2);
        let r = store
            .vm_transition(
                &rows[0],
                VmState::Evacuating,
                &[
                    Set::Number("accepted_at", 109.0),
                    Set::Text("request_id", "req-1".into()),
                ],
                "sent",
                109.0,
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.request_id.as_deref(), Some("req-1"));
        let stale = store
            .vm_transition(&rows[0], VmState::Done, &[], "stale", 110.0, None)
            .await;
        assert!(stale.is_err(), "moved from pending twice");
        let r = store
            .vm_transition(
                &r,
                VmState::Done,
                &[
                    Set::Number("finished_at", 111.0),
                    Set::Text("target", "a2".into()),
                ],
                "done",
                111.0,
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.target.as_deref(), Some("a2"));
        let last = store
            .last_evacuations(&[rows[0].vm.clone(), rows[1].vm.clone()])
            .await
            .unwrap();
        assert_eq!(last.get(&rows[0].vm), Some(&111.0));
        assert!(!last.contains_key(&rows[1].vm));
        assert_eq!(
            store
                .recovery_vms_in(&[VmState::Evacuating])
                .await
                .unwrap()
                .len(),
            0
        );
        let i = store
            .incident_transition(
                &i.id,
                IncidentState::Evacuating,
                IncidentState::Done,
                &[Set::Number("finished_at", 112.0)],
                "done",
                112.0,
                None,
            )
            .await
            .unwrap();
        let i = store
            .mark_released(&i, "ops", "released", 113.0)
            .await
            .unwrap();
        assert_eq!(
            (i.released_by.as_deref(), i.released_at),
            (Some("ops"), Some(113.0))
        );
        assert!(i.evidence.contains("naïve ünïcode"));
        let events = store.recovery_events(&i.id).await.unwrap();
        let host: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.vm_row.is_empty())
            .map(|e| (e.from.clone(), e.to.clone()))
            .collect();
        let expect: Vec<(String, String)> = [
            ("new", "suspected"),
            ("suspected", "suspected"),
            ("suspected", "fencing"),
            ("fencing", "fenced"),
            ("fenced", "forced_down"),
            ("forced_down", "evacuating"),
            ("evacuating", "done"),
            ("done", "done"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(host, expect);
        assert_eq!(events.iter().filter(|e| e.vm_row == rows[0].id).count(), 3);
        let listed = store.incidents(&[IncidentState::Done], 10).await.unwrap();
        assert_eq!(listed.len(), 1);
    });
}

#[test]
fn a_deposed_leaders_recovery_writes_are_refused_by_its_epoch() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let name = leader::NAME;
        let epoch = store.take_lease(name, "old", 1_000.0, 10.0).await.unwrap();
        let old = fence(name, "old", epoch.unwrap());
        // While it leads, its writes go through.
        let i = store
            .open_incident(&incident("a1"), Some("auto"), 1_001.0, Some(&old))
            .await
            .unwrap();
        let i = moved(
            &store,
            &i.id,
            IncidentState::Suspected,
            IncidentState::Fencing,
            "fencing",
            1_002.0,
            Some(&old),
        )
        .await
        .unwrap();
        // It is paused past its lease; another replica takes over.
        let epoch = store.take_lease(name, "new", 1_011.0, 10.0).await.unwrap();
        let new = fence(name, "new", epoch.unwrap());
        assert_eq!(new.epoch, old.epoch + 1);
        let refused = |r: Result<_, JournalError>, what: &str| match r {
            Err(JournalError::Fenced(m)) => assert!(
                m.contains(&format!("epoch {}", old.epoch)) && m.contains(what),
                "{m}"
            ),
            other => panic!("a deposed leader's write went through: {other:?}"),
        };
        // It wakes up and writes as if it still led: every kind of write is refused.
        refused(
            store
                .open_incident(&incident("a9"), Some("auto"), 1_012.0, Some(&old))
                .await
                .map(|_| ()),
            "host a9",
        );
        refused(
            moved(
                &store,
                &i.id,
                IncidentState::Fencing,
                IncidentState::Fenced,
                "fenced",
                1_012.0,
                Some(&old),
            )
            .await
            .map(|_| ()),
            &i.id,
        );
        // Nothing of it was written: no second incident, the first still fencing, no event.
        let all = store.incidents(&[], 10).await.unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            store.incident(&i.id).await.unwrap().unwrap().state,
            IncidentState::Fencing
        );
        let events = store.recovery_events(&i.id).await.unwrap().len();
        // The control: the current leader's writes go through on the same rows.
        let i = moved(
            &store,
            &i.id,
            IncidentState::Fencing,
            IncidentState::Fenced,
            "fenced",
            1_013.0,
            Some(&new),
        )
        .await
        .unwrap();
        let i = moved(
            &store,
            &i.id,
            i.state,
            IncidentState::ForcedDown,
            "forced",
            1_013.0,
            Some(&new),
        )
        .await
        .unwrap();
        refused(
            store
                .start_evacuating(&i.id, &[vm(1)], "1 to go", 1_014.0, Some(&old))
                .await
                .map(|_| ()),
            &i.id,
        );
        assert!(store.incident_vms(&i.id).await.unwrap().is_empty());
        store
            .start_evacuating(&i.id, &[vm(1)], "1 to go", 1_014.0, Some(&new))
            .await
            .unwrap();
        let row = store.incident_vms(&i.id).await.unwrap().remove(0);
        refused(
            store
                .vm_transition(&row, VmState::Evacuating, &[], "late", 1_015.0, Some(&old))
                .await
                .map(|_| ()),
            &row.vm,
        );
        assert_eq!(
            store.recovery_vm(&row.id).await.unwrap().unwrap().state,
            VmState::Pending
        );
        // A lease that ran out with nobody taking it over fences too.
        refused_expired(
            store
                .vm_transition(&row, VmState::Evacuating, &[], "late", 1_030.0, Some(&new))
                .await
                .map(|_| ()),
        );
        let r = store
            .vm_transition(&row, VmState::Evacuating, &[], "sent", 1_016.0, Some(&new))
            .await
            .unwrap();
        assert_eq!(r.state, VmState::Evacuating);
        assert_eq!(
            store.recovery_events(&i.id).await.unwrap().len(),
            events + 5,
            "the refused writes left no event"
        );
    });
}

fn refused_expired(r: Result<(), JournalError>) {
    assert!(
        matches!(r, Err(JournalError::Fenced(_))),
        "an expired lease's write went through: {r:?}"
    );
}
