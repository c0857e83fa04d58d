//! HTTP bodies the server decodes (credentials, new pets) and the error body the web app
//! decodes: never a panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livepet_shared::wire::{ApiError, Credentials, NewPet, UserBody};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Credentials>(data);
    let _ = serde_json::from_slice::<NewPet>(data);
    let _ = serde_json::from_slice::<UserBody>(data);
    if let Ok(e) = serde_json::from_slice::<ApiError>(data) {
        let again = serde_json::to_vec(&e).expect("encodes");
        assert_eq!(
            serde_json::from_slice::<ApiError>(&again).expect("decodes"),
            e
        );
    }
});
