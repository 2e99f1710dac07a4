//! `executor usage`: counts and cost of the caller's executions of a window, grouped by
//! model, provider, day or error class, and the tenant's budgets (`GET /v1/usage`).

use super::ServerArgs;
use anyhow::Result;

/// How `executor usage` groups.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum GroupBy {
    /// By model id.
    Model,
    /// By provider.
    Provider,
    /// By UTC day of creation.
    Day,
    /// By error class (`none` for executions without an error).
    #[value(name = "error_class")]
    ErrorClass,
}

impl GroupBy {
    fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Day => "day",
            GroupBy::ErrorClass => "error_class",
        }
    }
}

/// Arguments of `executor usage`.
#[derive(clap::Args)]
pub struct UsageArgs {
    /// Start (inclusive): RFC 3339 or a UTC date (default: the start of this UTC month).
    #[arg(long)]
    from: Option<String>,
    /// End (exclusive): RFC 3339 or a UTC date (default: now).
    #[arg(long)]
    to: Option<String>,
    /// How to group.
    #[arg(long, value_enum, default_value = "model")]
    group_by: GroupBy,
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV (the groups).
    #[arg(long)]
    csv: bool,
}

/// Prints the usage of the window.
pub async fn run(a: UsageArgs) -> Result<i32> {
    let client = a.server.client()?;
    let mut query = vec![("group_by", a.group_by.as_str().to_string())];
    if let Some(f) = a.from {
        query.push(("from", f));
    }
    if let Some(t) = a.to {
        query.push(("to", t));
    }
    let text = client.usage(&query, a.csv).await?;
    if a.csv {
        print!("{text}");
    } else if a.json {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        print!("{}", crate::render::usage(&v));
    }
    Ok(0)
}
