//! Blobs as files under the data directory, mirroring the S3 key layout. Write-once is
//! atomic: the bytes go to a temporary file that is then hard-linked to its key, which fails
//! if the key exists; a crash never leaves a half-written blob under a key.

use async_trait::async_trait;
use executor_lifecycle::{BlobStore, PutOutcome, StoreError};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// File-backed blob store.
pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    /// A store rooted at `root`.
    pub fn new(root: PathBuf) -> FileBlobStore {
        FileBlobStore { root }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(key);
        if key.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Corrupt(format!("invalid blob key {key:?}")));
        }
        Ok(self.root.join(rel))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("blob file: {e}"))
}

fn put_once_blocking(path: &Path, bytes: &[u8]) -> Result<PutOutcome, StoreError> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Corrupt("blob without parent".into()))?;
    let tmp = dir.join(format!(".tmp-{}", hex::encode(rand::random::<[u8; 8]>())));
    {
        // Create the directory only when the file cannot be created without it (saves the
        // stat calls of create_dir_all on every write). An existing key is found by the link.
        let mut f = match std::fs::File::create(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                std::fs::File::create(&tmp).map_err(io)?
            }
            other => other.map_err(io)?,
        };
        // No fsync: like SQLite with synchronous=NORMAL, a blob survives a process crash
        // (kill -9) but the last moments before a power loss may be lost.
        f.write_all(bytes).map_err(io)?;
    }
    let outcome = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(PutOutcome::Written),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
        Err(e) => Err(io(e)),
    };
    let _ = std::fs::remove_file(&tmp);
    outcome
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<String>, StoreError> {
    // List the directory holding the prefix, then filter by the full prefix.
    let dir_part = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let dir = root.join(dir_part);
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                let key = rel.to_string_lossy().replace('\\', "/");
                if key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, StoreError> {
        let path = self.path_of(key)?;
        // In place rather than on the blocking pool: a small local file write costs less than
        // the two thread handoffs (docs/benchmarks.md).
        put_once_blocking(&path, &bytes)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path_of(key)?;
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn get_prefix(&self, key: &str, n: usize) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::Read;
        let path = self.path_of(key)?;
        match std::fs::File::open(&path) {
            Ok(f) => {
                let mut buf = Vec::with_capacity(n);
                f.take(n as u64).read_to_end(&mut buf).map_err(io)?;
                Ok(Some(buf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || list_blocking(&root, &prefix))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}
