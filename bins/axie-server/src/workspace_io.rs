//! The server's adapters for the workspace ports: document bytes in a local directory and
//! domain verification through DNS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use tenancy::StoreError;
use tenancy::assets::{BlobStore, DomainVerifier};

/// Document bytes as files under one directory, written to a temporary name, synced, then
/// renamed, so a crash never leaves a partial document under its real name.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store rooted at `root` (created when missing).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Keys are our own resource ids; anything else is refused rather than joined into a path.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::msg(format!("invalid blob key `{key}`")));
        }
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let tmp = path.with_extension("partial");
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(StoreError::new)?
        .map_err(StoreError::new)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(b)),
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

    #[tokio::test]
    async fn blobs_round_trip_and_refuse_path_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.put("res_1", b"hello").await.unwrap();
        assert_eq!(
            store.get("res_1").await.unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(store.get("res_2").await.unwrap(), None);
        store.delete("res_1").await.unwrap();
        store.delete("res_1").await.unwrap();
        assert_eq!(store.get("res_1").await.unwrap(), None);
        for bad in ["../x", "a/b", "", "res.1"] {
            assert!(store.put(bad, b"x").await.is_err(), "{bad}");
        }
    }
}
