//! The audit chain's canonical encoding is injective: it splits back into exactly the fields
//! it was made of (length-prefixed), so two different records never hash the same bytes; and
//! any change to a sealed record's fields changes its hash.
#![no_main]

use arbitrary::Arbitrary;
use audit::chain::{canonical_bytes, seal};
use audit::{Actor, AuditAction, Metadata, NewAuditEvent, Target};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    actor_id: String,
    actor_name: String,
    target_kind: String,
    target_id: String,
    metadata_key: String,
    metadata_value: String,
    seq: i64,
    micros: i32,
    action: u8,
}

fn fields(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at(4);
        let n = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let (field, rest) = rest.split_at(n);
        out.push(field.to_vec());
        bytes = rest;
    }
    out
}

fuzz_target!(|input: Input| {
    let org = rbac_core::OrgId::new();
    let at = chrono::DateTime::from_timestamp(1_760_000_000, 0).unwrap()
        + chrono::Duration::microseconds(i64::from(input.micros));
    let action = AuditAction::ALL[usize::from(input.action) % AuditAction::ALL.len()];
    let mut e = NewAuditEvent::new(
        org,
        at,
        Actor::user(input.actor_id.as_str(), input.actor_name.clone()),
        action,
        Target::new(input.target_kind.as_str(), input.target_id.as_str(), "name"),
    );
    if let Ok(m) = Metadata::from_value(serde_json::json!({ input.metadata_key.clone(): input.metadata_value.clone() })) {
        e = e.with_metadata(m);
    }
    let bytes = canonical_bytes(&e, input.seq, 1);
    let f = fields(&bytes);
    assert_eq!(f.len(), 14);
    assert_eq!(f[3], input.seq.to_be_bytes());
    assert_eq!(f[7], input.actor_id.as_bytes());
    assert_eq!(f[8], action.as_str().as_bytes());
    assert_eq!(f[9], input.target_kind.as_bytes());
    assert_eq!(f[10], input.target_id.as_bytes());
    let sealed = seal(e.clone(), input.seq, [7; 32]);
    let mut other = e;
    other.target.id.push('x');
    assert_ne!(seal(other, input.seq, [7; 32]).hash, sealed.hash);
});
