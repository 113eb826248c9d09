//! `streamGenerateContent` events → OpenAI stream chunks, candidate by candidate.

use std::collections::BTreeMap;

use super::{tool_call, Candidate, GenerateResponse};
use crate::openai::{completion_id, unix_now, ChatChunk, Delta, ToolCallDelta, Usage};
use crate::providers::UpstreamError;

/// What a stream has sent so far for one candidate.
#[derive(Debug, Default)]
struct CandidateState {
    started: bool,
    has_text: bool,
    tool_calls: u32,
    finished: bool,
}

/// Turns the events of one `streamGenerateContent` call into chunks of one completion.
#[derive(Debug)]
pub struct StreamState {
    id: String,
    created: u64,
    include_usage: bool,
    payloads: usize,
    candidates: BTreeMap<u32, CandidateState>,
    usage: Option<Usage>,
}

impl StreamState {
    pub fn new(include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            created: unix_now(),
            include_usage,
            payloads: 0,
            candidates: BTreeMap::new(),
            usage: None,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> ChatChunk {
        let mut chunk = ChatChunk::with_delta(&self.id, self.created, delta, finish);
        for choice in &mut chunk.choices {
            choice.index = index;
        }
        chunk
    }

    /// The chunks for one SSE `data` payload. An error ends the stream.
    pub fn payload(&mut self, data: &str) -> Result<Vec<ChatChunk>, UpstreamError> {
        if data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let response: GenerateResponse = serde_json::from_str(data)
            .map_err(|e| UpstreamError::Protocol(format!("invalid stream payload: {e}")))?;
        self.payloads += 1;
        if let Some(failure) = response.failure() {
            return Err(failure);
        }
        if let Some(usage) = &response.usage_metadata {
            self.usage = Some(usage.usage());
        }
        let mut out = Vec::new();
        for (candidate, position) in response.candidates.iter().zip(0u32..) {
            let index = candidate.index.unwrap_or(position);
            let mut state = self.candidates.remove(&index).unwrap_or_default();
            let result = self.candidate(index, candidate, &mut state, &mut out);
            self.candidates.insert(index, state);
            result?;
        }
        Ok(out)
    }

    fn candidate(
        &self,
        index: u32,
        candidate: &Candidate,
        state: &mut CandidateState,
        out: &mut Vec<ChatChunk>,
    ) -> Result<(), UpstreamError> {
        if state.finished {
            return Ok(());
        }
        // The role goes out with the first real chunk, so a stream that is blocked before
        // saying anything ends in an error rather than an empty answer.
        let start = |state: &mut CandidateState, out: &mut Vec<ChatChunk>| {
            if !state.started {
                state.started = true;
                out.push(self.chunk(index, Delta::role(), None));
            }
        };
        for part in candidate.answer_parts() {
            if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                start(state, out);
                state.has_text = true;
                out.push(self.chunk(index, Delta::content(text), None));
            }
            if let Some(call) = &part.function_call {
                start(state, out);
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta::complete(
                        state.tool_calls,
                        &tool_call(call),
                    )]),
                    ..Delta::default()
                };
                state.tool_calls += 1;
                out.push(self.chunk(index, delta, None));
            }
        }
        if candidate.finish_reason.is_some() {
            let finish = candidate.finish(state.has_text, state.tool_calls > 0)?;
            start(state, out);
            state.finished = true;
            out.push(self.chunk(index, Delta::default(), Some(finish)));
        }
        Ok(())
    }

    /// The chunks after the last payload: finish chunks Gemini left out, then usage.
    pub fn end(&mut self) -> Result<Vec<ChatChunk>, UpstreamError> {
        if self.payloads == 0 {
            return Err(UpstreamError::Protocol("empty stream".to_owned()));
        }
        if !self.candidates.values().any(|c| c.started) {
            return Err(UpstreamError::Protocol(
                "Gemini stream ended without content".to_owned(),
            ));
        }
        let mut out: Vec<ChatChunk> = self
            .candidates
            .iter()
            .filter(|(_, c)| c.started && !c.finished)
            .map(|(index, c)| {
                let finish = if c.tool_calls > 0 {
                    "tool_calls"
                } else {
                    "stop"
                };
                self.chunk(*index, Delta::default(), Some(finish))
            })
            .collect();
        for state in self.candidates.values_mut() {
            state.finished = true;
        }
        if self.include_usage {
            out.push(ChatChunk::usage_only(
                &self.id,
                self.created,
                self.usage.clone().unwrap_or_default(),
            ));
        }
        Ok(out)
    }
}
