//! A small client of the execution API, used by `executor run`, the demo and the tests.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::Duration;

/// Options of a create call.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Customer webhook.
    pub webhook_url: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Max duration.
    pub max_duration_seconds: Option<u64>,
    /// `Prefer: wait=N`.
    pub wait_seconds: Option<u64>,
    /// Models to fall back on, in order.
    pub fallbacks: Vec<String>,
    /// Retries of a failed job on the same model (`retries`).
    pub retries: Option<u32>,
}

/// An API client bound to a base URL and a key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// A client.
    pub fn new(base: &str, key: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        })
    }

    /// `POST /v1/executions`: returns the HTTP status and the body.
    pub async fn create(
        &self,
        model: &str,
        input: &Value,
        opts: &CreateOptions,
    ) -> Result<(u16, Value)> {
        let mut body = json!({"model": model, "input": input});
        if let Some(u) = &opts.webhook_url {
            body["webhook_url"] = json!(u);
        }
        if let Some(s) = opts.max_duration_seconds {
            body["max_duration_seconds"] = json!(s);
        }
        if let Some(n) = opts.retries {
            body["retries"] = json!(n);
        }
        if !opts.fallbacks.is_empty() {
            body["fallbacks"] = json!(opts.fallbacks);
        }
        let mut req = self
            .http
            .post(format!("{}/v1/executions", self.base))
            .bearer_auth(&self.key)
            .json(&body);
        if let Some(k) = &opts.idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(w) = opts.wait_seconds {
            req = req.header("Prefer", format!("wait={w}"));
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("POST {}/v1/executions", self.base))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// `GET /v1/executions/{id}`.
    pub async fn get(&self, id: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/executions/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET /v1/executions/{id}: {status} {body}");
        }
        Ok(body)
    }

    /// `POST /v1/executions/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/v1/executions/{id}/cancel", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /v1/executions/{id}/events`.
    pub async fn events(&self, id: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/executions/{id}/events", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET /v1/executions/{id}/events: {status} {body}");
        }
        Ok(body)
    }

    /// `GET /v1/failures`: the caller's failure piles.
    pub async fn failures(
        &self,
        since: &str,
        model: Option<&str>,
        provider: Option<&str>,
    ) -> Result<Value> {
        let mut query = vec![("since", since.to_string())];
        if let Some(m) = model {
            query.push(("model", m.to_string()));
        }
        if let Some(p) = provider {
            query.push(("provider", p.to_string()));
        }
        let resp = self
            .http
            .get(format!("{}/v1/failures", self.base))
            .query(&query)
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "GET /v1/failures: {}",
                body["detail"].as_str().unwrap_or(&status.to_string())
            );
        }
        Ok(body)
    }

    /// `GET /v1/usage` (`query`: `from`, `to`, `group_by`): the report as JSON, or as CSV text
    /// when `csv`.
    pub async fn usage(&self, query: &[(&str, String)], csv: bool) -> Result<String> {
        let resp = self
            .http
            .get(format!("{}/v1/usage", self.base))
            .query(query)
            .bearer_auth(&self.key)
            .header(
                reqwest::header::ACCEPT,
                if csv { "text/csv" } else { "application/json" },
            )
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            bail!(
                "GET /v1/usage: {}",
                body["detail"].as_str().unwrap_or(&status.to_string())
            );
        }
        Ok(text)
    }

    /// `POST /v1/executions/{id}/rerun` (optionally on another model): (HTTP status, body).
    pub async fn rerun(
        &self,
        id: &str,
        model: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .post(format!("{}/v1/executions/{id}/rerun", self.base))
            .bearer_auth(&self.key);
        if let Some(m) = model {
            req = req.json(&json!({"model": m}));
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("POST {}/v1/executions/{id}/rerun", self.base))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /v1/batches` with a whole body: (HTTP status, body).
    pub async fn create_batch(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .post(format!("{}/v1/batches", self.base))
            .bearer_auth(&self.key)
            .json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("POST {}/v1/batches", self.base))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `GET /v1/batches/{id}`.
    pub async fn batch(&self, id: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/batches/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET /v1/batches/{id}: {status} {body}");
        }
        Ok(body)
    }

    /// `GET /v1/failures/{pile_id}`: one pile with every execution in it.
    pub async fn failure_pile(
        &self,
        pile: &str,
        since: &str,
        model: Option<&str>,
        provider: Option<&str>,
    ) -> Result<Value> {
        let mut query = vec![("since", since.to_string())];
        if let Some(m) = model {
            query.push(("model", m.to_string()));
        }
        if let Some(p) = provider {
            query.push(("provider", p.to_string()));
        }
        let resp = self
            .http
            .get(format!("{}/v1/failures/{pile}", self.base))
            .query(&query)
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "GET /v1/failures/{pile}: {}",
                body["detail"].as_str().unwrap_or(&status.to_string())
            );
        }
        Ok(body)
    }

    /// `POST /v1/executions/{id}/redrive`: (HTTP status, body).
    pub async fn redrive(&self, id: &str) -> Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}/v1/executions/{id}/redrive", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// Ids of the caller's executions in `status` (a public status, or a comma-separated
    /// list; every page).
    pub async fn ids_with_status(&self, status: &str) -> Result<Vec<String>> {
        self.ids_where(&[("status", status)]).await
    }

    /// Ids of the caller's executions matching list filters such as `("delivery",
    /// "degraded")` (every page).
    pub async fn ids_where(&self, filters: &[(&str, &str)]) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query: Vec<(&str, String)> =
                filters.iter().map(|(k, v)| (*k, v.to_string())).collect();
            query.push(("limit", "100".to_string()));
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let resp = self
                .http
                .get(format!("{}/v1/executions", self.base))
                .query(&query)
                .bearer_auth(&self.key)
                .send()
                .await?;
            let ok = resp.status().is_success();
            let page: Value = resp.json().await.unwrap_or(Value::Null);
            if !ok {
                bail!("GET /v1/executions: {}", page["detail"]);
            }
            for e in page["data"].as_array().into_iter().flatten() {
                if let Some(id) = e["id"].as_str() {
                    ids.push(id.to_string());
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(ids),
            }
        }
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/models", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        Ok(resp.json().await?)
    }

    /// Follows the execution's timeline as Server-Sent Events (`GET .../events`,
    /// `Accept: text/event-stream`), calling `on_transition` for each committed transition,
    /// reconnecting with `Last-Event-ID` when a stream closes early (behind API Gateway every
    /// stream is a bounded long poll), until the `end` event; returns the final execution.
    pub async fn follow_events(
        &self,
        id: &str,
        timeout: Duration,
        mut on_transition: impl FnMut(&Value),
    ) -> Result<Value> {
        let until = tokio::time::Instant::now() + timeout;
        let mut last: Option<String> = None;
        loop {
            if tokio::time::Instant::now() > until {
                bail!("execution {id} not final after {timeout:?}");
            }
            let mut req = self
                .http
                .get(format!("{}/v1/executions/{id}/events", self.base))
                .bearer_auth(&self.key)
                .header("Accept", "text/event-stream");
            if let Some(l) = &last {
                req = req.header("Last-Event-ID", l);
            }
            let mut resp = req.send().await?;
            if !resp.status().is_success() {
                let status = resp.status();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                bail!("events of {id}: {status} {body}");
            }
            let mut buf = String::new();
            while let Some(chunk) = resp.chunk().await? {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let (mut event, mut eid, mut data) = (String::new(), None, String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            eid = Some(v.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    match event.as_str() {
                        "transition" => {
                            on_transition(&value);
                            last = eid.or(last);
                        }
                        "end" => return Ok(value),
                        "error" => bail!("events of {id}: {data}"),
                        _ => {}
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until the execution is terminal and its outcome's delivery settled
    /// (`delivery.state` other than `pending`: cost and outcome event final), calling
    /// `on_change` whenever status, progress, wait or delivery changes. Fails after `timeout`.
    pub async fn wait_final(
        &self,
        id: &str,
        timeout: Duration,
        mut on_change: impl FnMut(&Value),
    ) -> Result<Value> {
        let until = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let v = self.get(id).await?;
            let key = format!(
                "{}|{}|{}|{}",
                v["status"], v["progress"], v["waiting"]["reason"], v["delivery"]["state"]
            );
            if key != last {
                on_change(&v);
                last = key;
            }
            if is_settled(&v) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > until {
                bail!(
                    "execution {id} not final after {timeout:?} (status {}, delivery {})",
                    v["status"].as_str().unwrap_or("?"),
                    v["delivery"]["state"].as_str().unwrap_or("none yet")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// True when an execution view is terminal and its delivery settled: `delivery.state` is
/// `delivered`, `degraded` or `none` (the lifecycle finalized it; nothing changes any more but
/// a redrive of a degraded delivery).
pub fn is_settled(v: &Value) -> bool {
    matches!(
        v["delivery"]["state"].as_str(),
        Some("delivered" | "degraded" | "none")
    )
}
