//! A chat stream as Responses events, written as they can be: `response.created` and
//! `response.in_progress` first; for text, `output_item.added` → `content_part.added` →
//! `output_text.delta`… → `output_text.done` → `content_part.done` → `output_item.done`; for a
//! function call, `output_item.added` → `function_call_arguments.delta`… →
//! `function_call_arguments.done` → `output_item.done`; then `response.completed` (or
//! `response.incomplete`). A failure mid-way is an `error` event and then `response.failed`.
//! Every event carries its `sequence_number`; there is no `[DONE]`.

use serde_json::{json, Value};

use super::item_id;
use super::output::{OutputItem, OutputText, ResponseObject};
use crate::openai::{ChatChunk, ToolCallDelta, Usage};

/// The text message being written.
struct OpenMessage {
    output_index: usize,
    id: String,
    text: String,
}

/// A function call being written, by its chat tool-call index.
struct OpenCall {
    chat_index: u32,
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Turns one chat stream into Responses events.
pub struct ResponseEvents {
    response: ResponseObject,
    sequence: u64,
    started: bool,
    message: Option<OpenMessage>,
    calls: Vec<OpenCall>,
    /// Items finished so far, by output index.
    done: Vec<(usize, OutputItem)>,
    next_index: usize,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ResponseEvents {
    pub fn new(response: ResponseObject) -> Self {
        Self {
            response,
            sequence: 0,
            started: false,
            message: None,
            calls: Vec::new(),
            done: Vec::new(),
            next_index: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// The events one chat chunk stands for (only its first choice: `n` is always 1 here).
    pub fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        self.start(out);
        if let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.text(text, out);
            }
            for fragment in choice.delta.tool_calls.as_deref().unwrap_or(&[]) {
                self.call_fragment(fragment, out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.clone());
            }
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage.clone();
        }
    }

    /// The stream ended cleanly: close what is open, then the final response.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_message(out);
        self.close_calls(out);
        self.response
            .end(self.finish_reason.as_deref(), self.usage.clone());
        self.response.output = self.output();
        let kind = if self.response.is_incomplete() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let response = self.response_value();
        self.emit(kind, json!({"response": response}), out);
    }

    /// The stream broke after it started: an `error` event, then `response.failed` with what
    /// was finished before.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.emit(
            "error",
            json!({"code": code, "message": message, "param": null}),
            out,
        );
        self.response.status = "failed";
        self.response.error = Some(json!({"code": code, "message": message}));
        self.response.usage = self.usage.clone().map(Into::into);
        self.response.output = self.output();
        let response = self.response_value();
        self.emit("response.failed", json!({"response": response}), out);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.response_value();
        self.emit("response.created", json!({"response": response}), out);
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        // Items follow one another: text after calls starts a new message.
        self.close_calls(out);
        if self.message.is_none() {
            let message = OpenMessage {
                output_index: self.take_index(),
                id: item_id("msg"),
                text: String::new(),
            };
            let item = json!({"type": "message", "id": message.id, "status": "in_progress", "role": "assistant", "content": []});
            self.emit(
                "response.output_item.added",
                json!({"output_index": message.output_index, "item": item}),
                out,
            );
            self.emit(
                "response.content_part.added",
                json!({"item_id": message.id, "output_index": message.output_index, "content_index": 0, "part": OutputText::new(String::new())}),
                out,
            );
            self.message = Some(message);
        }
        let Some(message) = self.message.as_mut() else {
            return;
        };
        message.text.push_str(text);
        let event = json!({"item_id": message.id, "output_index": message.output_index, "content_index": 0, "delta": text, "logprobs": []});
        self.emit("response.output_text.delta", event, out);
    }

    fn call_fragment(&mut self, fragment: &ToolCallDelta, out: &mut Vec<u8>) {
        self.close_message(out);
        let function = fragment.function.as_ref();
        let name = function.and_then(|f| f.name.as_deref()).unwrap_or("");
        let arguments = function.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        let position = self
            .calls
            .iter()
            .position(|c| c.chat_index == fragment.index);
        let position = match position {
            Some(p) => {
                self.calls[p].name.push_str(name);
                p
            }
            None => {
                let call = OpenCall {
                    chat_index: fragment.index,
                    output_index: self.take_index(),
                    id: item_id("fc"),
                    call_id: fragment
                        .id
                        .clone()
                        .unwrap_or_else(crate::openai::tool_call_id),
                    name: name.to_owned(),
                    arguments: String::new(),
                };
                let item = json!({"type": "function_call", "id": call.id, "call_id": call.call_id, "name": call.name, "arguments": "", "status": "in_progress"});
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": call.output_index, "item": item}),
                    out,
                );
                self.calls.push(call);
                self.calls.len() - 1
            }
        };
        if arguments.is_empty() {
            return;
        }
        let call = &mut self.calls[position];
        call.arguments.push_str(arguments);
        let event =
            json!({"item_id": call.id, "output_index": call.output_index, "delta": arguments});
        self.emit("response.function_call_arguments.delta", event, out);
    }

    fn close_message(&mut self, out: &mut Vec<u8>) {
        let Some(message) = self.message.take() else {
            return;
        };
        let (id, index) = (message.id, message.output_index);
        let part = OutputText::new(message.text.clone());
        self.emit(
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "text": message.text, "logprobs": []}),
            out,
        );
        self.emit(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            out,
        );
        let item = OutputItem::Message {
            id: id.clone(),
            status: "completed",
            role: "assistant",
            content: vec![part],
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
        self.done.push((index, item));
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for call in std::mem::take(&mut self.calls) {
            self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": call.id, "output_index": call.output_index, "name": call.name, "arguments": call.arguments}),
                out,
            );
            let item = OutputItem::FunctionCall {
                id: call.id,
                call_id: call.call_id,
                name: call.name,
                arguments: call.arguments,
                status: "completed",
            };
            self.emit(
                "response.output_item.done",
                json!({"output_index": call.output_index, "item": item}),
                out,
            );
            self.done.push((call.output_index, item));
        }
    }

    fn take_index(&mut self) -> usize {
        self.next_index += 1;
        self.next_index - 1
    }

    fn output(&self) -> Vec<OutputItem> {
        let mut done = self.done.clone();
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, item)| item).collect()
    }

    fn response_value(&self) -> Value {
        serde_json::to_value(&self.response).unwrap_or(Value::Null)
    }

    /// `event: <kind>` and `data: <payload with type and sequence_number>`.
    fn emit(&mut self, kind: &str, mut payload: Value, out: &mut Vec<u8>) {
        if let Value::Object(map) = &mut payload {
            map.insert("type".into(), json!(kind));
            map.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        if let Err(e) = serde_json::to_writer(&mut *out, &payload) {
            tracing::error!(error = %e, "could not encode a Responses event");
        }
        out.extend_from_slice(b"\n\n");
    }
}
