//! The server's adapters for the workspace ports: document bytes in a local directory and
//! domain verification through DNS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use security_policy::{Cipher, SEALED_MAGIC};
use tenancy::StoreError;
use tenancy::assets::{BlobStore, DomainVerifier};

/// Document bytes as files under one directory, sealed with the server's encryption key
/// (AES-256-GCM, bound to the document's id: `Cipher::seal`), written to a temporary name,
/// synced, then renamed, so a crash never leaves a partial document under its real name.
/// Files written before documents were encrypted (no `AXB1` header) are still read as they are.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    cipher: Arc<Cipher>,
}

impl FsBlobStore {
    /// A store rooted at `root` (created when missing), sealing with `cipher`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(root: &Path, cipher: Arc<Cipher>) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            cipher,
        })
    }

    /// Removes the bytes stored under `key` in the store rooted at `root` (sealed bytes need no
    /// key to be removed: the operator's `delete-org` uses this). A missing file is no error.
    ///
    /// # Errors
    /// An invalid key, or a failure to remove the file.
    pub fn remove_at(root: &Path, key: &str) -> Result<(), StoreError> {
        if !valid_key(key) {
            return Err(StoreError::msg(format!("invalid blob key `{key}`")));
        }
        match std::fs::remove_file(root.join(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::new(e)),
            _ => Ok(()),
        }
    }

    /// Keys are our own resource ids; anything else is refused rather than joined into a path.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if !valid_key(key) {
            return Err(StoreError::msg(format!("invalid blob key `{key}`")));
        }
        Ok(self.root.join(key))
    }

    /// Re-seals every document under `new` (opening each with this store's key, or reading it
    /// as it is when it predates encryption), each file replaced atomically, those set aside
    /// (`SET_ASIDE`) included, so that they can still be put back. Returns how many were
    /// re-sealed and the names of those that could not be (not opening under either key,
    /// unreadable, not a file), which are left as they are: they did not open before either.
    ///
    /// # Errors
    /// When the directory cannot be listed.
    pub fn reseal_all(&self, new: &Cipher) -> Result<(u64, Vec<String>), StoreError> {
        let mut done = (0, Vec::new());
        self.reseal_dir(&self.root, new, &mut done)?;
        let aside = self.root.join(SET_ASIDE);
        if aside.is_dir() {
            self.reseal_dir(&aside, new, &mut done)?;
        }
        Ok(done)
    }

    fn reseal_dir(
        &self,
        dir: &Path,
        new: &Cipher,
        (n, skipped): &mut (u64, Vec<String>),
    ) -> Result<(), StoreError> {
        for entry in std::fs::read_dir(dir).map_err(StoreError::new)? {
            let entry = entry.map_err(StoreError::new)?;
            let name = entry.file_name();
            let Some(key) = name.to_str().filter(|k| valid_key(k)) else {
                continue;
            };
            if dir == self.root && key == SET_ASIDE {
                continue;
            }
            let resealed = std::fs::read(entry.path())
                .map_err(StoreError::new)
                .and_then(|stored| {
                    if stored.starts_with(SEALED_MAGIC) && new.open(&stored, key.as_bytes()).is_ok()
                    {
                        return Ok(false);
                    }
                    let plain = self.unseal(key, stored)?;
                    write_atomically(&entry.path(), &seal(new, key, &plain)?)
                        .map_err(StoreError::new)?;
                    Ok(true)
                });
            match resealed {
                Ok(true) => *n += 1,
                Ok(false) => {}
                Err(_) => skipped.push(key.to_owned()),
            }
        }
        Ok(())
    }

    fn unseal(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if !stored.starts_with(SEALED_MAGIC) {
            return Ok(stored);
        }
        self.cipher.open(&stored, key.as_bytes()).map_err(|_| {
            StoreError::msg(format!(
                "document `{key}` does not open under the encryption key (tampered, or sealed under another key)"
            ))
        })
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn seal(cipher: &Cipher, key: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
    cipher
        .seal(plain, key.as_bytes())
        .map_err(|e| StoreError::msg(format!("sealing document `{key}`: {e}")))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself, made durable: without it a power failure could lose the file while
    // the document's row, committed after this returns, stays.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let sealed = seal(&self.cipher, key, bytes)?;
        tokio::task::spawn_blocking(move || write_atomically(&path, &sealed))
            .await
            .map_err(StoreError::new)?
            .map_err(StoreError::new)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => self.unseal(key, b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::new(e)),
            _ => Ok(()),
        }
    }

    async fn keys_stored_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        // Files written (or resealed by a key rotation) before `before`, by their names; a
        // `.partial` file, the set-aside directory or anything else that is not a key is left
        // alone, as is a file gone meanwhile.
        let root = self.root.clone();
        blocking(move || files_before(&root, std::time::SystemTime::from(before))).await
    }

    async fn set_aside(&self, key: &str) -> Result<(), StoreError> {
        let (from, aside) = (self.path(key)?, self.root.join(SET_ASIDE).join(key));
        blocking(move || {
            // Dated first, where it is: a file that cannot be dated is not moved (its old date
            // would count towards its removal).
            std::fs::File::options()
                .write(true)
                .open(&from)?
                .set_modified(std::time::SystemTime::now())?;
            if let Some(dir) = aside.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&from, &aside)
        })
        .await
    }

    async fn keys_set_aside(
        &self,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, StoreError> {
        let dir = self.root.join(SET_ASIDE);
        blocking(move || {
            if !dir.is_dir() {
                return Ok(Vec::new());
            }
            files_with_times(&dir)
        })
        .await
    }

    async fn put_back(&self, key: &str) -> Result<(), StoreError> {
        let (home, aside) = (self.path(key)?, self.root.join(SET_ASIDE).join(key));
        blocking(move || {
            // Bytes under the key already (a restore brought them) are not replaced.
            if home.exists() {
                return Ok(());
            }
            std::fs::rename(&aside, &home)
        })
        .await
    }

    async fn remove_set_aside(&self, key: &str) -> Result<(), StoreError> {
        self.path(key)?;
        let aside = self.root.join(SET_ASIDE).join(key);
        blocking(move || match std::fs::remove_file(&aside) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }
}

/// The directory under the blob root where unreferenced bytes wait before they are removed
/// (`tenancy::assets::sweep_unreferenced_blobs`); moving a file back puts it back.
pub const SET_ASIDE: &str = "unreferenced";

/// `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(StoreError::new)?
        .map_err(StoreError::new)
}

