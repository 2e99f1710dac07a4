//! Templates and expressions over the step context, with minijinja (strict undefined: a
//! reference to an undefined variable is an error, reported as `pipeline_configuration`).
//!
//! The context is a JSON object: `input`, `secrets`, `base_url`, `execution {id, attempt}`,
//! `job {id}`, `callback_url`, `steps.<id> {status, headers, body}`, `vars.<id>`.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};
use std::sync::OnceLock;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        e.set_undefined_behavior(UndefinedBehavior::Strict);
        // `input | merge({'model': model.name})`: a map with the second map's keys added (its
        // null values dropped) — the input as is, plus what the provider also needs.
        e.add_filter("merge", |a: minijinja::Value, b: minijinja::Value| {
            let mut base = serde_json::to_value(&a).unwrap_or(Value::Null);
            let over = serde_json::to_value(&b).unwrap_or(Value::Null);
            if let (Value::Object(m), Value::Object(o)) = (&mut base, over) {
                for (k, v) in o {
                    if !v.is_null() {
                        m.insert(k, v);
                    }
                }
            }
            minijinja::Value::from_serialize(&base)
        });
        // `jwt_hs256(secrets.ACCESS_KEY, secrets.SECRET_KEY)`: a JSON Web Token signed with
        // HMAC-SHA256 (`{"iss": issuer, "exp": now + ttl, "nbf": now - 5}`), as Kling's API
        // takes for its Bearer auth; `ttl` defaults to 1800 s.
        e.add_function(
            "jwt_hs256",
            |issuer: String,
             secret: String,
             ttl: Option<i64>|
             -> Result<String, minijinja::Error> {
                Ok(jwt_hs256(&issuer, &secret, ttl.unwrap_or(1800), now_s()))
            },
        );
        // `derived_secret(secrets.KEY, 'callback')`: a secret derived from a credential (hex
        // HMAC-SHA256 of the label, 32 characters), for callback credentials that need no
        // configuration of their own (`interpret.callback.verify: {scheme: basic}`).
        e.add_function("derived_secret", |key: String, label: String| {
            derived_secret(&key, &label)
        });
        // `callback_url | basic_auth('executor', password)`: the URL with HTTP Basic
        // credentials in it (`https://executor:password@host/...`), percent-encoded; a
        // provider that calls back sends them as `Authorization: Basic` (Deepgram).
        e.add_filter(
            "basic_auth",
            |u: String, user: String, password: String| -> Result<String, minijinja::Error> {
                let bad =
                    |m: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, m);
                let mut url =
                    url::Url::parse(&u).map_err(|e| bad(format!("basic_auth: {u:?}: {e}")))?;
                url.set_username(&user)
                    .and_then(|()| url.set_password(Some(&password)))
                    .map_err(|()| bad(format!("basic_auth: {u:?} cannot carry credentials")))?;
                Ok(url.to_string())
            },
        );
        // `input | omit('voice_id')`: the map without the named keys (fields that go in the
        // URL or a header rather than the body).
        e.add_filter(
            "omit",
            |a: minijinja::Value, keys: minijinja::value::Rest<String>| {
                let mut base = serde_json::to_value(&a).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut base {
                    for k in keys.iter() {
                        m.remove(k);
                    }
                }
                minijinja::Value::from_serialize(&base)
            },
        );
        e
    })
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An HS256 JSON Web Token for `issuer`, valid from `now - 5` to `now + ttl`.
pub fn jwt_hs256(issuer: &str, secret: &str, ttl: i64, now: i64) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64(
        serde_json::json!({"iss": issuer, "exp": now + ttl, "nbf": now - 5})
            .to_string()
            .as_bytes(),
    );
    let signing_input = format!("{header}.{claims}");
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return signing_input;
    };
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

