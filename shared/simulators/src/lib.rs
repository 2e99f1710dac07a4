//! In-process HTTP simulators of real provider APIs (OpenAI, Runway, Replicate, fal,
//! Stability AI, ElevenLabs, Luma Dream Machine, MiniMax; and, written for issue 19 on the
//! data-driven [`engine`]: Anthropic, Google Gemini/Imagen/Veo, Black Forest Labs, Ideogram,
//! Recraft, Kling, AssemblyAI, Deepgram, Hugging Face, Meshy and the OpenAI-compatible hosts
//! Together, Fireworks, Groq, DeepInfra and Mistral — see `docs/providers/simulators.md`) for tests, the demo and
//! `executor dev`. Bundles written for the real providers run unchanged against them: only
//! the base URL differs (`http://127.0.0.1:PORT/{provider}`). The wire shapes follow
//! `providers.md` (paths, field names, status values, error bodies, headers, webhook
//! signatures). Faults are injected per request by `sim:` directives embedded in any
//! string of the request ([`directives`]) or globally through [`SimConfig`]; every create,
//! poll, cancel and webhook is counted in [`Stats`].
//!
//! Each provider also reproduces the traps of `providers.md` that adapters must survive: a
//! Replicate 201 already `processing` with output, fal `COMPLETED` carrying an error, OpenAI's
//! two 429s, Stability's HTTP 200 `CONTENT_FILTERED`, ElevenLabs' quota exhaustion as HTTP 401,
//! MiniMax errors inside HTTP 200 answers, Runway's non-terminal `THROTTLED`, and Luma's
//! unsigned callbacks on `dreaming` / `completed` / `failed`.

pub mod anthropic;
pub mod assemblyai;
pub mod bfl;
pub mod clock;
pub mod compat;
pub mod config;
pub mod deepgram;
pub mod directives;
pub mod driver;
pub mod elevenlabs;
pub mod engine;
pub mod fal;
pub mod faults;
pub mod files;
pub mod google;
pub mod huggingface;
pub mod ideogram;
pub mod jobs;
pub mod kling;
pub mod luma;
pub mod media;
pub mod meshy;
pub mod minimax;
pub mod multipart;
pub mod openai;
pub mod provider;
pub mod recraft;
pub mod replicate;
pub mod reply;
pub mod runway;
pub mod server;
pub mod signing;
pub mod stability;
pub mod state;
pub mod stats;
pub mod webhook;

pub use config::SimConfig;
pub use provider::Provider;
pub use server::{Simulators, router};
pub use state::SimState;
pub use stats::{ProviderStats, Stats};