/// The names of the files in `dir` that are keys, last written before `before`.
fn files_before(dir: &Path, before: std::time::SystemTime) -> std::io::Result<Vec<String>> {
    Ok(files_with_times(dir)?
        .into_iter()
        .filter(|(_, at)| std::time::SystemTime::from(*at) < before)
        .map(|(k, _)| k)
        .collect())
}

/// The files in `dir` whose names are keys, each with when it was last written; directories,
/// other names and files gone meanwhile are left out.
fn files_with_times(dir: &Path) -> std::io::Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !valid_key(&name) {
            continue;
        }
        let modified = match entry.metadata().and_then(|m| {
            if m.is_file() {
                m.modified().map(Some)
            } else {
                Ok(None)
            }
        }) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        keys.push((name, chrono::DateTime::<chrono::Utc>::from(modified)));
    }
    Ok(keys)
}

/// TXT lookups through DNS: the system resolver, or the given name servers.
#[derive(Clone)]
pub struct DnsVerifier {
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsVerifier")
    }
}

impl DnsVerifier {
    /// A verifier asking `servers` (plain DNS over UDP and TCP), or the system's resolvers when empty.
    ///
    /// # Errors
    /// When the system configuration cannot be read.
    pub fn new(servers: &[SocketAddr]) -> Result<Self, ResolveError> {
        let builder = if servers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            let mut group = NameServerConfigGroup::new();
            for s in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[s.ip()],
                    s.port(),
                    true,
                ));
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), group),
                TokioConnectionProvider::default(),
            )
        };
        let mut opts = hickory_resolver::config::ResolverOpts::default();
        // Verification must see a record as soon as it is published.
        opts.cache_size = 0;
        opts.attempts = 2;
        Ok(Self {
            resolver: builder.with_options(opts).build(),
        })
    }
}

