//! The simulator server: one axum router with every provider nested under its prefix, plus
//! `GET /_sim/stats`; [`Simulators`] runs it on a loopback port and stops it when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::SimConfig;
use crate::provider::Provider;
use crate::state::SimState;
use crate::stats::Stats;
use crate::{
    anthropic, assemblyai, bfl, compat, deepgram, elevenlabs, fal, google, huggingface, ideogram,
    kling, luma, meshy, minimax, openai, recraft, replicate, runway, stability,
};

/// The whole simulator as a router (for `tower::ServiceExt::oneshot` tests).
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .nest("/openai", openai::router())
        .nest("/runway", runway::router())
        .nest("/replicate", replicate::router())
        .nest("/fal", fal::router())
        .nest("/stability", stability::router())
        .nest("/elevenlabs", elevenlabs::router())
        .nest("/luma", luma::router())
        .nest("/minimax", minimax::router())
        .nest("/anthropic", anthropic::router())
        .nest("/google", google::router())
        .nest("/bfl", bfl::router())
        .nest("/ideogram", ideogram::router())
        .nest("/recraft", recraft::router())
        .nest("/kling", kling::router())
        .nest("/assemblyai", assemblyai::router())
        .nest("/deepgram", deepgram::router())
        .nest("/huggingface", huggingface::router())
        .nest("/meshy", meshy::router())
        .nest("/together", compat::router(&compat::TOGETHER))
        .nest("/fireworks", compat::router(&compat::FIREWORKS))
        .nest("/groq", compat::router(&compat::GROQ))
        .nest("/deepinfra", compat::router(&compat::DEEPINFRA))
        .nest("/mistral", compat::router(&compat::MISTRAL))
        .route("/_sim/stats", get(stats))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), latency))
        .with_state(state)
}

async fn stats(State(state): State<Arc<SimState>>) -> Response {
    Json(state.stats()).into_response()
}

async fn latency(State(state): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    if state.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.config.latency_ms)).await;
    }
    next.run(request).await
}

/// A running simulator server; dropping it stops the server.
#[derive(Debug)]
pub struct Simulators {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Simulators {
    /// Starts on `127.0.0.1:0` (an ephemeral port).
    pub async fn start(config: SimConfig) -> anyhow::Result<Simulators> {
        Simulators::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> anyhow::Result<Simulators> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = SimState::new(config, &format!("http://{addr}"))?;
        let app = router(Arc::clone(&state));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        tracing::info!(%addr, "provider simulators listening");
        Ok(Simulators {
            addr,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of a provider (`openai`, `runway`, `replicate`, `fal`, `stability`,
    /// `elevenlabs`, `luma`, `minimax`), e.g. `http://127.0.0.1:PORT/replicate`.
    pub fn base_url(&self, provider: &str) -> String {
        match Provider::parse(provider) {
            Some(p) => self.state.base_url(p),
            None => format!("{}/{provider}", self.state.root_url),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// fal webhook public key (raw Ed25519, base64url without padding).
    pub fn fal_public_key_b64url(&self) -> String {
        self.state.fal_signer.public_key_b64url()
    }

    /// Replicate webhook secret (`whsec_…`).
    pub fn replicate_webhook_secret(&self) -> &str {
        &self.state.config.replicate_webhook_secret
    }

    /// The shared state (jobs, files, stats).
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}
