//! Losing a node: `kill -9` (its pets come back on the others, at most a persist interval
//! behind), SIGTERM (a hand-off that loses no tick), and a node paused past its lease (it
//! writes nothing stale when it wakes up, and lets its pets go).

use crate::harness::{
    assert_no_gap, now_ms, report, Ages, Cluster, PetRow, Socket, NODES, PERSIST_MS, STEP, TICK_MS,
};
use livepet_shared::PetId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The design's bound for a killed node's pets to tick again on the others.
const RECOVERY: Duration = Duration::from_secs(20);
/// Ticks a pet may lose to a crash: one persist interval's worth, plus slack for the flush
/// itself and a busy machine.
const LOSS_TICKS: u64 = PERSIST_MS / TICK_MS + 5;
/// The same as time: how old a crashed node's last stored state of a pet may be.
const LOSS_MS: i64 = (PERSIST_MS + 1_000) as i64;

/// `kill -9` of `b`: within 20 s `a` and `c` hold all 1,024 shards and run every live pet
/// (their pets alive add up to the database's live pets); `b`'s last stored state of each of
/// its pets was at most one persist interval (+ slack) old when it died; the pets the owner
/// watched from `a` had shown at most that many ticks more than was stored; after recovery
/// they start from the stored state (not older), tick on, and every one of `b`'s pets is
/// stored again with a greater age by its new owner. No write ever moved an age back.
#[actix_rt::test]
async fn a_killed_nodes_pets_come_back_on_the_others_within_a_persist_interval() {
    let Some(mut cluster) = Cluster::start("kill -9").await else {
        return;
    };
    let mut owner = cluster.sign_up("a", "owner@example.com").await;
    let ids: Vec<PetId> = cluster
        .adopt_owned_by(&mut owner, "b", 2)
        .await
        .iter()
        .map(|p| p.id)
        .collect();
    let mut socket = Socket::greeted(&owner, "owner on a").await.0;
    let mut ages = Ages::new(ids.clone());
    for id in &ids {
        let first = socket.watch(*id).await;
        ages.push(&first);
    }
    socket
        .record_until(&mut ages, STEP, "frames of b's pets", |a| {
            ids.iter().all(|id| a.count(*id) >= 6)
        })
        .await;
    let before = cluster.wait_settled(&NODES, STEP).await;
    let b_shards = cluster.shards_of("b");
    assert!(!b_shards.is_empty());

    let killed_at = now_ms();
    let kill_clock = Instant::now();
    cluster.node("b").signal("KILL");
    let status = cluster.node_mut("b").wait_exit(STEP).await;
    assert!(!status.success(), "kill -9 of b: {status}");
    // Nobody writes b's pets until its leases run out (2 s): this is what it left behind.
    let stored = cluster.pets_in_shards(&b_shards);
    assert!(
        ids.iter().all(|id| stored.contains_key(&id.0)),
        "the watched pets are among b's"
    );
    let oldest = stored
        .values()
        .min_by_key(|r| r.updated_at)
        .copied()
        .expect("b ran pets");
    report(&format!(
        "kill -9: b ran {} pets; its oldest stored state was {} ms old",
        stored.len(),
        killed_at - oldest.updated_at
    ));
    for row in stored.values() {
        assert!(
            killed_at - row.updated_at <= LOSS_MS,
            "pet {}: b's last stored state (age {}) was {} ms old when it was killed; at most \
             one persist interval ({PERSIST_MS} ms, {LOSS_MS} ms with slack) may be lost",
            row.id,
            row.age,
            killed_at - row.updated_at
        );
    }
    // What the owner saw before the kill (frames still in flight included).
    socket
        .record_for(&mut ages, Duration::from_millis(500))
        .await;
    for id in &ids {
        let shown = u64::from(ages.max_age(*id).unwrap());
        let kept = stored[&id.0].age as u64;
        assert!(
            shown.saturating_sub(kept) <= LOSS_TICKS,
            "pet {}: the owner saw age {shown} but b had stored only age {kept}: more than \
             {LOSS_TICKS} ticks lost",
            id.0
        );
    }

    let after = cluster.wait_settled(&["a", "c"], RECOVERY).await;
    report(&format!(
        "kill -9: a and c run all {} pets {:.1} s after the kill ({:?})",
        after.total,
        kill_clock.elapsed().as_secs_f64(),
        after.alive
    ));
    assert!(
        kill_clock.elapsed() <= RECOVERY,
        "b's pets took {:?} to come back",
        kill_clock.elapsed()
    );
    assert_eq!(after.total, before.total, "no pet died or vanished");
    assert_eq!(
        after.alive.values().sum::<i64>(),
        before.total,
        "a and c run every live pet"
    );
    let b_row = cluster
        .node_rows()
        .into_iter()
        .find(|r| r.node == "b")
        .expect("b's cluster_nodes row");
    assert!(
        !b_row.fresh,
        "a dead node keeps a fresh heartbeat: {b_row:?}"
    );

    // The watched pets start again from what b stored, and tick on.
    let mut again = Socket::greeted(&owner, "owner on a, after the kill")
        .await
        .0;
    let since_kill_ticks = (now_ms() - killed_at) as u64 / TICK_MS;
    let mut ages_after = Ages::new(ids.clone());
    for id in &ids {
        let first = again.watch(*id).await;
        let kept = stored[&id.0].age as u64;
        assert!(
            u64::from(first.age) >= kept,
            "pet {} came back at age {} but b had stored age {kept}",
            id.0,
            first.age
        );
        assert!(
            u64::from(first.age) <= kept + since_kill_ticks + 5,
            "pet {} came back at age {}: more than it could have ticked since b stored age \
             {kept}",
            id.0,
            first.age
        );
        ages_after.push(&first);
    }
    again
        .record_until(&mut ages_after, STEP, "the pets ticking again", |a| {
            ids.iter()
                .all(|id| a.max_age(*id).unwrap_or(0) >= a.frames[id][0].age + 3)
        })
        .await;

    // Every one of b's pets is stored again, further on, by its new owner.
    wait_rows(
        &cluster,
        &b_shards,
        STEP,
        "b's pets stored again by a and c",
        |now| {
            stored
                .iter()
                .all(|(id, old)| now.get(id).is_some_and(|r| r.age > old.age))
        },
    )
    .await;
    cluster.assert_no_stale_writes();
}

