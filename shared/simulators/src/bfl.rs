//! Black Forest Labs simulator (`/bfl`), from `docs/providers/bfl.md`: `POST /v1/{endpoint}`
//! (`flux-pro-1.1`, `flux-pro-1.1-ultra`, `flux-dev`, `flux-kontext-pro|max`, `flux-2-*`, …)
//! answers 200 `{id, polling_url, cost, input_mp, output_mp}` (with `webhook_url`:
//! `{id, status, webhook_url, cost, …}`); `GET /v1/get_result?id=` reports `status`
//! `Pending` (with `progress`) → `Ready` (`result.sample`, a URL served here, JPEG unless
//! `output_format` says otherwise; Kontext defaults to PNG), or `Request Moderated`
//! (`sim:request_moderated`), `Content Moderated` (`sim:content_policy`), `Error`
//! (`sim:fail`); an unknown id is `Task not found` (HTTP 404 here: the code is UNCONFIRMED).
//! `GET /v1/credits` → `{credits}`.
//!
//! Auth `x-key`; errors are FastAPI `{detail}`: 422 `{detail:[{loc, msg, type}]}` for bad
//! bodies [SPEC], 402 insufficient credits, 429 over the active-task limit, 500, 503 —
//! their `detail` wording is UNCONFIRMED. With `webhook_url` the terminal result is POSTed
//! with `X-BFL-Signature: sha256=<hex HMAC of the body keyed with webhook_secret>` when a
//! secret is given (UNCONFIRMED: from BFL's skills docs, not the OpenAPI).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::engine::{Answer, AuthScheme, Errors, Spec, first_url, ratio_to_size, text};
use crate::files;
use crate::jobs::{Job, Outcome, Phase};
use crate::media::{ImageKind, photo};
use crate::provider::Provider;
use crate::state::SimState;
use crate::webhook::{Delivery, Signing};

const P: Provider = Provider::Bfl;

/// Endpoints and their price in credits (FLUX.1: per image; FLUX.2: first megapixel, then
/// per extra megapixel — per-MP prices UNCONFIRMED beyond flux-2-pro's 3 c first MP).
const ENDPOINTS: [(&str, f64, f64); 12] = [
    ("flux-pro-1.1", 4.0, 0.0),
    ("flux-pro-1.1-ultra", 6.0, 0.0),
    ("flux-dev", 2.5, 0.0),
    ("flux-pro-1.0-fill", 5.0, 0.0),
    ("flux-pro-1.0-expand", 5.0, 0.0),
    ("flux-kontext-pro", 4.0, 0.0),
    ("flux-kontext-max", 8.0, 0.0),
    ("flux-2-pro", 3.0, 1.5),
    ("flux-2-max", 7.0, 3.0),
    ("flux-2-flex", 6.0, 6.0),
    ("flux-2-klein-4b", 1.4, 0.1),
    ("flux-2-klein-9b", 1.5, 0.2),
];

/// The BFL spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Header("x-key"),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"detail":"Invalid or missing API key"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"detail":"You have exceeded the number of active tasks (24). Please wait for some tasks to finish."}"#,
            headers: &[("retry-after", "1")],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"detail":"Internal Server Error"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 402,
            body: r#"{"detail":"Insufficient credits. Please add credits at https://api.bfl.ai"}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 422,
            body: r#"{"detail":[{"loc":["body","prompt"],"msg":"Input should be a valid string (sim:invalid)","type":"string_type"}]}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"detail":"Request moderated"}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"detail":"Not Found"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"detail":"Service Unavailable"}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[],
};

/// Routes under `/bfl`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/get_result", get(get_result))
        .route("/v1/credits", get(credits))
        .route("/v1/{endpoint}", post(create))
        .route("/files/{id}/{name}", get(files::serve))
}

fn output_kind(endpoint: &str, body: &Value) -> ImageKind {
    text(body, "output_format")
        .and_then(ImageKind::parse)
        .unwrap_or(if endpoint.contains("kontext") {
            ImageKind::Png
        } else {
            ImageKind::Jpeg
        })
}

fn size(body: &Value) -> (u32, u32) {
    let dim = |k: &str| {
        body.get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
    };
    match (dim("width"), dim("height")) {
        (Some(w), Some(h)) => (w, h),
        _ => ratio_to_size(text(body, "aspect_ratio"), 1024, (1024, 768)),
    }
}

