//! Resolving a requested model into a chain of targets.

use mana_llm_shared::{AliasName, ModelRef, Target};

use crate::error::ApiError;
use crate::providers::Lookup;
use crate::snapshot::{Chain, Snapshot};

/// What to try, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The model as the client asked for it (or the default alias it fell back to).
    pub requested: String,
    /// Set when the request named (or defaulted to) an alias.
    pub alias: Option<AliasName>,
    /// The chain, resolved by the snapshot (shared, not copied, per request).
    pub steps: Chain,
}

impl Plan {
    pub fn is_alias(&self) -> bool {
        self.alias.is_some()
    }
}

pub fn plan(snapshot: &Snapshot, model: Option<&str>) -> Result<Plan, ApiError> {
    let registry = &snapshot.registry;
    let model = match model.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => m,
        None => match registry.default_alias() {
            Some(default) => default.as_str(),
            None => {
                return Err(ApiError::InvalidRequest {
                    message: "model is required (no default alias is configured): use 'provider/model' or a 'mana/…' alias"
                        .to_owned(),
                    param: Some("model".to_owned()),
                    code: "invalid_request",
                })
            }
        },
    };
    match ModelRef::parse(model) {
        ModelRef::Alias(name) => {
            let Some((alias, steps)) = snapshot.routes.alias(&name) else {
                // The registry's own lookup says what is known.
                let message = match registry.resolve(&name) {
                    Err(e) => e.to_string(),
                    Ok(_) => format!("alias '{name}' has no route"),
                };
                return Err(ApiError::NotFound {
                    message,
                    code: "model_not_found",
                });
            };
            Ok(Plan {
                requested: name,
                alias: Some(alias.clone()),
                steps: steps.clone(),
            })
        }
        ModelRef::Direct(target) => {
            if let Err(Lookup::Unknown) = snapshot.providers.get(&target.provider) {
                return Err(unknown_provider(snapshot, &target, model));
            }
            Ok(Plan {
                requested: model.to_owned(),
                alias: None,
                steps: snapshot.routes.direct(target, &snapshot.providers),
            })
        }
    }
}

fn unknown_provider(snapshot: &Snapshot, target: &Target, model: &str) -> ApiError {
    ApiError::NotFound {
        message: format!(
            "unknown provider '{}' in model '{model}'; known providers: {}",
            target.provider,
            snapshot.providers.known_ids().join(", ")
        ),
        code: "model_not_found",
    }
}