/// SIGTERM of `c` while the owner watches three of its pets from `a`: `c` logs
/// `handed off N shard(s) (P pet(s))` for every shard and pet it had and exits 0; the frames
/// on `a` go on across the hand-off with no tick missing (each age the previous or one more);
/// `a` and `b` then hold every shard and run every pet, and `c`'s row says it left.
#[actix_rt::test]
async fn a_stopped_node_hands_its_pets_off_without_losing_a_tick() {
    let Some(mut cluster) = Cluster::start("SIGTERM").await else {
        return;
    };
    let mut owner = cluster.sign_up("a", "owner@example.com").await;
    let ids: Vec<PetId> = cluster
        .adopt_owned_by(&mut owner, "c", 6)
        .await
        .iter()
        .map(|p| p.id)
        .collect();
    let before = cluster.wait_settled(&NODES, STEP).await;
    let c_shards = cluster.shards_of("c");
    let c_pets = cluster.pets_in_shards(&c_shards).len();

    let mut socket = Socket::greeted(&owner, "owner on a").await.0;
    let mut ages = Ages::new(ids.clone());
    for id in &ids {
        let first = socket.watch(*id).await;
        ages.push(&first);
    }
    socket
        .record_until(&mut ages, STEP, "frames of c's pets", |a| {
            ids.iter().all(|id| a.count(*id) >= 5)
        })
        .await;
    let at_term: BTreeMap<PetId, u32> = ids
        .iter()
        .map(|id| (*id, ages.max_age(*id).unwrap()))
        .collect();
    // Where each pet's frames stood at SIGTERM: the hand-off is checked from there on.
    let term_index: BTreeMap<PetId, usize> =
        ids.iter().map(|id| (*id, ages.count(*id) - 1)).collect();

    let mark = cluster.node("c").log_mark();
    cluster.node("c").signal("TERM");
    // Keep reading the frames while c hands off.
    let deadline = Instant::now() + Duration::from_secs(40);
    let handed = loop {
        socket
            .record_for(&mut ages, Duration::from_millis(200))
            .await;
        if let Some(line) = cluster
            .node("c")
            .logged_after(mark, "handed off ")
            .into_iter()
            .next()
        {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "c logged no hand-off within 40 s of SIGTERM; its log since:\n{}",
            cluster.node("c").log_tail(60)
        );
    };
    let at_handoff: BTreeMap<PetId, u32> = ids
        .iter()
        .map(|id| (*id, ages.max_age(*id).unwrap()))
        .collect();
    // The new owners (frames keep arriving on the socket meanwhile).
    let after = cluster.wait_settled(&["a", "b"], STEP).await;
    let moved: Vec<String> = ids
        .iter()
        .map(|id| {
            let to = cluster.owner_of(*id).unwrap_or_else(|| "nobody".into());
            format!("pet {} -> {to}", id.0)
        })
        .collect();
    // The watching session is on a: pets that went to a are watched locally from then on,
    // those that went to b still remotely. Both must keep flowing.
    report(&format!("SIGTERM: {}", moved.join(", ")));
    socket
        .record_until(
            &mut ages,
            STEP,
            &format!("ticks on the new owners ({})", moved.join(", ")),
            |a| {
                ids.iter()
                    .all(|id| a.max_age(*id).unwrap_or(0) >= at_handoff[id] + 10)
            },
        )
        .await;
    let status = cluster
        .node_mut("c")
        .wait_exit(Duration::from_secs(30))
        .await;
    assert!(
        status.success(),
        "c exited with {status} after SIGTERM; its log:\n{}",
        cluster.node("c").log_tail(60)
    );
    report(&format!("SIGTERM: c logged `{handed}`"));
    let (shards, pets) = parse_handed_off(&handed);
    assert_eq!(
        shards,
        c_shards.len(),
        "c handed off every shard it held: `{handed}`"
    );
    assert_eq!(pets, c_pets, "c handed off every pet it ran: `{handed}`");

    for id in &ids {
        let frames = &ages.frames[id][term_index[id]..];
        assert_no_gap(*id, frames, "watched from a across c's SIGTERM hand-off");
        assert!(
            ages.max_age(*id).unwrap() >= at_term[id] + 10,
            "pet {} ticks on after the hand-off",
            id.0
        );
    }
    let longest = ages
        .frames
        .values()
        .flat_map(|v| v.windows(2).map(|w| w[1].at - w[0].at))
        .max()
        .unwrap_or(0);
    report(&format!(
        "SIGTERM: longest time between two frames of a watched pet: {longest} ms"
    ));

    assert_eq!(after.total, before.total, "no pet died or vanished");
    for id in &ids {
        let holder = cluster.owner_of(*id);
        assert!(
            matches!(holder.as_deref(), Some("a" | "b")),
            "pet {} is now leased to {holder:?}",
            id.0
        );
    }
    let c_row = cluster
        .node_rows()
        .into_iter()
        .find(|r| r.node == "c")
        .expect("c's cluster_nodes row");
    assert_eq!(c_row.status, "left", "c's row after SIGTERM: {c_row:?}");
    cluster.assert_no_stale_writes();
}

