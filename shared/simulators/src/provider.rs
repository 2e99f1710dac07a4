//! The simulated providers and the URL prefix each one is served under.

use serde::Serialize;

/// One simulated provider API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `/openai`: immediate image generation and chat completions.
    OpenAi,
    /// `/runway`: async tasks polled at `/v1/tasks/{id}`.
    Runway,
    /// `/replicate`: async predictions, `Prefer: wait`, signed webhooks.
    Replicate,
    /// `/fal`: queue API with Ed25519-signed webhooks.
    Fal,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Runway,
        Provider::Replicate,
        Provider::Fal,
    ];

    /// The URL prefix and stats key of the provider.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Runway => "runway",
            Provider::Replicate => "replicate",
            Provider::Fal => "fal",
        }
    }

    /// Parses a prefix such as `"replicate"`.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}