/// A secret derived from `key` for `label`: the first 32 hex digits of
/// HMAC-SHA256(key, label).
pub fn derived_secret(key: &str, label: &str) -> String {
    use hmac::Mac as _;
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(label.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// A template or expression error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Runs a minijinja call, turning a panic inside the engine into an error: the engine's
/// lexer has panicked on malformed input (found by fuzzing), and a template must never take a
/// worker down.
fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, TemplateError>,
) -> Result<T, TemplateError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(TemplateError(format!(
            "{what:?}: the template engine could not read it"
        )))
    })
}

/// Compiles an expression. Delimiters inside one are refused before minijinja sees them:
/// its expression lexer panics on a stray `}}` (minijinja 2.24), and they are never valid.
fn compile<'e>(expr: &'e str) -> Result<minijinja::Expression<'e, 'e>, TemplateError> {
    if ["{{", "}}", "{%", "%}", "{#", "#}"]
        .iter()
        .any(|d| expr.contains(d))
    {
        return Err(TemplateError(format!(
            "expression {expr:?}: template delimiters are not allowed inside an expression"
        )));
    }
    guarded(expr, || {
        env()
            .compile_expression(expr)
            .map_err(|e| TemplateError(format!("expression {expr:?}: {e}")))
    })
}

/// Renders a string template.
pub fn render_str(template: &str, ctx: &Value) -> Result<String, TemplateError> {
    guarded(template, || {
        env()
            .render_str(template, ctx)
            .map_err(|e| TemplateError(format!("template {template:?}: {e}")))
    })
}

/// Evaluates an expression to JSON.
pub fn eval(expr: &str, ctx: &Value) -> Result<Value, TemplateError> {
    let compiled = compile(expr)?;
    let v = guarded(expr, || {
        compiled
            .eval(ctx)
            .map_err(|e| TemplateError(format!("expression {expr:?}: {e}")))
    })?;
    if v.is_undefined() || v.is_none() {
        return Ok(Value::Null);
    }
    serde_json::to_value(&v).map_err(|e| TemplateError(format!("expression {expr:?}: {e}")))
}

/// Evaluates a condition (truthiness per minijinja).
pub fn truthy(expr: &str, ctx: &Value) -> Result<bool, TemplateError> {
    let compiled = compile(expr)?;
    guarded(expr, || {
        compiled
            .eval(ctx)
            .map(|v| v.is_true())
            .map_err(|e| TemplateError(format!("expression {expr:?}: {e}")))
    })
}

/// If `s` is exactly one `{{ expr }}`, the expression.
fn sole_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

