//! A small `multipart/form-data` reader (RFC 7578) for the Stability simulator: the boundary
//! comes from the `content-type`, each part's `name` (and `filename`) from its
//! `content-disposition`, the bytes up to the next delimiter. Why not axum's `Multipart`
//! (`multer`): the simulator needs the whole body anyway (directives are scanned in every
//! field before anything is answered, and a malformed form must get Stability's own error
//! envelope), so a streaming extractor and its extra dependencies buy nothing here.

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `name` of `content-disposition: form-data`.
    pub name: String,
    /// The `filename`, for file parts.
    pub filename: Option<String>,
    /// The part's own `content-type`, if given.
    pub content_type: Option<String>,
    /// The raw bytes.
    pub data: Vec<u8>,
}

impl Part {
    /// The bytes as text (`None` for file parts and non-UTF-8 bytes).
    pub fn text(&self) -> Option<&str> {
        if self.filename.is_some() {
            return None;
        }
        std::str::from_utf8(&self.data).ok()
    }
}

/// Why a body is not a readable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartError {
    /// The `content-type` is not `multipart/form-data`.
    NotMultipart,
    /// No `boundary` parameter.
    NoBoundary,
    /// The body does not follow the boundary framing.
    Malformed,
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MultipartError::NotMultipart => "content-type must be multipart/form-data",
            MultipartError::NoBoundary => "multipart/form-data without a boundary",
            MultipartError::Malformed => "malformed multipart/form-data body",
        })
    }
}

impl std::error::Error for MultipartError {}

/// `key=value` parameters after the first `;` of a header value (quotes removed, keys
/// lowercased).
fn params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ';' if !quoted => fields.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    fields.push(current);
    for field in fields.iter().skip(1) {
        if let Some((k, v)) = field.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            out.push((k.trim().to_ascii_lowercase(), v.to_owned()));
        }
    }
    out
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    params(content_type)
        .into_iter()
        .find(|(k, v)| k == "boundary" && !v.is_empty())
        .map(|(_, v)| v)
        .ok_or(MultipartError::NoBoundary)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Skips one line break (`\r\n` or `\n`) at `at`; `None` if there is none.
fn after_newline(body: &[u8], at: usize) -> Option<usize> {
    if body[at..].starts_with(b"\r\n") {
        Some(at + 2)
    } else if body[at..].starts_with(b"\n") {
        Some(at + 1)
    } else {
        None
    }
}

/// Every part of `body`, framed by the boundary of `content_type`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, MultipartError> {
    let delimiter = format!("--{}", boundary(content_type)?).into_bytes();
    let mut at = find(body, &delimiter, 0).ok_or(MultipartError::Malformed)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (spaces, tabs) may follow a delimiter.
        while matches!(body.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        at = after_newline(body, at).ok_or(MultipartError::Malformed)?;
        let (headers_end, data_start) = match find(body, b"\r\n\r\n", at) {
            Some(p) => (p, p + 4),
            None => {
                let p = find(body, b"\n\n", at).ok_or(MultipartError::Malformed)?;
                (p, p + 2)
            }
        };
        let head =
            std::str::from_utf8(&body[at..headers_end]).map_err(|_| MultipartError::Malformed)?;
        let mut name = None;
        let mut filename = None;
        let mut part_type = None;
        for line in head.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            if key == "content-disposition" {
                for (k, v) in params(value) {
                    match k.as_str() {
                        "name" => name = Some(v),
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            } else if key == "content-type" {
                part_type = Some(value.trim().to_owned());
            }
        }
        let mut closing = delimiter.clone();
        closing.splice(0..0, *b"\r\n");
        let (data_end, next) = match find(body, &closing, data_start) {
            Some(p) => (p, p + closing.len()),
            None => {
                closing.remove(0);
                let p = find(body, &closing, data_start).ok_or(MultipartError::Malformed)?;
                (p, p + closing.len())
            }
        };
        parts.push(Part {
            name: name.ok_or(MultipartError::Malformed)?,
            filename,
            content_type: part_type,
            data: body[data_start..data_end].to_vec(),
        });
        at = next;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_text_and_file_parts() {
        let ct = "multipart/form-data; boundary=\"XyZ\"";
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat; sim:fail\r\n--XyZ\r\ncontent-disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
        let parts = parse(ct, body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "prompt");
        assert_eq!(parts[0].text(), Some("a cat; sim:fail"));
        assert_eq!(parts[1].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[1].data, b"\x89PNG");
        assert_eq!(parts[1].text(), None);
    }

    #[test]
    fn refuses_other_types_and_broken_bodies() {
        assert_eq!(
            parse("application/json", b"{}"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            parse("multipart/form-data", b""),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            parse("multipart/form-data; boundary=b", b"--b\r\nno end"),
            Err(MultipartError::Malformed)
        );
        assert_eq!(
            parse("multipart/form-data; boundary=b", b"--b--\r\n"),
            Ok(Vec::new())
        );
    }
}
