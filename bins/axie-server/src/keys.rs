//! Key rotation, run by the operator with the server stopped (`axie-server rotate-encryption-key`,
//! `axie-server rotate-checkpoint-key`).
//!
//! Keys kept in files under the data directory rotate in three steps, each safe to repeat: the
//! new key is written next to the old one (`*.key.next`), the database is brought over to it in
//! one transaction, and the files are renamed (the old key stays as `*.key.old`, an earlier one
//! as `*.key.old.<n>`). Keys given in the configuration need the new key as an argument (or
//! take the one an interrupted run left in `*.key.next`); it is kept in `*.key.next` too,
//! readable by the server's user only, before anything moves to it, since a key generated on
//! the command line (`--new-key "$(openssl rand -hex 32)"`) would otherwise exist nowhere once
//! the documents are under it; the operator then puts it in the configuration and deletes the
//! file.

use std::path::Path;

use secrecy::ExposeSecret;
use store_sea::SeaStore;

use crate::config::Settings;
use crate::startup::{
    StartupError, existing_checkpoint_key, existing_encryption_key, write_key_file,
};

type Failure = Box<dyn std::error::Error>;

fn next_key(path: &Path, fresh: impl FnOnce() -> String) -> Result<String, Failure> {
    match std::fs::read_to_string(path) {
        Ok(k) => Ok(k.trim().to_owned()),
        Err(_) => {
            let k = fresh();
            write_key_file(path, &k)?;
            Ok(k)
        }
    }
}

