//! The active list as a window: a session sees one page of the name-sorted list and the
//! total, hears only of changes to its page (and the count), and can still give treats to
//! active pets on other pages.

use crate::client::Ws;
use crate::helpers::TestApp;

use livepet_shared::wire::{ActivePet, ErrorCode, ServerMsg};
use livepet_shared::PetId;
use serde_json::json;

/// A page of the list: its first frame and every change after it, applied.
struct Window {
    ws: Ws,
    offset: u32,
    total: u64,
    pets: Vec<ActivePet>,
    /// Every pet any change frame mentioned, joined or left.
    mentioned: Vec<PetId>,
}

impl Window {
    /// Asks a new session for a page and reads its first frame.
    async fn open(mut ws: Ws, offset: u32, limit: u32) -> Window {
        ws.greeting().await;
        ws.send(json!({"type": "active_pets_page", "offset": offset, "limit": limit}))
            .await;
        let (total, pets) = ws
            .until(|m| match m {
                ServerMsg::ActivePets {
                    offset: o,
                    total,
                    pets,
                } if *o == offset => Some((*total, pets.clone())),
                _ => None,
            })
            .await;
        Window {
            ws,
            offset,
            total,
            pets,
            mentioned: Vec::new(),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut pets = self.pets.clone();
        pets.sort_by_key(|p| p.name.to_lowercase());
        pets.into_iter().map(|p| p.name).collect()
    }

    /// Applies change frames until the count is `total`.
    async fn until_total(&mut self, total: u64) {
        while self.total != total {
            if let ServerMsg::ActivePetsChanged {
                joined,
                left,
                total,
            } = self.ws.recv().await
            {
                self.mentioned.extend(joined.iter().map(|p| p.id));
                self.mentioned.extend(left.iter().copied());
                self.pets.retain(|p| !left.contains(&p.id));
                self.pets.extend(joined);
                self.total = total;
            }
        }
    }
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("Pet {i:03}")).collect()
}

#[actix_rt::test]
async fn a_session_sees_its_page_and_the_count_and_treats_reach_other_pages() {
    // No ticks: 120 watched pets ticking would fill the owner's socket, which the test does
    // not read, and a session that does not keep up is dropped with its pets.
    // And 120 watches in a row are more than one socket's burst of frames.
    let app = TestApp::sqlite_with(|args| {
        args.tick_ms = 3_600_000;
        args.ws_frames_per_second = 1_000;
    })
    .await;
    let mut owner = app.signed_up("owner@example.com").await;
    // Adopted out of name order, so the list's order is the server's doing.
    let mut ids = vec![PetId(0); 120];
    for i in (0..120).rev() {
        ids[i] = owner.adopt(&format!("Pet {i:03}"), "cat").await.id;
    }
    let mut owner_ws = owner.greeted_ws().await;
    for id in &ids {
        owner_ws.send(json!({"type": "watch", "pet_id": id})).await;
        owner_ws.pet_frame(*id).await;
    }

    let visitor = app.signed_up("visitor@example.com").await;
    // A new session starts on the first page of 50, with the count of all active pets.
    let mut first = visitor.ws().await;
    let (greeting, _) = first.greeting().await;
    assert_eq!(greeting, ids[..50].to_vec());

    let mut top = Window::open(visitor.ws().await, 0, 10).await;
    let mut deep = Window::open(visitor.ws().await, 100, 50).await;
    let mut beyond = Window::open(visitor.ws().await, 500, 50).await;
    assert_eq!((top.total, top.names()), (120, names(0..10)));
    assert_eq!((deep.total, deep.names()), (120, names(100..120)));
    assert_eq!((beyond.total, beyond.pets.len()), (120, 0));
    assert_eq!((top.offset, deep.offset, beyond.offset), (0, 100, 500));

    // One pet on the first page goes: the pages after it shift by one.
    owner_ws
        .send(json!({"type": "unwatch", "pet_id": ids[5]}))
        .await;
    top.until_total(119).await;
    deep.until_total(119).await;
    beyond.until_total(119).await;
    let mut expected = names(0..5);
    expected.extend(names(6..11));
    assert_eq!(top.names(), expected);
    assert_eq!(deep.names(), names(101..120));
    assert_eq!(top.mentioned, vec![ids[10], ids[5]]);
    assert_eq!(deep.mentioned, vec![ids[100]]);
    assert!(beyond.mentioned.is_empty(), "{:?}", beyond.mentioned);

    // The last pet goes: the top page hears only the count.
    owner_ws
        .send(json!({"type": "unwatch", "pet_id": ids[119]}))
        .await;
    top.until_total(118).await;
    deep.until_total(118).await;
    beyond.until_total(118).await;
    assert_eq!(
        top.mentioned,
        vec![ids[10], ids[5]],
        "nothing on its page moved"
    );
    assert_eq!(deep.names(), names(101..119));
    assert!(beyond.mentioned.is_empty());

    // A treat to a pet on no page the visitor shows still works: it is active.
    top.ws
        .send(json!({"type": "give_treat", "pet_id": ids[60]}))
        .await;
    assert_eq!(top.ws.treats().await, 4);
    // An inactive one is refused, wherever it would sort.
    top.ws
        .send(json!({"type": "give_treat", "pet_id": ids[5]}))
        .await;
    assert_eq!(top.ws.error().await, ErrorCode::NotActive);

    // Pages are at most 100 pets; the session stays up after the refusal.
    top.ws
        .send(json!({"type": "active_pets_page", "offset": 0, "limit": 101}))
        .await;
    assert_eq!(top.ws.error().await, ErrorCode::BadRequest);
    top.ws.send(json!({"type": "ping"})).await;
    top.ws
        .until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;

    // limit 0: no list at all, not even the count.
    let mut quiet = visitor.ws().await;
    quiet.greeting().await;
    quiet
        .send(json!({"type": "active_pets_page", "offset": 0, "limit": 0}))
        .await;
    owner_ws
        .send(json!({"type": "unwatch", "pet_id": ids[0]}))
        .await;
    top.until_total(117).await;
    quiet.send(json!({"type": "ping"})).await;
    let heard = quiet
        .until(|m| match m {
            ServerMsg::Pong => Some(None),
            ServerMsg::ActivePets { .. } | ServerMsg::ActivePetsChanged { .. } => {
                Some(Some(m.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(heard, None);
}