#[async_trait]
impl DomainVerifier for DnsVerifier {
    async fn txt_records(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let fqdn = format!("{name}.");
        match self.resolver.txt_lookup(fqdn).await {
            Ok(found) => Ok(found
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>()
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(StoreError::new(e)),
        }
    }
}

/// Stands in when no resolver could be set up: every lookup fails with the reason.
#[derive(Debug, Clone)]
pub struct NoResolver(pub String);

#[async_trait]
impl DomainVerifier for NoResolver {
    async fn txt_records(&self, _name: &str) -> Result<Vec<String>, StoreError> {
        Err(StoreError::msg(format!(
            "DNS is not available to this server ({}); set workspace.dns_servers",
            self.0
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn cipher() -> Arc<Cipher> {
        Arc::new(Cipher::from_text(&Cipher::generate_key()).unwrap())
    }

    #[tokio::test]
    async fn bytes_set_aside_are_kept_resealed_put_back_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path(), cipher()).unwrap();
        let (a, b) = (
            rbac_core::ResourceId::new().to_string(),
            rbac_core::ResourceId::new().to_string(),
        );
        store.put(&a, b"first").await.unwrap();
        store.put(&b, b"second").await.unwrap();
        let later = chrono::Utc::now() + chrono::Duration::hours(1);
        let mut listed = store.keys_stored_before(later).await.unwrap();
        listed.sort();
        let mut both = vec![a.clone(), b.clone()];
        both.sort();
        assert_eq!(listed, both);
        store.set_aside(&a).await.unwrap();
        assert_eq!(
            store.get(&a).await.unwrap(),
            None,
            "out of the store's keys"
        );
        assert_eq!(
            store.keys_stored_before(later).await.unwrap(),
            vec![b.clone()]
        );
        let aside = store.keys_set_aside().await.unwrap();
        assert_eq!(aside.len(), 1);
        assert_eq!(aside[0].0, a);
        assert!(
            aside[0].1 > chrono::Utc::now() - chrono::Duration::minutes(1),
            "dated when set aside"
        );
        // A key rotation reseals them too, so that they can still be put back.
        let new = cipher();
        let (resealed, skipped) = store.reseal_all(&new).unwrap();
        assert_eq!((resealed, skipped.len()), (2, 0));
        let store = FsBlobStore::open(dir.path(), new).unwrap();
        store.put_back(&a).await.unwrap();
        assert_eq!(store.get(&a).await.unwrap().as_deref(), Some(&b"first"[..]));
        assert!(store.keys_set_aside().await.unwrap().is_empty());
        store.set_aside(&a).await.unwrap();
        store.remove_set_aside(&a).await.unwrap();
        assert!(store.keys_set_aside().await.unwrap().is_empty());
        store.put_back(&a).await.unwrap_err();
        assert_eq!(store.get(&a).await.unwrap(), None);
        assert_eq!(
            store.get(&b).await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
    }

    #[tokio::test]
    async fn blobs_round_trip_sealed_and_refuse_path_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path(), cipher()).unwrap();
        store.put("res_1", b"hello secret world").await.unwrap();
        assert_eq!(
            store.get("res_1").await.unwrap().as_deref(),
            Some(&b"hello secret world"[..])
        );
        let on_disk = std::fs::read(dir.path().join("res_1")).unwrap();
        assert!(on_disk.starts_with(SEALED_MAGIC));
        assert!(
            !on_disk.windows(6).any(|w| w == b"secret"),
            "sealed on disk"
        );
        // Swapped files are refused, not served as each other.
        store.put("res_3", b"other").await.unwrap();
        std::fs::copy(dir.path().join("res_1"), dir.path().join("res_3")).unwrap();
        assert!(store.get("res_3").await.is_err());
        assert_eq!(store.get("res_2").await.unwrap(), None);
        store.delete("res_1").await.unwrap();
        store.delete("res_1").await.unwrap();
        assert_eq!(store.get("res_1").await.unwrap(), None);
        for bad in ["../x", "a/b", "", "res.1"] {
            assert!(store.put(bad, b"x").await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resealing_moves_every_document_to_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = FsBlobStore::open(dir.path(), cipher()).unwrap();
        old.put("res_1", b"one").await.unwrap();
        // A document written before encryption, as plain bytes.
        std::fs::write(dir.path().join("res_2"), b"legacy").unwrap();
        assert_eq!(
            old.get("res_2").await.unwrap().as_deref(),
            Some(&b"legacy"[..])
        );
        let key = cipher();
        // A file that opens under no key is reported and left as it is.
        std::fs::write(dir.path().join("res_3"), b"AXB1 not really sealed").unwrap();
        assert_eq!(old.reseal_all(&key).unwrap(), (2, vec!["res_3".to_owned()]));
        let new = FsBlobStore::open(dir.path(), key.clone()).unwrap();
        assert_eq!(
            new.get("res_1").await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            new.get("res_2").await.unwrap().as_deref(),
            Some(&b"legacy"[..])
        );
        assert!(
            std::fs::read(dir.path().join("res_2"))
                .unwrap()
                .starts_with(SEALED_MAGIC)
        );
        assert!(
            old.get("res_1").await.is_err(),
            "the old key no longer opens it"
        );
        // Run again (an interrupted rotation resumed): what is already new is left as it is.
        assert_eq!(old.reseal_all(&key).unwrap(), (0, vec!["res_3".to_owned()]));
    }
}
