//! Password policy (after NIST SP 800-63B) and argon2id hashing.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{
    Decimal, Ident, Output, ParamsString, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::{PasswordError, SecurityError};

/// Common passwords refused under every policy (a bundled list, lower case).
const COMMON: &str = include_str!("common_passwords.txt");

/// The organization's password rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length for accounts that log in with a password only (NIST: 15).
    pub min_length: usize,
    /// Minimum length for accounts with a second factor (NIST: 8).
    pub min_length_with_2fa: usize,
    /// Maximum accepted length (at least 64).
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 15,
            min_length_with_2fa: 8,
            max_length: 128,
        }
    }
}

impl PasswordPolicy {
    /// Checks the policy's own bounds.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] when a stricter-than-possible or weaker-than-NIST value is set.
    pub fn validate(&self) -> Result<(), SecurityError> {
        if self.min_length_with_2fa < 8 || self.min_length < self.min_length_with_2fa {
            return Err(SecurityError::Invalid(
                "minimum lengths must be at least 8 (with 2FA) and 15 is recommended without"
                    .into(),
            ));
        }
        if self.max_length < 64 || self.max_length > 1024 || self.max_length < self.min_length {
            return Err(SecurityError::Invalid(
                "`max_length` must be between 64 and 1024".into(),
            ));
        }
        Ok(())
    }
}

/// The longest password accepted anywhere, in bytes (UTF-8): a sign-in refuses a longer one
/// before hashing it (a denial-of-service guard), so [`check_password`] refuses to set one,
/// whatever the policy's `max_length` in characters allows.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The shortest password [`check_password`] accepts under any policy (NIST SP 800-63B's
/// minimum).
pub const MIN_LENGTH_FLOOR: usize = 8;

/// Checks `password` against `policy`; `context` holds words it must not contain
/// (the email, its local part, the organization name).
///
/// # Errors
/// The first [`PasswordError`] found.
pub fn check_password(
    policy: &PasswordPolicy,
    password: &str,
    context: &[&str],
    has_second_factor: bool,
) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooManyBytes {
            max: MAX_PASSWORD_BYTES,
        });
    }
    let len = password.chars().count();
    if len > policy.max_length {
        return Err(PasswordError::TooLong {
            max: policy.max_length,
        });
    }
    // Never under NIST's 8, whatever a policy that skipped `validate` (deserialized, or built
    // by hand) says.
    let min = if has_second_factor {
        policy.min_length_with_2fa
    } else {
        policy.min_length
    }
    .max(MIN_LENGTH_FLOOR);
    if len < min {
        return Err(PasswordError::TooShort { min });
    }
    let lower = password.to_lowercase();
    if COMMON.lines().any(|c| !c.is_empty() && lower == c) {
        return Err(PasswordError::Common);
    }
    for word in context {
        let w = word.trim().to_lowercase();
        if w.chars().count() >= 4 && lower.contains(&w) {
            return Err(PasswordError::ContextWord);
        }
    }
    Ok(())
}

/// Context words for a person: the email, its local part and the organization name.
#[must_use]
pub fn context_words<'a>(email: &'a str, org_name: &'a str) -> [&'a str; 3] {
    [email, email.split('@').next().unwrap_or(email), org_name]
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashParams {
    /// Memory in KiB (OWASP minimum: 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP minimum with 19 MiB: 2).
    pub iterations: u32,
    /// Parallelism.
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords with argon2id.
///
/// Each hash works in `memory_kib` of memory (19 MiB by default). Rather than allocating and
/// freeing it every time, the hasher keeps up to one working area per core and reuses them
/// (clones share them): glibc serves a freed block that large from the freeing thread's heap
/// afterwards, which other allocations then fragment, so logins kept growing the heaps: under
/// the load script's mix the server's peak memory was 137 MiB when each hash allocated its own
/// area, 81 MiB with kept areas and 43 MiB without logins (`docs/benchmarks.md`, "Load", run I).
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    argon: PooledArgon2,
    /// A PHC string with these parameters, a random salt and a random output: verified against
    /// for unknown accounts so they take as long, and matched by no password.
    dummy: String,
    /// Bounds the hashes running at once on the blocking pool to the working areas kept.
    slots: Arc<Semaphore>,
}

/// The result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password (or no account).
    Mismatch,
    /// Right password.
    Match {
        /// The stored hash uses other parameters: store a fresh hash.
        needs_rehash: bool,
    },
}

