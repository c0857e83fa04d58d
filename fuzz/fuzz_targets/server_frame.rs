//! Frames the web app decodes from the server: never a panic, and round trips are exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livepet_shared::wire::ServerMsg;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = serde_json::from_str::<ServerMsg>(text) {
        let again = serde_json::to_string(&msg).expect("a decoded frame encodes");
        let back: ServerMsg = serde_json::from_str(&again).expect("an encoded frame decodes");
        assert_eq!(back, msg);
    }
});
