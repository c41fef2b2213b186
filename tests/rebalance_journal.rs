//! The rebalancer's journal and leader election on both backends (SQLite and MariaDB, each
//! test in its own database): plans, guarded transitions with their events, an admin's
//! decision, the lease with its epoch, and the
//! fence that refuses a deposed leader's transitions.

mod common;

use common::scratch::{fence, on_both};
use steward::rebalance::leader;
use steward::store::journal::{ActionState, JournalError, NewAction, NewPlan, Patch, PlanState};

fn plan(mode: &str, n: usize) -> NewPlan {
    NewPlan {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: 1_795_000_000.0,
        mode: mode.into(),
        summary: r#"{"candidates": 3}"#.into(),
        actions: (0..n)
            .map(|i| NewAction {
                vm: format!("00000000-0000-4000-8000-00000000000{i}"),
                vm_name: format!("web-{i}"),
                source: "cmp-1".into(),
                target: "cmp-2".into(),
                az: "az1".into(),
                ram_mb: 4096,
                disk_gb: 40,
                block_migration: i % 2 == 1,
                reason: format!("steal 0.2{i}"),
            })
            .collect(),
    }
}

#[test]
fn a_plan_is_approved_then_walked_through_guarded_transitions() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let p = store
            .insert_plan(&plan("approve", 2), None, None)
            .await
            .unwrap();
        assert_eq!(p.state, PlanState::Proposed);
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions.iter().all(|a| a.state == ActionState::Planned));
        assert!(p.actions[1].block_migration && !p.actions[0].block_migration);
        let p = store
            .decide_plan(&p.id, true, "admin", 1_795_000_010.0)
            .await
            .unwrap();
        assert_eq!(p.state, PlanState::Approved);
        assert_eq!(p.decided_by.as_deref(), Some("admin"));
        assert!(p.actions.iter().all(|a| a.state == ActionState::Approved));
        // Approving twice is a conflict naming the plan.
        match store
            .decide_plan(&p.id, true, "admin", 1_795_000_011.0)
            .await
        {
            Err(JournalError::Conflict(m)) => assert!(m.contains(&p.id), "{m}"),
            other => panic!("{other:?}"),
        }
        let id = p.actions[0].id.clone();
        let a = store
            .transition(
                &id,
                ActionState::Approved,
                ActionState::Draining,
                &Patch {
                    before_image: Some("{\"status\": \"ACTIVE\"}".into()),
                    ..Default::default()
                },
                "draining",
                1_795_000_020.0,
            )
            .await
            .unwrap();
        assert_eq!(a.state, ActionState::Draining);
        assert_eq!(a.before_image.as_deref(), Some("{\"status\": \"ACTIVE\"}"));
        // A second writer that still thinks the action is approved writes nothing.
        match store
            .transition(
                &id,
                ActionState::Approved,
                ActionState::Draining,
                &Patch::default(),
                "again",
                1_795_000_021.0,
            )
            .await
        {
            Err(JournalError::Conflict(m)) => assert!(m.contains("is draining"), "{m}"),
            other => panic!("{other:?}"),
        }
        let a = store
            .transition(
                &id,
                ActionState::Draining,
                ActionState::Rejoining,
                &Patch {
                    outcome: Some(ActionState::Done),
                    bytes_moved: Some(5 << 30),
                    migration_id: Some("42".into()),
                    accepted_at: Some(1_795_000_030.5),
                    ..Default::default()
                },
                "moved",
                1_795_000_040.0,
            )
            .await
            .unwrap();
        assert_eq!(a.outcome, Some(ActionState::Done));
        assert_eq!(a.bytes_moved, 5 << 30);
        assert_eq!(a.accepted_at, Some(1_795_000_030.5));
        let events = store.events(&id).await.unwrap();
        let path: Vec<String> = events
            .iter()
            .map(|e| format!("{}->{}", e.from, e.to))
            .collect();
        assert_eq!(
            path,
            [
                "new->planned",
                "planned->approved",
                "approved->draining",
                "draining->rejoining"
            ]
        );
        let in_flight = store
            .actions(&[ActionState::Draining, ActionState::Rejoining], 100)
            .await
            .unwrap();
        assert_eq!(in_flight.len(), 1);
        assert_eq!(store.actions(&[], 100).await.unwrap().len(), 2);
        // Cancel: the action not started closes as aborted; the one under way runs on.
        let p = store
            .decide_plan(&p.id, false, "admin", 1_795_000_050.0)
            .await
            .unwrap();
        assert_eq!(p.state, PlanState::Cancelled);
        assert_eq!(p.actions[0].state, ActionState::Rejoining);
        assert_eq!(p.actions[1].state, ActionState::Aborted);
        assert_eq!(p.actions[1].finished_at, Some(1_795_000_050.0));
        let plans = store.plans(10).await.unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].summary, r#"{"candidates": 3}"#);
    });
}

#[test]
fn dry_run_plans_are_never_approved_and_unknown_ids_are_named() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let p = store
            .insert_plan(&plan("dry-run", 1), None, None)
            .await
            .unwrap();
        match store.decide_plan(&p.id, true, "admin", 1.0).await {
            Err(JournalError::Conflict(m)) => assert!(m.contains("dry-run"), "{m}"),
            other => panic!("{other:?}"),
        }
        let missing = "11111111-2222-4333-8444-555555555555";
        match store.decide_plan(missing, true, "admin", 1.0).await {
            Err(JournalError::NotFound(m)) => assert!(m.contains(missing), "{m}"),
            other => panic!("{other:?}"),
        }
        let auto = store
            .insert_plan(&plan("auto", 1), Some("auto"), None)
            .await
            .unwrap();
        assert_eq!(auto.state, PlanState::Approved);
        assert_eq!(auto.actions[0].state, ActionState::Approved);
    });
}

