//! Embeddings: plan → walk (aliases and fallback work here too) → recorded once.

use std::sync::Arc;

use super::{record, Context, Landed, RouteLog};
use crate::error::ApiError;
use crate::openai::{Embeddings, EmbeddingsRequest};
use crate::providers::UpstreamError;
use crate::router::walk;
use crate::snapshot::Step;

/// The embeddings and the entry that made them.
pub struct Embedded {
    pub embeddings: Embeddings,
    pub step: Arc<Step>,
}

pub async fn run(
    cx: &Context<'_>,
    request: &EmbeddingsRequest,
    log: &mut RouteLog,
) -> Result<Embedded, ApiError> {
    request.validate()?;
    let (snapshot, plan) = cx.plan(request.model.as_deref())?;
    let outcome = walk(
        &cx.walk,
        &snapshot,
        &plan,
        false,
        |provider, step| async move {
            let embeddings = provider.embeddings(request, &step.target().model).await?;
            // A provider that drops inputs is broken for this request; another may not be.
            if embeddings.vectors.len() != request.input.len() {
                return Err(UpstreamError::Protocol(format!(
                    "asked for {} embeddings, got {}",
                    request.input.len(),
                    embeddings.vectors.len()
                )));
            }
            Ok(embeddings)
        },
    )
    .await?;
    let landed = Landed::Whole {
        prompt: outcome.value.prompt_tokens,
        completion: 0,
    };
    record(&outcome, landed, log);
    Ok(Embedded {
        embeddings: outcome.value,
        step: outcome.step,
    })
}