async fn create(
    State(state): State<Arc<SimState>>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some(&(_, first, per_mp)) = ENDPOINTS.iter().find(|(e, _, _)| *e == endpoint) else {
        return SPEC.errors.not_found.render("");
    };
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let needs_prompt = !endpoint.contains("fill") && !endpoint.contains("expand");
    if needs_prompt && text(&call.body, "prompt").is_none_or(str::is_empty) {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    let id = crate::clock::uuid_v4();
    let mut job = SPEC.job(&state, &call, id.clone(), &endpoint);
    if call.directives.has("request_moderated") {
        job.outcome = Outcome::Invalid;
    }
    let (w, h) = size(&call.body);
    let kind = output_kind(&endpoint, &call.body);
    if job.outcome == Outcome::Success {
        match photo(w, h, kind) {
            Ok(bytes) => {
                let f = state.files.put_shared(
                    &state.base_url(P),
                    &id,
                    &format!("sample.{}", kind.extension()),
                    kind.content_type(),
                    bytes,
                    (w, h),
                );
                job.set_outputs(vec![f]);
            }
            Err(_) => return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid),
        }
    }
    let mp = f64::from(w) * f64::from(h) / 1_000_000.0;
    let cost = ((first + (mp - 1.0).max(0.0) * per_mp) * 100.0).round() / 100.0;
    let webhook = text(&call.body, "webhook_url")
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    job.webhook = webhook.clone();
    let polling_url = format!("{}/v1/get_result?id={id}", state.base_url(P));
    let answer = match &webhook {
        Some(url) => {
            json!({"id": id, "status": "Pending", "webhook_url": url, "cost": cost, "input_mp": 0, "output_mp": mp})
        }
        None => {
            json!({"id": id, "polling_url": polling_url, "cost": cost, "input_mp": 0, "output_mp": mp})
        }
    };
    if let Some(gateway) = SPEC.created(&state, job, Some(webhooks)).await {
        return gateway;
    }
    SPEC.ok(StatusCode::OK, &call.rid, &answer)
}

/// The result object at `now`.
pub fn render(job: &Job, now: Instant) -> Value {
    let seed = job
        .input
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(1_234_567);
    let mut out =
        json!({"id": job.id, "result": null, "progress": null, "details": null, "preview": null});
    let status = match job.phase(now) {
        Phase::Queued => {
            out["progress"] = json!(0.0);
            "Pending"
        }
        Phase::Running => {
            out["progress"] = json!((job.progress(now) * 100.0).round() / 100.0);
            "Pending"
        }
        Phase::Done(Outcome::Success) => {
            let end = job.duration.as_secs_f64();
            out["result"] = json!({"sample": first_url(job), "prompt": job.input.get("prompt"), "seed": seed,
                "start_time": 0.0, "end_time": end, "duration": end});
            "Ready"
        }
        Phase::Done(Outcome::EmptyOutput) => {
            out["result"] =
                json!({"sample": null, "prompt": job.input.get("prompt"), "seed": seed});
            "Ready"
        }
        Phase::Done(Outcome::ContentPolicy) => {
            out["details"] = json!({"moderation_reasons": ["Derivative Works Filter"]});
            "Content Moderated"
        }
        Phase::Done(Outcome::Invalid) => {
            out["details"] = json!({"moderation_reasons": ["Derivative Works Filter"]});
            "Request Moderated"
        }
        Phase::Done(Outcome::Fail) | Phase::Canceled => "Error",
    };
    out["status"] = json!(status);
    out
}

fn webhooks(_: &SimState, job: &Job, _: Option<Phase>, to: Phase, now: Instant) -> Vec<Delivery> {
    let Some(url) = job.webhook.clone().filter(|_| to.is_terminal()) else {
        return Vec::new();
    };
    let signing = match text(&job.input, "webhook_secret") {
        Some(secret) => Signing::HmacHex {
            header: "x-bfl-signature".to_owned(),
            secret: secret.to_owned(),
        },
        None => Signing::None,
    };
    vec![Delivery {
        provider: P,
        url,
        body: render(job, now).to_string().into_bytes(),
        signing,
    }]
}

async fn get_result(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let id = q.get("id").cloned().unwrap_or_default();
    match SPEC.read(&state, &headers, &id) {
        Ok(job) => SPEC.ok(StatusCode::OK, "", &render(&job, Instant::now())),
        Err(resp) if resp.status() == StatusCode::NOT_FOUND => crate::reply::json(
            StatusCode::NOT_FOUND,
            &[],
            &json!({"id": id, "status": "Task not found", "result": null, "progress": null, "details": null, "preview": null}),
        ),
        Err(resp) => resp,
    }
}

async fn credits(State(_state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        return resp;
    }
    SPEC.ok(StatusCode::OK, "", &json!({"credits": 10_000.0}))
}