/// Renders a JSON value whose strings are templates. A string that is exactly one
/// `{{ expr }}` takes the expression's JSON type; object keys rendering to null are dropped.
pub fn render_value(template: &Value, ctx: &Value) -> Result<Value, TemplateError> {
    Ok(match template {
        Value::String(s) => match sole_expression(s) {
            Some(expr) => eval(expr, ctx)?,
            None if s.contains("{{") || s.contains("{%") => Value::String(render_str(s, ctx)?),
            None => Value::String(s.clone()),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_value(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let r = render_value(v, ctx)?;
                if !r.is_null() {
                    out.insert(k.clone(), r);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Checks the syntax of a template or expression without a context (load-time check).
pub fn check_syntax(s: &str, is_expression: bool) -> Result<(), TemplateError> {
    if is_expression {
        return compile(s).map(|_| ());
    }
    if let Some(expr) = sole_expression(s) {
        return compile(expr).map(|_| ());
    }
    guarded(s, || {
        env()
            .template_from_str(s)
            .map(|_| ())
            .map_err(|e| TemplateError(e.to_string()))
    })
}

/// Top-level variables a template or expression refers to (for load-time checks).
pub fn referenced_roots(s: &str, is_expression: bool) -> Vec<String> {
    let source = match (is_expression, sole_expression(s)) {
        (true, _) => format!("{{{{ {s} }}}}"),
        (false, Some(e)) => format!("{{{{ {e} }}}}"),
        (false, None) => s.to_string(),
    };
    if is_expression && compile(s).is_err() {
        return Vec::new();
    }
    guarded(&source, || {
        Ok(match env().template_from_str(&source) {
            Ok(t) => {
                let mut v: Vec<String> = t
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|name| env().globals().all(|(g, _)| g != name.as_str()))
                    .collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        })
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn sole_expressions_keep_their_type_and_nulls_drop() {
        let ctx = json!({"input": {"n": 2, "prompt": "cat"}});
        let t = json!({"n": "{{ input.n }}", "p": "a {{ input.prompt }}", "size": "{{ input.size | default(none) }}"});
        assert_eq!(
            render_value(&t, &ctx).unwrap(),
            json!({"n": 2, "p": "a cat"})
        );
    }

    #[test]
    fn basic_auth_puts_credentials_in_the_url_and_derived_secret_is_an_hmac() {
        let ctx = json!({"callback_url": "https://exec.example/v1/webhooks/deepgram/ex_1", "secrets": {"K": "key"}});
        let url = render_str(
            "{{ callback_url | basic_auth('executor', derived_secret(secrets.K, 'callback')) }}",
            &ctx,
        )
        .unwrap();
        // HMAC-SHA256("key", "callback"), first 16 bytes, as Python's hmac computes it.
        assert_eq!(
            derived_secret("key", "callback"),
            "789674f51a80eca19aa1206c9d730564"
        );
        assert_eq!(
            url,
            "https://executor:789674f51a80eca19aa1206c9d730564@exec.example/v1/webhooks/deepgram/ex_1"
        );
        // A user or password with reserved characters is percent-encoded.
        let odd = render_str("{{ callback_url | basic_auth('a b', 'p@ss:/') }}", &ctx).unwrap();
        assert!(
            odd.starts_with("https://a%20b:p%40ss%3A%2F@exec.example/"),
            "{odd}"
        );
        assert!(render_str("{{ 'not a url' | basic_auth('u', 'p') }}", &ctx).is_err());
    }

    #[test]
    fn undefined_is_an_error() {
        let ctx = json!({"input": {}});
        assert!(render_value(&json!("{{ input.missing.deep }}"), &ctx).is_err());
        assert!(render_str("{{ nope }}", &ctx).is_err());
    }

    #[test]
    fn conditions_and_roots() {
        let ctx = json!({"steps": {"s": {"body": {"status": "COMPLETED"}}}});
        assert!(truthy("steps.s.body.status == 'COMPLETED'", &ctx).unwrap());
        assert_eq!(
            referenced_roots("{{ base_url }}/x/{{ job.id }}", false),
            vec!["base_url", "job"]
        );
        assert!(check_syntax("{{ unclosed", false).is_err());
    }
}

#[cfg(test)]
mod jwt_tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    #[test]
    fn jwt_matches_a_known_hs256_signature() {
        // Verified independently: HMAC-SHA256 over `header.claims` with key "secret".
        let t = super::jwt_hs256("ak", "secret", 1800, 1_700_000_000);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&claims).unwrap_or_default();
        assert_eq!(v["iss"], "ak");
        assert_eq!(v["exp"], 1_700_001_800);
        assert_eq!(v["nbf"], 1_699_999_995);
        // The whole token, as Python's hmac/hashlib computes it over the same header and claims.
        assert_eq!(
            t,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhayIsImV4cCI6MTcwMDAwMTgwMCwibmJmIjoxNjk5OTk5OTk1fQ.NPPQ6Wixv88NO9wHzxP_0YLgZGx6z5KWv3Zdi9MSpds"
        );
        assert!(
            super::referenced_roots("{{ jwt_hs256(secrets.A, secrets.B) }}", false)
                == vec!["secrets".to_string()]
        );
        let rendered = super::render_str(
            "Bearer {{ jwt_hs256('ak', 'secret') }}",
            &serde_json::json!({}),
        )
        .unwrap_or_default();
        assert!(rendered.starts_with("Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    }
}
