//! From a request's `model` to the provider that will serve it.

use std::sync::Arc;

use mana_llm_shared::{ModelRef, Target};

use crate::error::ApiError;
use crate::providers::Lookup;
use crate::providers::{Provider, Providers};

/// A provider and the model name it understands.
pub struct Resolved {
    pub target: Target,
    pub provider: Arc<dyn Provider>,
}

pub fn resolve(providers: &Providers, model: Option<&str>) -> Result<Resolved, ApiError> {
    let model = model
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::InvalidRequest {
            message:
                "model is required: use 'provider/model' (e.g. 'echo/test' or 'ollama/qwen2.5:7b')"
                    .to_owned(),
            param: Some("model".to_owned()),
            code: "invalid_request",
        })?;
    let target = match ModelRef::parse(model) {
        ModelRef::Direct(target) => target,
        ModelRef::Alias(alias) => {
            return Err(ApiError::NotFound {
                message: format!("unknown alias '{alias}': no alias registry is loaded"),
                code: "model_not_found",
            })
        }
    };
    match providers.get(&target.provider) {
        Ok(provider) => Ok(Resolved {
            provider: provider.clone(),
            target,
        }),
        Err(Lookup::NotConfigured(e)) => Err(ApiError::upstream(&target, e)),
        Err(Lookup::Unknown) => Err(ApiError::NotFound {
            message: format!(
                "unknown provider '{}' in model '{model}'; known providers: {}",
                target.provider,
                providers.known_ids().join(", ")
            ),
            code: "model_not_found",
        }),
    }
}

/// The metric label for a provider id: itself when known, else `other`.
pub fn provider_label(providers: &Providers, id: &str) -> String {
    if providers.known_ids().contains(&id) {
        id.to_owned()
    } else {
        crate::metrics::OTHER.to_owned()
    }
}
