//! Device-channel frames: any text through `ClientFrame::parse` (the server's parse and
//! validation of every inbound frame) and through the field client's `ServerFrame` parse.
//! Whatever is accepted must serialise, parse back to the same value and (for actions) convert
//! into an action and back unchanged.

#![no_main]

use dispatch_protocol::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8 by the time the session sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ClientFrame::parse(text) {
        let json = serde_json::to_string(&frame).expect("an accepted frame serialises");
        let again = ClientFrame::parse(&json)
            .unwrap_or_else(|e| panic!("an accepted frame, serialised, is refused: {e}: {json}"));
        assert_eq!(again, frame, "round trip changed the frame: {json}");
        let action_id = frame.action_id().map(str::to_owned);
        match frame.clone().into_action() {
            Ok(action) => {
                assert_eq!(Some(&action.action_id), action_id.as_ref());
                let back = action.action.into_frame(action.action_id, action.at_ms);
                assert_eq!(back, frame, "action round trip changed the frame");
            }
            Err(not_action) => {
                assert!(
                    action_id.is_none(),
                    "a frame with an action id is no action"
                );
                assert_eq!(not_action, frame);
            }
        }
    }
    if let Ok(frame) = serde_json::from_str::<ServerFrame>(text) {
        let json = serde_json::to_string(&frame).expect("a server frame serialises");
        let again: ServerFrame = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("a server frame, serialised, is refused: {e}: {json}"));
        assert_eq!(again, frame, "round trip changed the server frame: {json}");
    }
});
