//! Kling AI simulator (`/kling`), from `docs/providers/kling.md`: `POST /v1/videos/text2video`
//! and `POST /v1/videos/image2video` answer HTTP 200 `{code: 0, message: "SUCCEED",
//! request_id, data: {task_id (18-digit string), task_status: "submitted", task_info,
//! created_at, updated_at (ms)}}`; `GET /v1/videos/{kind}/{task_id}` reports
//! `data.task_status` submitted → processing → **succeed** (`task_result.videos[{id, url,
//! duration}]`, `final_unit_deduction`) or **failed** (`task_status_msg`). With
//! `callback_url` the `data` object is POSTed, unsigned, on every status change.
//!
//! Auth is a **JWT HS256** `Authorization: Bearer <token>` whose `iss` is the access key and
//! whose signature is keyed with the secret key ([`crate::SimConfig::kling_access_key`] /
//! `kling_secret_key`), checked with `exp` and `nbf`: 401 code 1001 (empty), 1002 (invalid:
//! bad signature, wrong `iss`, not a JWT), 1003 (not yet valid), 1004 (expired). Errors are
//! `{code, message, request_id}` with a matching HTTP status: 429 1302 (rate), 429 **1102**
//! (resource pack depleted: `sim:insufficient_quota`, a 429 that must not be retried), 400
//! 1201 (`sim:invalid`, bad bodies, a `data:` prefix on `image`), 400 1301 (content security:
//! `sim:content_policy`), 404 1203, 500 5000. Unit prices (`final_unit_deduction`) are
//! UNCONFIRMED; no cancel endpoint exists.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::clock::unix_seconds;
use crate::engine::{Answer, AuthScheme, Errors, Spec, text};
use crate::files;
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::reply::credential;
use crate::state::SimState;
use crate::webhook::{Delivery, Signing};

const P: Provider = Provider::Kling;
const MODELS: [&str; 9] = [
    "kling-v1",
    "kling-v1-5",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
];

/// The Kling spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Custom,
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"code":1002,"message":"Authorization is invalid","request_id":"{request_id}"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"code":1302,"message":"The API request is too fast, please slow down the request frequency","request_id":"{request_id}"}"#,
            headers: &[],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"code":5000,"message":"Server internal error","request_id":"{request_id}"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 429,
            body: r#"{"code":1102,"message":"Account balance not enough","request_id":"{request_id}"}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"code":1201,"message":"Invalid request parameters (sim:invalid)","request_id":"{request_id}"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"code":1301,"message":"Failure to pass the risk control system","request_id":"{request_id}"}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"code":1203,"message":"The requested resource does not exist","request_id":"{request_id}"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 500,
            body: r#"{"code":5000,"message":"Server internal error","request_id":"{request_id}"}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[(
        "concurrency",
        Answer {
            status: 429,
            body: r#"{"code":1303,"message":"parallel task over resource pack limit","request_id":"{request_id}"}"#,
            headers: &[],
        },
    )],
};

/// Routes under `/kling`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/videos/{kind}", post(create))
        .route("/v1/videos/{kind}/{task_id}", get(query))
        .route("/files/{id}/{name}", get(files::serve))
}

fn auth_error(code: u32, message: &str) -> Response {
    let rid = crate::clock::uuid_v4();
    crate::reply::json(
        StatusCode::UNAUTHORIZED,
        &[],
        &json!({"code": code, "message": message, "request_id": rid}),
    )
}

/// Verifies the JWT: signature (HS256, secret key), `iss` (access key), `nbf`, `exp`.
pub fn verify(state: &SimState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = credential(headers, &["Bearer"]) else {
        return Err(auth_error(1001, "Authorization is empty"));
    };
    let invalid = || auth_error(1002, "Authorization is invalid");
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(invalid());
    };
    let decode = |x: &str| URL_SAFE_NO_PAD.decode(x.trim_end_matches('=')).ok();
    let header: Option<Value> = decode(h).and_then(|b| serde_json::from_slice(&b).ok());
    let payload: Option<Value> = decode(p).and_then(|b| serde_json::from_slice(&b).ok());
    let (Some(header), Some(payload), Some(sig)) = (header, payload, decode(s)) else {
        return Err(invalid());
    };
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(invalid());
    }
    let Ok(mut mac) =
        Hmac::<sha2::Sha256>::new_from_slice(state.config.kling_secret_key.as_bytes())
    else {
        return Err(invalid());
    };
    mac.update(format!("{h}.{p}").as_bytes());
    if mac.verify_slice(&sig).is_err()
        || payload.get("iss").and_then(Value::as_str)
            != Some(state.config.kling_access_key.as_str())
    {
        return Err(invalid());
    }
    let now = unix_seconds(SystemTime::now());
    if payload
        .get("nbf")
        .and_then(Value::as_u64)
        .is_some_and(|nbf| nbf > now)
    {
        return Err(auth_error(1003, "Authorization is not yet valid"));
    }
    if payload
        .get("exp")
        .and_then(Value::as_u64)
        .is_none_or(|exp| exp <= now)
    {
        return Err(auth_error(1004, "Authorization has expired"));
    }
    Ok(())
}

