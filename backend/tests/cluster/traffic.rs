//! Traffic between nodes: a browser on one node watches, feeds and treats pets another node
//! runs, and sees the active list of the whole world.

use crate::harness::{assert_no_gap, metric_with, wait_hunger_taken, Ages, Cluster, Socket, STEP};
use livepet_shared::wire::ServerMsg;
use livepet_shared::Rules;
use serde_json::{json, Value};

/// An owner on node `a` watching a pet node `b` runs: the pet's frames arrive on `a`'s
/// socket, one per tick with growing ages; its feed (sent on `a`) comes back as a frame with
/// the hunger 100 lower; `GET /api/pets/{id}` on `c` shows the live state. `a` reached the pet
/// through remote requests (its `livepet_remote_requests_total{op="watch"|"feed"}` grew), and
/// the pet still runs on `b` alone.
#[actix_rt::test]
async fn a_viewer_on_one_node_watches_and_feeds_a_pet_another_node_runs() {
    let Some(cluster) = Cluster::start("remote viewer").await else {
        return;
    };
    let mut owner = cluster.sign_up("a", "owner@example.com").await;
    let pet = cluster.adopt_owned_by(&mut owner, "b", 1).await.remove(0);
    // The adopted pet runs where its shard lives, and only there.
    cluster.wait_settled(&["a", "b", "c"], STEP).await;

    let mut socket = Socket::greeted(&owner, "owner on a").await.0;
    let first = socket.watch(pet.id).await;
    assert_eq!(first.id, pet.id);
    assert!(first.alive);
    let mut ages = Ages::new([pet.id]);
    ages.push(&first);
    socket
        .record_until(&mut ages, STEP, "8 frames of the remote pet", |a| {
            a.count(pet.id) >= 8
        })
        .await;
    let frames = &ages.frames[&pet.id];
    // No tick's frame is lost on the way from b: each age is the previous one or the next
    // (the watch's own frame may meet the first tick's) ...
    assert_no_gap(pet.id, frames, "a pet of b watched from a");
    // ... and from then on every frame is a later tick than the one before.
    for w in frames[1..].windows(2) {
        assert!(
            w[1].age > w[0].age && w[1].at >= w[0].at,
            "frames of pet {} on a: ages must grow with time: {}",
            pet.id.0,
            ages.describe()
        );
    }

    let before_feed = frames.last().unwrap().clone();
    socket
        .send(json!({"type": "feed", "pet_id": pet.id.0}))
        .await;
    let (prev, fed) = wait_hunger_taken(
        &mut socket,
        pet.id,
        before_feed,
        Rules::default().feed_amount,
    )
    .await;
    assert!(
        fed.hunger < prev.hunger,
        "the feed frame shows less hunger: {prev:?} -> {fed:?}"
    );

    // The live state, asked on a third node.
    let on_c = cluster.same_session_on(&owner, "c");
    let res = on_c.get(&format!("/api/pets/{}", pet.id.0)).await;
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["alive"], true);
    assert!(
        view["age"].as_u64().unwrap() >= u64::from(fed.age),
        "GET on c shows age {} after a frame of age {}",
        view["age"],
        fed.age
    );

    let text = cluster.node("a").metrics().await;
    for op in ["watch", "feed"] {
        let ok = metric_with(
            &text,
            "livepet_remote_requests_total",
            &[("op", op), ("outcome", "ok")],
        );
        assert!(
            ok >= 1.0,
            "node a sent no successful remote {op} to b (livepet_remote_requests_total)"
        );
    }
    assert_eq!(
        cluster.owner_of(pet.id).as_deref(),
        Some("b"),
        "the pet's shard stayed with b"
    );
    // Still exactly once in the world, and the watch keeps flowing.
    cluster.wait_settled(&["a", "b", "c"], STEP).await;
    let last = ages.last_age(pet.id).unwrap_or(0).max(fed.age);
    socket
        .record_until(&mut ages, STEP, "frames after the feed", |a| {
            a.max_age(pet.id).unwrap_or(0) >= last + 3
        })
        .await;
    cluster.assert_no_stale_writes();
}

