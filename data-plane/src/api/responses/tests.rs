//! A refused Responses request, as the client reads it: the OpenAI error body.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::openai::ResponsesRequest;

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

fn error(body: Value) -> Value {
    let refused = request(body).to_chat().unwrap_err();
    ApiError::from(refused).body()["error"].clone()
}

#[test]
fn stateful_features_are_400s_naming_the_field() {
    for (body, param) in [
        (json!({"input": "x", "store": true}), "store"),
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (json!({"input": "x", "background": true}), "background"),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0]",
        ),
    ] {
        let e = error(body);
        assert_eq!(e["param"], param, "{e}");
        assert_eq!(e["code"], "unsupported_stateful_feature", "{e}");
        assert!(e["message"].as_str().unwrap().contains("stateless"), "{e}");
    }
    // store: false is what a stateless gateway does anyway.
    request(json!({"input": "x", "store": false}))
        .to_chat()
        .unwrap();
}

#[test]
fn bad_input_names_the_offending_field() {
    for (body, param) in [
        (json!({"model": "m"}), "input"),
        (json!({"input": 3}), "input"),
        (json!({"input": []}), "input"),
        (
            json!({"input": [{"role": "wizard", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"input": [{"type": "function_call", "name": "f"}]}),
            "input[0].call_id",
        ),
        (
            json!({"input": [{"type": "computer_call_output"}]}),
            "input[0].type",
        ),
        (
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"input": "x", "tool_choice": {"type": "web_search"}}),
            "tool_choice",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"input": "x", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
    ] {
        let e = error(body.clone());
        assert_eq!(e["param"], param, "{body}: {e}");
        assert_eq!(e["type"], "invalid_request_error");
    }
}