impl PasswordHasher {
    /// A hasher with the given parameters.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] for parameters argon2 rejects or below OWASP's minimum.
    pub fn new(params: HashParams) -> Result<Self, SecurityError> {
        if params.memory_kib < 19_456 || params.iterations < 2 {
            return Err(SecurityError::Invalid(
                "argon2id parameters are below OWASP's minimum".into(),
            ));
        }
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| SecurityError::Invalid(format!("argon2 parameters: {e}")))?;
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&p)
                .map_err(|e| SecurityError::Invalid(e.to_string()))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&random).map_err(|e| SecurityError::Invalid(e.to_string()))?),
        }
        .to_string();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            argon: PooledArgon2::new(p, cores),
            dummy,
            slots: Arc::new(Semaphore::new(cores)),
        })
    }

    /// [`Self::hash`] on tokio's blocking pool, at most one hash per core at once, so a login
    /// does not stall the other requests of the async worker it arrived on and a burst of them
    /// holds at most `memory_kib` per core. Outside a tokio runtime it hashes on the calling
    /// thread.
    ///
    /// # Errors
    /// As [`Self::hash`]; [`SecurityError::Invalid`] if the runtime is shutting down.
    pub async fn hash_off_thread(&self, password: &str) -> Result<String, SecurityError> {
        let password = password.to_owned();
        self.off_thread(move |h| h.hash(&password))
            .await
            .unwrap_or_else(|| {
                Err(SecurityError::Invalid(
                    "the hashing task was stopped".into(),
                ))
            })
    }

    /// [`Self::verify`] on tokio's blocking pool, bounded as [`Self::hash_off_thread`]. A task
    /// stopped by the runtime's shutdown answers [`Verification::Mismatch`].
    pub async fn verify_off_thread(&self, stored: Option<&str>, password: &str) -> Verification {
        let (stored, password) = (stored.map(str::to_owned), password.to_owned());
        self.off_thread(move |h| h.verify(stored.as_deref(), &password))
            .await
            .unwrap_or(Verification::Mismatch)
    }

    /// Runs `work` on the blocking pool once a slot is free; `None` if it did not complete.
    /// The slot goes with the work, not with this future: a caller that stops waiting (a client
    /// that hangs up mid-login) frees it only when the hash is done, so abandoned logins cannot
    /// start more hashes than there are slots. Outside a tokio runtime (an embedder's other
    /// executor), `work` runs on the calling thread, within the same bound.
    async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> Option<T> {
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        if tokio::runtime::Handle::try_current().is_err() {
            let _slot = slot;
            return Some(work(self));
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work(&this)
        })
        .await
        .ok()
    }

    /// Hashes a password into a PHC string.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] if hashing fails.
    pub fn hash(&self, password: &str) -> Result<String, SecurityError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SecurityError::Invalid(e.to_string()))
    }

    /// Verifies `password` against `stored`; with `None` (unknown account) it still
    /// spends the same time and answers [`Verification::Mismatch`].
    #[must_use]
    pub fn verify(&self, stored: Option<&str>, password: &str) -> Verification {
        let target = stored.unwrap_or(&self.dummy);
        let Ok(parsed) = PasswordHash::new(target) else {
            return Verification::Mismatch;
        };
        let ok = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if !ok || stored.is_none() {
            return Verification::Mismatch;
        }
        let current = Params::try_from(&parsed).ok();
        let needs_rehash = parsed.algorithm.as_str() != "argon2id"
            || current.is_none_or(|p| {
                let ours = &self.argon.params;
                p.m_cost() != ours.m_cost()
                    || p.t_cost() != ours.t_cost()
                    || p.p_cost() != ours.p_cost()
            });
        Verification::Match { needs_rehash }
    }
}

/// argon2 (the `argon2` crate's computation, PHC encoding and constant-time comparison through
/// its `PasswordHasher` and `PasswordVerifier` traits) with the working memory taken from a pool.
#[derive(Clone)]
struct PooledArgon2 {
    params: Params,
    memory: Arc<MemoryPool>,
}

/// Working areas of `blocks` blocks, at most `keep` of them kept between hashes.
struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
    keep: usize,
    blocks: usize,
}

impl std::fmt::Debug for PooledArgon2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledArgon2")
            .field("params", &self.params)
            .field("keep", &self.memory.keep)
            .finish_non_exhaustive()
    }
}

impl PooledArgon2 {
    fn new(params: Params, keep: usize) -> Self {
        let blocks = params.block_count();
        Self {
            params,
            memory: Arc::new(MemoryPool {
                free: Mutex::new(Vec::new()),
                keep,
                blocks,
            }),
        }
    }
}

