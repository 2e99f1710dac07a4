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
    /// `/stability`: immediate multipart image generation (v2beta Stable Image).
    Stability,
    /// `/elevenlabs`: immediate text to speech (audio bytes or JSON with timestamps).
    ElevenLabs,
    /// `/luma`: Dream Machine generations, polled or with unsigned callbacks.
    Luma,
    /// `/minimax`: video tasks polled, errors inside HTTP 200 answers.
    MiniMax,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 8] = [
        Provider::OpenAi,
        Provider::Runway,
        Provider::Replicate,
        Provider::Fal,
        Provider::Stability,
        Provider::ElevenLabs,
        Provider::Luma,
        Provider::MiniMax,
    ];

    /// The URL prefix and stats key of the provider.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Runway => "runway",
            Provider::Replicate => "replicate",
            Provider::Fal => "fal",
            Provider::Stability => "stability",
            Provider::ElevenLabs => "elevenlabs",
            Provider::Luma => "luma",
            Provider::MiniMax => "minimax",
        }
    }

    /// Parses a prefix such as `"replicate"`.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// True for the providers answering the result in the create call itself (no job):
    /// their in-flight count is the number of requests being answered.
    pub fn is_immediate(self) -> bool {
        matches!(
            self,
            Provider::OpenAi | Provider::Stability | Provider::ElevenLabs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).ok(),
                Some(serde_json::Value::from(p.as_str()))
            );
        }
    }
}