/// A token as Kling's docs make one (for tests and demos).
pub fn token(access_key: &str, secret_key: &str, exp: u64, nbf: u64) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(json!({"iss": access_key, "exp": exp, "nbf": nbf}).to_string());
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret_key.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{h}.{p}").as_bytes());
    format!(
        "{h}.{p}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn invalid_param(kind: &str, body: &Value) -> Option<&'static str> {
    let model = text(body, "model_name").unwrap_or("kling-v1");
    if !MODELS.contains(&model) {
        return Some("model_name is invalid");
    }
    if kind == "text2video" && text(body, "prompt").is_none_or(str::is_empty) {
        return Some("prompt is required");
    }
    if text(body, "prompt").is_some_and(|p| p.chars().count() > 2500) {
        return Some("prompt must be at most 2500 characters");
    }
    if kind == "image2video" {
        match text(body, "image") {
            None => return Some("image is required"),
            Some(i) if i.starts_with("data:") => {
                return Some("image: base64 must not carry a data: prefix");
            }
            _ => {}
        }
    }
    match body.get("duration") {
        None => None,
        Some(Value::String(d)) if d.parse::<u32>().is_ok_and(|n| (3..=15).contains(&n)) => None,
        Some(_) => Some("duration must be a string between \"3\" and \"15\""),
    }
}

async fn create(
    State(state): State<Arc<SimState>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if kind != "text2video" && kind != "image2video" {
        return SPEC.errors.not_found.render(&crate::clock::uuid_v4());
    }
    if let Err(resp) = verify(&state, &headers) {
        state.stats.bump(P, crate::stats::Counter::CreateRejection);
        return resp;
    }
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Some(message) = invalid_param(&kind, &call.body) {
        state.stats.bump(P, crate::stats::Counter::CreateRejection);
        return crate::reply::json(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"code": 1201, "message": message, "request_id": call.rid}),
        );
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    if call.directives.content_policy {
        return SPEC.reject(&state, &SPEC.errors.content_policy, &call.rid);
    }
    let id = format!(
        "{}",
        rand::random_range(800_000_000_000_000_000u64..900_000_000_000_000_000)
    );
    let model = text(&call.body, "model_name")
        .unwrap_or("kling-v1")
        .to_owned();
    let mut job = SPEC.job(&state, &call, id.clone(), &model);
    job.variant = kind.clone();
    job.webhook = text(&call.body, "callback_url")
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if job.outcome == Outcome::Success {
        let seconds = text(&call.body, "duration")
            .and_then(|d| d.parse().ok())
            .unwrap_or(5);
        let size = match text(&call.body, "aspect_ratio") {
            Some("9:16") => (720, 1280),
            Some("1:1") => (960, 960),
            _ => (1280, 720),
        };
        match state
            .files
            .generate_video(&state.base_url(P), &id, "video", 1, size, seconds)
        {
            Ok(out) => job.set_outputs(out),
            Err(_) => return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid),
        }
    }
    let data = render(&job, Instant::now());
    let rid = call.rid.clone();
    if let Some(gateway) = SPEC.created(&state, job, Some(callbacks)).await {
        return gateway;
    }
    SPEC.ok(
        StatusCode::OK,
        &rid,
        &json!({"code": 0, "message": "SUCCEED", "request_id": rid, "data": data}),
    )
}

/// The task's `data` object at `now` (also the callback body).
pub fn render(job: &Job, now: Instant) -> Value {
    let created = ms(job.created_wall);
    let mut data = json!({"task_id": job.id, "task_info": {"external_task_id": job.input.get("external_task_id")},
        "created_at": created, "updated_at": created, "task_status_msg": ""});
    let status = match job.phase(now) {
        Phase::Queued => "submitted",
        Phase::Running => "processing",
        Phase::Done(o) if o.is_success() => {
            let seconds = text(&job.input, "duration").unwrap_or("5");
            let videos: Vec<Value> = if o == Outcome::Success {
                job.outputs.iter().map(|f| json!({"id": format!("{}-0", job.id), "url": f.url, "duration": seconds})).collect()
            } else {
                Vec::new()
            };
            let pro = text(&job.input, "mode") == Some("pro");
            let units = seconds.parse::<u32>().unwrap_or(5).div_ceil(5) * if pro { 2 } else { 1 };
            data["task_result"] = json!({"videos": videos});
            data["final_unit_deduction"] = json!(units.to_string());
            "succeed"
        }
        Phase::Done(_) | Phase::Canceled => {
            data["task_status_msg"] = json!("Task failed, please try again later");
            "failed"
        }
    };
    if let Some(after) = job
        .terminal_after(now)
        .or_else(|| (job.phase(now) == Phase::Running).then_some(job.queue_for))
    {
        data["updated_at"] = json!(created + after.as_millis());
    }
    data["task_status"] = json!(status);
    data
}

fn callbacks(
    _: &SimState,
    job: &Job,
    from: Option<Phase>,
    _to: Phase,
    now: Instant,
) -> Vec<Delivery> {
    let Some(url) = job.webhook.clone() else {
        return Vec::new();
    };
    if from.is_none() {
        return Vec::new();
    }
    vec![Delivery {
        provider: P,
        url,
        body: render(job, now).to_string().into_bytes(),
        signing: Signing::None,
    }]
}

async fn query(
    State(state): State<Arc<SimState>>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = verify(&state, &headers) {
        return resp;
    }
    let job = match SPEC.read(&state, &headers, &id) {
        Ok(j) if j.variant == kind => j,
        Ok(_) => return SPEC.errors.not_found.render(&crate::clock::uuid_v4()),
        Err(resp) => return resp,
    };
    let rid = crate::clock::uuid_v4();
    SPEC.ok(StatusCode::OK, &rid, &json!({"code": 0, "message": "SUCCEED", "request_id": rid, "data": render(&job, Instant::now())}))
}
