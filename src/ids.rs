//! Ids and randomness, for every part that makes them (delivery, event and subscription
//! ids, secrets, trace ids): one place that reads the system's random source.

/// `N` bytes from the system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source is available");
    bytes
}

/// `n` random bytes in hex, for ids.
pub fn random_hex(n: usize) -> String {
    let bytes = random_bytes::<32>();
    const_hex::encode(&bytes[..n.min(32)])
}

/// A fresh delivery id in the Standard Webhooks style.
pub fn new_delivery_id() -> String {
    format!("msg_{}", random_hex(12))
}