impl MemoryPool {
    /// Runs `f` with a working area of at least `blocks` blocks: a kept one if there is one and
    /// `blocks` fits the pool's size, else a new one, kept afterwards if it has the pool's size
    /// and the pool has room.
    fn with<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let kept = if blocks <= self.blocks {
            self.lock().pop()
        } else {
            None
        };
        let mut area = kept.unwrap_or_else(|| vec![Block::default(); blocks.max(self.blocks)]);
        let out = f(&mut area);
        if area.len() == self.blocks {
            let mut free = self.lock();
            if free.len() < self.keep {
                free.push(area);
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // The areas hold no invariant a panicking hash could break.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().len()
    }
}

impl argon2::password_hash::PasswordHasher for PooledArgon2 {
    type Params = Params;

    fn hash_password<'a>(
        &self,
        password: &[u8],
        salt: impl Into<Salt<'a>>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        self.hash_password_customized(password, None, None, self.params.clone(), salt)
    }

    /// What `Argon2`'s own implementation does, with a pooled working area: `verify_password`
    /// (the trait's provided method) calls this with the stored hash's algorithm, version,
    /// parameters and salt and compares the outputs in constant time.
    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        let algorithm = algorithm
            .map(Algorithm::try_from)
            .transpose()?
            .unwrap_or_default();
        let version = version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let salt = salt.into();
        let mut salt_buf = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_buf)?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = self.memory.with(params.block_count(), |area| {
            Output::init_with(len, |out| {
                Ok(argon.hash_password_into_with_memory(password, salt_bytes, out, area)?)
            })
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside a tokio runtime (another executor), the off-thread helpers hash on the calling
    /// thread instead of panicking in `spawn_blocking`.
    #[test]
    fn off_thread_hashing_works_outside_tokio() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = futures::executor::block_on(h.hash_off_thread("correct horse")).unwrap();
        assert!(matches!(
            futures::executor::block_on(h.verify_off_thread(Some(&hash), "correct horse")),
            Verification::Match { .. }
        ));
    }

    /// Off-thread hashing gives the same answers, and the async thread keeps running other
    /// tasks meanwhile (on a one-thread runtime, an inline hash would stop the ticker).
    #[tokio::test(flavor = "current_thread")]
    async fn off_thread_hashing_answers_alike_and_leaves_the_runtime_free() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        // Nothing here yields before the hash: if it ran on this thread, the ticker could not.
        let stored = h
            .hash_off_thread("correct horse battery staple")
            .await
            .unwrap();
        assert!(
            ticks.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "the runtime ran nothing while hashing off thread"
        );
        assert_eq!(
            h.verify_off_thread(Some(&stored), "correct horse battery staple")
                .await,
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify_off_thread(Some(&stored), "wrong").await,
            Verification::Mismatch
        );
        assert_eq!(
            h.verify_off_thread(None, "anything").await,
            Verification::Mismatch
        );
        ticker.abort();
    }

    /// A caller that stops waiting does not free its slot before its hash is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_abandoned_hash_keeps_its_slot_until_it_is_done() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let slots = h.slots.available_permits();
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            h.hash_off_thread("correct horse battery staple"),
        )
        .await;
        assert!(abandoned.is_err(), "a hash took under a millisecond");
        assert_eq!(h.slots.available_permits(), slots - 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while h.slots.available_permits() < slots {
            assert!(
                std::time::Instant::now() < deadline,
                "the slot never came back"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn check(pw: &str, two_fa: bool) -> Result<(), PasswordError> {
        check_password(
            &PasswordPolicy::default(),
            pw,
            &context_words("sarah.j@acme.example", "Acme Corp"),
            two_fa,
        )
    }

    /// A policy that skipped `validate` (deserialized, built by hand) still refuses a password
    /// under 8 characters, the empty one first.
    #[test]
    fn no_policy_goes_under_the_floor() {
        let lax = PasswordPolicy {
            min_length: 0,
            min_length_with_2fa: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            check_password(&lax, "", &[], false),
            Err(PasswordError::TooShort {
                min: MIN_LENGTH_FLOOR
            })
        );
        assert_eq!(
            check_password(&lax, "seven c", &[], true),
            Err(PasswordError::TooShort { min: 8 })
        );
    }

    #[test]
    fn nist_lengths() {
        assert_eq!(
            check("fourteen chars", false),
            Err(PasswordError::TooShort { min: 15 })
        );
        assert_eq!(check("fifteen chars!!", false), Ok(()));
        assert_eq!(check("eight ch", true), Ok(()));
        assert_eq!(
            check("seven c", true),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert_eq!(check(&"x".repeat(128), false), Ok(()));
        assert_eq!(
            check(&"x".repeat(129), false),
            Err(PasswordError::TooLong { max: 128 })
        );
        // The longest policy allows 1024 characters, but never more than a sign-in accepts:
        // 1024 bytes.
        let longest = PasswordPolicy {
            max_length: 1024,
            ..PasswordPolicy::default()
        };
        assert!(longest.validate().is_ok());
        let ascii = "correct horse battery staple ".repeat(40);
        assert!(check_password(&longest, &ascii[..1024], &[], false).is_ok());
        let wide = "ü".repeat(600);
        assert_eq!(wide.chars().count(), 600);
        assert_eq!(
            check_password(&longest, &wide, &[], false),
            Err(PasswordError::TooManyBytes { max: 1024 })
        );
    }

    #[test]
    fn no_composition_rules_but_common_and_context_words_refused() {
        assert_eq!(check("all lower case words here", false), Ok(()));
        assert_eq!(check("Password1234567", false), Err(PasswordError::Common));
        assert_eq!(
            check("my sarah.j password", false),
            Err(PasswordError::ContextWord)
        );
        assert_eq!(
            check("i work at ACME CORP ok", false),
            Err(PasswordError::ContextWord)
        );
    }

    #[test]
    fn policy_bounds() {
        assert!(PasswordPolicy::default().validate().is_ok());
        assert!(
            PasswordPolicy {
                min_length_with_2fa: 6,
                ..PasswordPolicy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            PasswordPolicy {
                max_length: 32,
                ..PasswordPolicy::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn hashes_verify_and_flag_rehash() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let stored = h.hash("correct horse battery staple").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            h.verify(Some(&stored), "correct horse battery staple"),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(h.verify(Some(&stored), "wrong"), Verification::Mismatch);
        assert_eq!(h.verify(None, "anything"), Verification::Mismatch);
        let stronger = PasswordHasher::new(HashParams {
            iterations: 3,
            ..HashParams::default()
        })
        .unwrap();
        assert_eq!(
            stronger.verify(Some(&stored), "correct horse battery staple"),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn pooled_hashes_are_argon2_hashes() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let ours = h.hash("correct horse battery staple").unwrap();
        let stock = Argon2::default();
        assert!(
            stock
                .verify_password(
                    b"correct horse battery staple",
                    &PasswordHash::new(&ours).unwrap()
                )
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = stock
            .hash_password(b"correct horse battery staple", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify(Some(&theirs), "correct horse battery staple"),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify(Some(&theirs), "correct horse"),
            Verification::Mismatch
        );
        // A stored hash that needs more memory than the pooled areas have.
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32_768, 2, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery staple", &salt)
        .unwrap()
        .to_string();
        assert_eq!(
            h.verify(Some(&bigger), "correct horse battery staple"),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(
            h.verify(Some(&bigger), "correct horse"),
            Verification::Mismatch
        );
        // The unknown-account stand-in has the hasher's parameters and matches nothing.
        let dummy = PasswordHash::new(&h.dummy).unwrap();
        assert_eq!(Params::try_from(&dummy).unwrap().m_cost(), 19_456);
        assert!(stock.verify_password(b"", &dummy).is_err());
    }

    #[test]
    fn working_areas_are_reused_and_at_most_keep_are_kept() {
        let small = Params::new(64, 2, 1, None).unwrap();
        let argon = PooledArgon2::new(small, 2);
        let salt = SaltString::generate(&mut OsRng);
        let one = argon.hash_password(b"password", &salt).unwrap().to_string();
        assert_eq!(argon.memory.kept(), 1);
        assert_eq!(
            argon.hash_password(b"password", &salt).unwrap().to_string(),
            one,
            "a reused area gives the same hash"
        );
        assert_eq!(argon.memory.kept(), 1);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        assert_eq!(
                            argon.hash_password(b"password", &salt).unwrap().to_string(),
                            one
                        );
                    }
                });
            }
        });
        let kept = argon.memory.kept();
        assert!((1..=2).contains(&kept), "{kept} areas kept");
        // A larger area (for a stored hash with more memory) is not kept.
        let larger = Params::new(128, 2, 1, None).unwrap();
        argon
            .hash_password_customized(b"password", None, None, larger, &salt)
            .unwrap();
        assert_eq!(argon.memory.kept(), kept);
    }

    #[test]
    fn weak_parameters_refused() {
        assert!(
            PasswordHasher::new(HashParams {
                memory_kib: 1024,
                ..HashParams::default()
            })
            .is_err()
        );
    }
}
