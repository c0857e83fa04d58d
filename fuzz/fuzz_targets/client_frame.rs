//! Any bytes a browser (or an attacker) can send as a WebSocket text frame: decoding never
//! panics, and whatever decodes survives a round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livepet_shared::wire::ClientMsg;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = serde_json::from_str::<ClientMsg>(text) {
        let again = serde_json::to_string(&msg).expect("a decoded frame encodes");
        let back: ClientMsg = serde_json::from_str(&again).expect("an encoded frame decodes");
        assert_eq!(back, msg);
    }
});