#[test]
fn one_replica_leads_at_a_time() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let mut first = leader::try_lead(&store, "replica-a", 30.0)
            .await
            .unwrap()
            .expect("a leads");
        assert!(
            leader::try_lead(&store, "replica-b", 30.0)
                .await
                .unwrap()
                .is_none(),
            "b must wait"
        );
        assert!(first.renew().await.unwrap());
        first.release().await;
        let second = leader::try_lead(&store, "replica-b", 30.0)
            .await
            .unwrap()
            .expect("b leads after a stepped down");
        second.release().await;
        // A holder that died keeps the lease only until it runs out; each taking raises the
        // epoch, renewing does not.
        let name = "lease-test";
        let dead = store.take_lease(name, "dead", 100.0, 10.0).await.unwrap();
        let dead = dead.expect("a free lease is taken");
        assert_eq!(
            store.take_lease(name, "alive", 105.0, 10.0).await.unwrap(),
            None
        );
        let alive = store.take_lease(name, "alive", 111.0, 10.0).await.unwrap();
        assert_eq!(alive, Some(dead + 1));
        let (holder, epoch, until) = store.lease(name).await.unwrap().unwrap();
        assert_eq!((holder.as_str(), epoch, until), ("alive", dead + 1, 121.0));
        assert!(!store
            .renew_lease(&fence(name, "dead", dead), 112.0, 10.0)
            .await
            .unwrap());
        assert!(store
            .renew_lease(&fence(name, "alive", dead + 1), 112.0, 10.0)
            .await
            .unwrap());
    });
}

#[test]
fn a_deposed_leaders_transition_is_refused_by_its_epoch() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let p = store
            .insert_plan(&plan("auto", 1), Some("auto"), None)
            .await
            .unwrap();
        let id = p.actions[0].id.clone();
        let name = leader::NAME;
        let old = store
            .take_lease(name, "old", 1_000.0, 10.0)
            .await
            .unwrap()
            .unwrap();
        let old = fence(name, "old", old);
        let now = 1_005.0;
        // While it leads, its transitions go through.
        let a = store
            .transition_fenced(
                &id,
                ActionState::Approved,
                ActionState::Draining,
                &Patch::default(),
                "draining",
                now,
                Some(&old),
            )
            .await
            .unwrap();
        assert_eq!(a.state, ActionState::Draining);
        // Its lease runs out (it was stopped); another replica takes over.
        let new = store
            .take_lease(name, "new", 1_011.0, 10.0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(new, old.epoch + 1);
        let new = fence(name, "new", new);
        // The old leader wakes up and writes as if nothing happened: refused, nothing written.
        let late = store
            .transition_fenced(
                &id,
                ActionState::Draining,
                ActionState::Migrating,
                &Patch {
                    migration_id: Some("late".into()),
                    ..Default::default()
                },
                "migrating",
                1_012.0,
                Some(&old),
            )
            .await;
        match late {
            Err(JournalError::Fenced(m)) => {
                assert!(
                    m.contains(&id) && m.contains(&format!("epoch {}", old.epoch)),
                    "{m}"
                )
            }
            other => panic!("a deposed leader's write went through: {other:?}"),
        }
        let a = store.action(&id).await.unwrap().unwrap();
        assert_eq!((a.state, a.migration_id), (ActionState::Draining, None));
        assert_eq!(store.events(&id).await.unwrap().len(), 2);
        // A lease that ran out with no one else taking it fences too.
        match store
            .transition_fenced(
                &id,
                ActionState::Draining,
                ActionState::Migrating,
                &Patch::default(),
                "migrating",
                1_030.0,
                Some(&new),
            )
            .await
        {
            Err(JournalError::Fenced(_)) => {}
            other => panic!("an expired lease's write went through: {other:?}"),
        }
        // The current leader's write goes through (the control: the fence, not the row, refused).
        let a = store
            .transition_fenced(
                &id,
                ActionState::Draining,
                ActionState::Migrating,
                &Patch::default(),
                "migrating",
                1_015.0,
                Some(&new),
            )
            .await
            .unwrap();
        assert_eq!(a.state, ActionState::Migrating);
    });
}

#[test]
fn a_deposed_leader_journals_no_plan() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let name = leader::NAME;
        let old = store.take_lease(name, "old", 1_000.0, 10.0).await.unwrap();
        let old = fence(name, "old", old.unwrap());
        let mut p = plan("auto", 2);
        p.created_at = 1_005.0;
        store
            .insert_plan(&p, Some("auto"), Some(&old))
            .await
            .unwrap();
        // Paused past its lease; another replica took over and plans now.
        let new = store.take_lease(name, "new", 1_011.0, 10.0).await.unwrap();
        let new = fence(name, "new", new.unwrap());
        let mut late = plan("auto", 2);
        late.created_at = 1_012.0;
        match store.insert_plan(&late, Some("auto"), Some(&old)).await {
            Err(JournalError::Fenced(m)) => assert!(
                m.contains(&late.id) && m.contains(&format!("epoch {}", old.epoch)),
                "{m}"
            ),
            other => panic!("a deposed leader journaled a plan: {other:?}"),
        }
        assert!(store.plan(&late.id).await.unwrap().is_none());
        // The control: the same plan under the current leader is journaled, approved.
        let row = store
            .insert_plan(&late, Some("auto"), Some(&new))
            .await
            .unwrap();
        assert_eq!(row.state, PlanState::Approved);
        assert_eq!(row.actions.len(), 2);
    });
}
