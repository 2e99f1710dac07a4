//! Blob keys. The layout is the same in S3 and under the embedded data directory.

/// `executions/{id}/request`
pub fn request(id: &str) -> String {
    format!("executions/{id}/request")
}

/// `executions/{id}/callbacks/{callback_id}` (callback id made path-safe).
pub fn callback(id: &str, callback_id: &str) -> String {
    format!("executions/{id}/callbacks/{}", path_safe(callback_id))
}

/// `executions/{id}/result/{content_hash}`: content-addressed, so racing writers of the same
/// result agree and a loser's blob never masquerades as the winner's.
pub fn result(id: &str, content_hash: &str) -> String {
    format!("executions/{id}/result/{content_hash}")
}

/// `executions/{id}/transitions/{version}` (zero-padded so keys sort by version).
pub fn transition(id: &str, version: u64) -> String {
    format!("executions/{id}/transitions/{version:010}")
}

/// `executions/{id}/late-jobs/{attempt_id}`: a provider job whose id arrived after its
/// submit was resolved without it (write-once, one per attempt).
pub fn late_job(id: &str, attempt_id: &str) -> String {
    format!("executions/{id}/late-jobs/{}", path_safe(attempt_id))
}

/// Prefix of the late-job notes of an execution.
pub fn late_jobs_prefix(id: &str) -> String {
    format!("executions/{id}/late-jobs/")
}

/// Prefix of all transition records of an execution.
pub fn transition_batch(id: &str, first: u64, last: u64) -> String {
    format!("executions/{id}/transitions/{first:010}-{last:010}")
}

/// The prefix of an execution's transition records.
pub fn transitions_prefix(id: &str) -> String {
    format!("executions/{id}/transitions/")
}

/// Keeps `[A-Za-z0-9._-]`, replaces the rest with `_`.
pub fn path_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// True if `s` looks like an execution id we issued (`ex_` + 26 ULID chars).
pub fn is_execution_id(s: &str) -> bool {
    s.len() == 29 && s.starts_with("ex_") && s[3..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// A new execution id: a ULID from one monotonic generator per process, so ids made in the
/// same millisecond still sort in the order they were made (a plain ULID's random part does
/// not, and the listing orders by `(created_at_ms, id)`, newest first). Across processes
/// (Lambda instances) ids of one millisecond sort in no particular order.
pub fn new_execution_id() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let id = GENERATOR
        .lock()
        .ok()
        .and_then(|mut g| g.generate().ok())
        // The random part overflowed within one millisecond (2^80 ids): a fresh ULID (not
        // `Ulid::default()`, which is the nil id).
        .unwrap_or_else(|| ulid::Ulid::from_datetime(std::time::SystemTime::now()));
    format!("ex_{}", id.to_string().to_lowercase())
}

#[cfg(test)]
mod monotonic_tests {
    #[test]
    fn ids_made_in_one_millisecond_sort_in_order() {
        let ids: Vec<String> = (0..10_000).map(|_| super::new_execution_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "ids sort in the order they were made");
        assert!(ids.iter().all(|i| super::is_execution_id(i)));
    }
}
