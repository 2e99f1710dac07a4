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

    /// Ids of the caller's executions in `status` (every page).
    pub async fn ids_with_status(&self, status: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("status", status.to_string()), ("limit", "100".to_string())];
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

    /// Polls until the execution is final (`finalized` or `finalized_degraded`), calling
    /// `on_change` whenever status or progress changes. Fails after `timeout`.
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
                "{}|{}|{}",
                v["status"], v["progress"], v["waiting"]["reason"]
            );
            if key != last {
                on_change(&v);
                last = key;
            }
            let status = v["status"].as_str().unwrap_or("");
            if status == "finalized" || status == "finalized_degraded" {
                return Ok(v);
            }
            if tokio::time::Instant::now() > until {
                bail!("execution {id} not final after {timeout:?} (status {status})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