/// Presence and treats across nodes: the owner (on `a`) starts watching a pet `b` runs; a
/// session on `c` sees it join its active list, a fresh session on `b` has it in its list.
/// A treat before it was active is refused (`not_active`) and costs nothing. A treat from the
/// user on `c` then costs that user one treat (its socket says so, and `/api/me` on `c` and on
/// `a` agree), and the owner's frames on `a` show the hunger 20 lower. When the owner stops
/// watching, the pet leaves the list on `c`.
#[actix_rt::test]
async fn presence_and_treats_reach_every_node() {
    let Some(cluster) = Cluster::start("presence and treats").await else {
        return;
    };
    let mut owner = cluster.sign_up("a", "owner@example.com").await;
    let pet = cluster.adopt_owned_by(&mut owner, "b", 1).await.remove(0);
    let giver = cluster.sign_up("c", "giver@example.com").await;
    let (mut on_c, page, total0, treats0) = Socket::greeted(&giver, "giver on c").await;
    assert!(
        !page.contains(&pet.id),
        "nobody watches pet {} yet, but c lists it",
        pet.id.0
    );
    assert!(treats0 >= 2, "a new user has treats to give ({treats0})");

    // Not on anyone's screen: a treat is refused and costs nothing.
    on_c.send(json!({"type": "give_treat", "pet_id": pet.id.0}))
        .await;
    let code = on_c
        .until(
            "the refusal of a treat to an inactive pet",
            STEP,
            |m| match m {
                ServerMsg::Error { code, .. } => Some(*code),
                ServerMsg::Treats { available } => {
                    panic!("a treat to a pet nobody watches was taken ({available} left)")
                }
                _ => None,
            },
        )
        .await;
    assert_eq!(code, livepet_shared::wire::ErrorCode::NotActive);

    // The owner opens the pet's page on a.
    let mut on_a = Socket::greeted(&owner, "owner on a").await.0;
    let first = on_a.watch(pet.id).await;

    // c hears of it.
    let total1 = on_c
        .until(
            &format!("pet {} joining c's active list", pet.id.0),
            STEP,
            |m| match m {
                ServerMsg::ActivePetsChanged { joined, total, .. }
                    if joined.iter().any(|p| p.id == pet.id) =>
                {
                    Some(*total)
                }
                ServerMsg::ActivePets { pets, total, .. }
                    if pets.iter().any(|p| p.id == pet.id) =>
                {
                    Some(*total)
                }
                _ => None,
            },
        )
        .await;
    assert_eq!(total1, total0 + 1, "the active count on c grew by one");
    // A new session on the node running the pet lists it too.
    let on_b_client = cluster.same_session_on(&giver, "b");
    let (on_b, page_b, total_b, treats_b) = Socket::greeted(&on_b_client, "giver on b").await;
    assert!(
        page_b.contains(&pet.id),
        "b's active list lacks pet {} ({page_b:?})",
        pet.id.0
    );
    assert_eq!(total_b, total1);
    assert_eq!(treats_b, treats0, "b and c agree on the giver's treats");
    on_b.close().await;

    // The treat, from c.
    on_c.send(json!({"type": "give_treat", "pet_id": pet.id.0}))
        .await;
    let left = on_c
        .until("the giver's new treat count", STEP, |m| match m {
            ServerMsg::Treats { available } => Some(*available),
            _ => None,
        })
        .await;
    assert_eq!(left, treats0 - 1, "the treat cost the giver one treat");
    for node in ["c", "a"] {
        let me = cluster.same_session_on(&giver, node);
        assert_eq!(
            me.treats().await,
            u64::from(treats0 - 1),
            "/api/me on {node} after the treat"
        );
    }
    // The owner sees it on a.
    let (prev, treated) =
        wait_hunger_taken(&mut on_a, pet.id, first, Rules::default().treat_amount).await;
    assert!(treated.hunger < prev.hunger || prev.hunger == 0);
    let text = cluster.node("c").metrics().await;
    assert!(
        metric_with(
            &text,
            "livepet_remote_requests_total",
            &[("op", "treat"), ("outcome", "ok")]
        ) >= 1.0,
        "c gave the treat to b's pet without a remote treat request"
    );

    // The owner leaves the page: the pet leaves c's list.
    on_a.send(json!({"type": "unwatch", "pet_id": pet.id.0}))
        .await;
    let total2 = on_c
        .until(
            &format!("pet {} leaving c's active list", pet.id.0),
            STEP,
            |m| match m {
                ServerMsg::ActivePetsChanged { left, total, .. } if left.contains(&pet.id) => {
                    Some(*total)
                }
                _ => None,
            },
        )
        .await;
    assert_eq!(total2, total0);
    cluster.wait_settled(&["a", "b", "c"], STEP).await;
    cluster.assert_no_stale_writes();
}
