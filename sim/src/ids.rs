//! Ids and hashes derived from names, stable across runs: what must not change from one
//! request (or one emulator start) to the next.

/// Ten hex digits of the FNV-1a hash of `s` (as pod-template-hash labels and controller
/// revisions look).
pub fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// Sixty-four hex digits derived from `seed`.
pub fn stable_hex(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    (0..4u8)
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (i, seed).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// A version 4 shaped UUID derived from `seed`.
pub fn stable_uuid(seed: &str) -> String {
    let h = stable_hex(seed);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_tell_seeds_apart() {
        let h = short_hash("shop/storefront");
        assert_eq!(h.len(), 10);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, short_hash("shop/storefront"));
        assert_ne!(h, short_hash("shop/checkout"));
        let u = stable_uuid("node-1/vmid");
        assert_eq!(u, stable_uuid("node-1/vmid"));
        assert_ne!(u, stable_uuid("node-2/vmid"));
        assert!(uuid::Uuid::parse_str(&u).is_ok(), "{u}");
    }
}