/// Removes the key a finished rotation left at `path`: with the key in the configuration, the
/// new one stays there until the operator deletes it, and once the configuration holds it
/// (`configured`) it is no rotation's pending key any more. Left, it would refuse the next
/// rotation as an interrupted one, or "resume" it to the key already in use.
fn finished_rotation(path: &Path, configured: Option<&str>) -> Result<(), Failure> {
    if let Some(current) = configured
        && pending_key(path).as_deref() == Some(current.trim())
    {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// The new key an interrupted rotation left at `path`, if any.
fn pending_key(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
}

/// Keeps a key given on the command line at `path`, where an interrupted run looks for it.
/// Refuses when another key waits there: an interrupted rotation to it has moved things to it
/// already, and this would lose its only copy.
fn keep_next_key(path: &Path, text: &str) -> Result<(), Failure> {
    match std::fs::read_to_string(path) {
        Ok(pending) if pending.trim() == text => Ok(()),
        Ok(_) => Err(format!(
            "{} holds another new key, from a rotation that was interrupted: run again with that key (or without --new-key)",
            path.display()
        )
        .into()),
        Err(_) => Ok(write_key_file(path, text)?),
    }
}

/// Makes `*.next` the key: the current one becomes `*.old`, and an earlier `*.old` moves to the
/// first free `*.old.<n>` (backups taken under it may still need it). Safe to repeat after an
/// interruption: a step done is not done again.
fn promote(dir: &Path, name: &str) -> Result<(), Failure> {
    let current = dir.join(name);
    let old = dir.join(format!("{name}.old"));
    let next = dir.join(format!("{name}.next"));
    if current.exists() {
        if old.exists() {
            let earlier = (1..)
                .map(|n| dir.join(format!("{name}.old.{n}")))
                .find(|p| !p.exists())
                .ok_or("no free name for the earlier old key")?;
            std::fs::rename(&old, earlier)?;
        }
        std::fs::rename(&current, &old)?;
    }
    std::fs::rename(&next, &current)?;
    Ok(())
}

/// Re-encrypts every stored secret under a new AES-256-GCM key. Returns a report for the operator.
///
/// # Errors
/// When a secret opens with neither key, the new key is malformed, or storage fails.
pub async fn rotate_encryption_key(
    settings: &Settings,
    store: &SeaStore,
    new_key: Option<&str>,
) -> Result<String, Failure> {
    let old = existing_encryption_key(settings)?;
    let configured = !settings.security.encryption_key.expose_secret().is_empty();
    let dir = &settings.server.data_dir;
    let next_path = dir.join("encryption.key.next");
    finished_rotation(
        &next_path,
        configured.then(|| settings.security.encryption_key.expose_secret()),
    )?;
    let text = match (configured, new_key) {
        (_, Some(k)) => k.to_owned(),
        (true, None) => pending_key(&next_path).ok_or_else(|| {
            StartupError::Security(
                "the encryption key comes from the configuration: pass --new-key (generate one with `openssl rand -hex 32`)".into(),
            )
        })?,
        (false, None) => next_key(&next_path, security_policy::Cipher::generate_key)?,
    };
    let new = security_policy::Cipher::from_text(&text)
        .map_err(|e| StartupError::Security(format!("the new key: {e}")))?;
    // A key given on the command line is kept where an interrupted run looks for it, before
    // anything moves to it: run again without it, the rotation goes on with the same key.
    if new_key.is_some() {
        keep_next_key(&next_path, &text)?;
    }
    let kept = |e: Failure| -> Failure {
        format!(
            "{e} (the new key is kept in {}: run again to finish the rotation with it)",
            next_path.display()
        )
        .into()
    };
    // Documents first: resealing can be repeated and stops at nothing but an unlistable
    // directory, so by the time the database's secrets move to the new key nothing else can
    // keep the key file from following them.
    let blobs = crate::workspace_io::FsBlobStore::open(
        &settings.workspace.blob_dir(&settings.server.data_dir),
        std::sync::Arc::new(old.clone()),
    )?;
    let (documents, skipped) = blobs.reseal_all(&new).map_err(|e| kept(e.into()))?;
    let report = store
        .reencrypt_secrets(&old, &new)
        .await
        .map_err(|e| kept(e.into()))?;
    let mut out = format!(
        "re-encrypted {} secrets ({} were already under the new key) and {documents} documents",
        report.rewritten, report.already_new
    );
    if !skipped.is_empty() {
        out.push_str(&format!(
            "; {} files in the document directory open under neither key and were left as they are: {}",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    if configured {
        out.push_str(&format!(
            "; now set security.encryption_key to the new key (also kept in {}, readable by this user only: delete it once the configuration holds the key) and start the server",
            next_path.display()
        ));
    } else {
        promote(dir, "encryption.key")?;
        out.push_str("; encryption.key replaced (the old one is encryption.key.old: delete it once backups no longer need it)");
    }
    Ok(out)
}

/// Verifies every organization's audit chain with the current checkpoint key, then signs a
/// fresh checkpoint of each with a new key, which becomes the key, and signs its retention
/// anchor again with it (in the checkpoint's transaction). A rotation cut short can be run
/// again: an organization whose log already verifies under the new key (its checkpoint and
/// anchor moved together) is left as it is.
///
/// # Errors
/// When a chain verifies under neither key (nothing is rotated then), or storage fails.
pub async fn rotate_checkpoint_key(
    settings: &Settings,
    store: &SeaStore,
    new_key: Option<&str>,
) -> Result<String, Failure> {
    let old = existing_checkpoint_key(settings)?;
    let configured = !settings.security.checkpoint_key.expose_secret().is_empty();
    let dir = &settings.server.data_dir;
    let orgs = audit::AuditStore::organizations(store).await?;
    let next_path = dir.join("checkpoint.key.next");
    finished_rotation(
        &next_path,
        configured.then(|| settings.security.checkpoint_key.expose_secret()),
    )?;
    let text = match (configured, new_key) {
        (_, Some(k)) => k.to_owned(),
        (true, None) => pending_key(&next_path).ok_or_else(|| {
            StartupError::Security(
                "the checkpoint key comes from the configuration: pass --new-key".into(),
            )
        })?,
        (false, None) => next_key(&next_path, || security_policy::mint("ck", 32).secret)?,
    };
    // A key given on the command line is kept where an interrupted run looks for it, before
    // anything is signed with it: run again without it, the rotation goes on with the same key.
    if new_key.is_some() {
        keep_next_key(&next_path, &text)?;
    }
    let witness = crate::witness::FileWitness::for_settings(settings)?;
    let log = audit::Witnessed::new(store, &witness);
    let mut moved_before = std::collections::HashSet::new();
    for org in &orgs {
        if let Err(b) = audit::verify_chain(&log, *org, &old).await? {
            if audit::verify_chain(&log, *org, text.as_bytes())
                .await?
                .is_ok()
            {
                // Its rotated checkpoint may have been saved without reaching the witness.
                if let Some(cp) = audit::AuditStore::latest_checkpoint(store, *org).await? {
                    audit::CheckpointWitness::witness(&witness, &cp).await?;
                }
                moved_before.insert(*org);
                continue;
            }
            return Err(format!("{org}: the audit chain is broken ({b}); not rotating").into());
        }
    }
    let now = chrono::Utc::now();
    for org in orgs.iter().filter(|o| !moved_before.contains(o)) {
        audit::take_checkpoint_rotating(&log, *org, &old, text.as_bytes(), now).await?;
    }
    let mut out = format!(
        "verified {} audit chains with the old key and signed a checkpoint of each (and its retention anchor) with the new one",
        orgs.len() - moved_before.len()
    );
    if !moved_before.is_empty() {
        out.push_str(&format!(
            "; {} already verified under the new key (an earlier rotation cut short) and were left as they are",
            moved_before.len()
        ));
    }
    if configured {
        out.push_str(&format!(
            "; now set security.checkpoint_key to the new key (also kept in {}, readable by this user only: delete it once the configuration holds the key) and start the server",
            next_path.display()
        ));
    } else {
        promote(dir, "checkpoint.key")?;
        out.push_str("; checkpoint.key replaced (keep checkpoint.key.old to check checkpoints signed before)");
    }
    Ok(out)
}