/// `b` paused (SIGSTOP) past its lease: `a` and `c` take its shards and run its pets. When
/// `b` resumes it logs `lost the lease`, counts its shards lost, drops its pets (its pets
/// alive reach 0, or it logs owning none) and writes nothing: while it wakes up and for two
/// persist intervals after it let go, no stored age of its former pets goes back (polled,
/// and every write checked by a trigger). Then it rejoins: every shard leased once, every pet
/// running once.
#[actix_rt::test]
async fn a_paused_node_writes_nothing_stale_when_it_resumes() {
    let Some(cluster) = Cluster::start("SIGSTOP").await else {
        return;
    };
    let total = cluster.live_pets();
    let b_shards = cluster.shards_of("b");
    assert!(!b_shards.is_empty());
    let lost_before = cluster.node("b").gauge("livepet_shards_lost_total").await;
    let fenced_before = cluster.node("b").gauge("livepet_fenced_rows_total").await;

    cluster.node("b").signal("STOP");
    let paused = Instant::now();
    let taken = cluster
        .wait_settled(&["a", "c"], Duration::from_secs(30))
        .await;
    report(&format!(
        "SIGSTOP: a and c took b's shards {:.1} s after the pause ({:?})",
        paused.elapsed().as_secs_f64(),
        taken.owned
    ));
    assert_eq!(taken.total, total);
    let mut seen = cluster.pets_in_shards(&b_shards);
    assert!(!seen.is_empty(), "b's shards hold pets");
    let first_seen = seen.clone();

    let mark = cluster.node("b").log_mark();
    cluster.node("b").signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lost: Option<String> = None;
    let mut dropped: Option<(Instant, String)> = None;
    let mut polls = 0;
    loop {
        let now = cluster.pets_in_shards(&b_shards);
        polls += 1;
        check_not_older(&seen, &now, "while b resumed");
        seen = now;
        let b = cluster.node("b");
        if lost.is_none() {
            lost = b.logged_after(mark, "lost the lease").into_iter().next();
        }
        if dropped.is_none() {
            if let Some(line) = b
                .logged_after(mark, "owns 0 shard(s), 0 pet(s)")
                .into_iter()
                .next()
            {
                dropped = Some((Instant::now(), line));
            } else if let Some(text) = b.try_metrics().await {
                if crate::harness::metric(&text, "livepet_pets_alive") == Some(0.0) {
                    dropped = Some((Instant::now(), "livepet_pets_alive 0".into()));
                }
            }
        }
        if let Some((at, _)) = &dropped {
            if at.elapsed() >= Duration::from_millis(2 * PERSIST_MS + 500) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "after SIGCONT, b never dropped its pets (no `owns 0 shard(s), 0 pet(s)` line, \
             livepet_pets_alive never 0) within 30 s; its log since:\n{}",
            b.logged_after(mark, "").join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = cluster.node("b");
    let lost_now = b.gauge("livepet_shards_lost_total").await - lost_before;
    let fenced = b.gauge("livepet_fenced_rows_total").await - fenced_before;
    report(&format!(
        "SIGSTOP: b logged `{}`; dropped its pets ({}); {lost_now} shard(s) counted lost, \
         {fenced} row(s) fenced; {polls} polls of {} rows",
        lost.as_deref().unwrap_or(""),
        dropped.as_ref().map_or("", |(_, l)| l.as_str()),
        seen.len()
    ));
    assert!(
        lost_now >= b_shards.len() as f64,
        "b held {} shards that others took while it was paused, but counts {lost_now} lost \
         (livepet_shards_lost_total)",
        b_shards.len()
    );
    check_not_older(
        &first_seen,
        &seen,
        "from the pause to two flushes after b let go",
    );
    cluster.assert_no_stale_writes();

    // b is back in the world: one owner per shard, one runner per pet.
    let again = cluster.wait_settled(&NODES, Duration::from_secs(30)).await;
    assert_eq!(again.total, total);
    cluster.assert_no_stale_writes();
    // Last, as it is only words: the log line the interface promises.
    assert!(
        lost.is_some(),
        "b dropped its pets after SIGCONT but logged no line containing `lost the lease` \
         (cluster-spec.md); its log since:\n{}",
        cluster.node("b").logged_after(mark, "").join("\n")
    );
}

/// No pet stored in `before` has an older age in `now`.
fn check_not_older(before: &BTreeMap<i64, PetRow>, now: &BTreeMap<i64, PetRow>, when: &str) {
    for (id, old) in before {
        if let Some(new) = now.get(id) {
            assert!(
                new.age >= old.age,
                "pet {id}'s stored age went back from {} (stored at {}) to {} (stored at {}) \
                 {when}: a stale write",
                old.age,
                old.updated_at,
                new.age,
                new.updated_at
            );
        }
    }
}

/// Polls the stored pets of `shards` until `ok` holds.
async fn wait_rows(
    cluster: &Cluster,
    shards: &[i64],
    timeout: Duration,
    what: &str,
    ok: impl Fn(&BTreeMap<i64, PetRow>) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if ok(&cluster.pets_in_shards(shards)) {
            return;
        }
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `N` and `P` of `handed off N shard(s) (P pet(s)) in X s`.
fn parse_handed_off(line: &str) -> (usize, usize) {
    let rest = line
        .split_once("handed off ")
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("not a hand-off line: {line}"));
    let number = |s: &str| -> usize {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no count in `{line}`"))
    };
    let (shards, rest) = rest
        .split_once(" shard(s)")
        .unwrap_or_else(|| panic!("no shard count in `{line}`"));
    let pets = rest
        .split_once('(')
        .and_then(|(_, r)| r.split_once(" pet(s)"))
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("no pet count in `{line}`"));
    (number(shards), number(pets))
}
