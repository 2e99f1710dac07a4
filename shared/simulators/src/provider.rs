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
    /// `/minimax`: video tasks polled, speech (`t2a_v2`) immediate; errors inside HTTP 200.
    MiniMax,
    /// `/anthropic`: Messages (immediate) and Message Batches (polled).
    Anthropic,
    /// `/google`: Gemini `generateContent`, Imagen `:predict`, Veo `:predictLongRunning`.
    Google,
    /// `/bfl`: Black Forest Labs FLUX tasks polled at `polling_url`.
    Bfl,
    /// `/ideogram`: immediate image generation.
    Ideogram,
    /// `/recraft`: immediate image generation (raster and vector).
    Recraft,
    /// `/kling`: JWT-authenticated video tasks, polled or with callbacks.
    Kling,
    /// `/assemblyai`: transcripts polled, webhooks with a custom auth header.
    AssemblyAi,
    /// `/deepgram`: `/v1/listen` (immediate or callback) and `/v1/speak`.
    Deepgram,
    /// `/huggingface`: the Inference Providers router and hf-inference.
    HuggingFace,
    /// `/meshy`: 3D tasks polled.
    Meshy,
    /// `/together`: OpenAI-compatible chat and images.
    Together,
    /// `/fireworks`: OpenAI-compatible chat (`/inference/v1`).
    Fireworks,
    /// `/groq`: OpenAI-compatible chat and transcription (`/openai/v1`).
    Groq,
    /// `/deepinfra`: OpenAI-compatible chat (`/v1/openai`).
    DeepInfra,
    /// `/mistral`: OpenAI-compatible chat with Mistral's error envelope.
    Mistral,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 23] = [
        Provider::OpenAi,
        Provider::Runway,
        Provider::Replicate,
        Provider::Fal,
        Provider::Stability,
        Provider::ElevenLabs,
        Provider::Luma,
        Provider::MiniMax,
        Provider::Anthropic,
        Provider::Google,
        Provider::Bfl,
        Provider::Ideogram,
        Provider::Recraft,
        Provider::Kling,
        Provider::AssemblyAi,
        Provider::Deepgram,
        Provider::HuggingFace,
        Provider::Meshy,
        Provider::Together,
        Provider::Fireworks,
        Provider::Groq,
        Provider::DeepInfra,
        Provider::Mistral,
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
            Provider::Anthropic => "anthropic",
            Provider::Google => "google",
            Provider::Bfl => "bfl",
            Provider::Ideogram => "ideogram",
            Provider::Recraft => "recraft",
            Provider::Kling => "kling",
            Provider::AssemblyAi => "assemblyai",
            Provider::Deepgram => "deepgram",
            Provider::HuggingFace => "huggingface",
            Provider::Meshy => "meshy",
            Provider::Together => "together",
            Provider::Fireworks => "fireworks",
            Provider::Groq => "groq",
            Provider::DeepInfra => "deepinfra",
            Provider::Mistral => "mistral",
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
            Provider::OpenAi
                | Provider::Stability
                | Provider::ElevenLabs
                | Provider::Ideogram
                | Provider::Recraft
                | Provider::HuggingFace
                | Provider::Together
                | Provider::Fireworks
                | Provider::Groq
                | Provider::DeepInfra
                | Provider::Mistral
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
