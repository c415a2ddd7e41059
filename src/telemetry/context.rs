//! W3C Trace Context: the `traceparent` a request carries in, and the one hookgate sends
//! on (<https://www.w3.org/TR/trace-context/>).

use std::cell::Cell;

/// Where a span sits in a trace: enough to make children and to propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The sampled flag: whether spans of this trace are recorded and exported.
    pub sampled: bool,
}

impl TraceContext {
    /// Reads a `traceparent` value. Anything malformed (wrong lengths, upper-case hex,
    /// all-zero ids, version `ff`) is `None`: the request then starts a trace of its own.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // A later version may append fields; version 00 may not.
        let extra = parts.next();
        let lengths = (version.len(), trace.len(), span.len(), flags.len());
        if lengths != (2, 32, 16, 2) || version == "ff" || (version == "00" && extra.is_some()) {
            return None;
        }
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if ![version, trace, span, flags].iter().all(|p| lower_hex(p)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flag = [0u8; 1];
        const_hex::decode_to_slice(trace, &mut trace_id).ok()?;
        const_hex::decode_to_slice(span, &mut span_id).ok()?;
        const_hex::decode_to_slice(flags, &mut flag).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flag[0] & 1 == 1,
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            const_hex::encode(self.trace_id),
            const_hex::encode(self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }

    pub fn trace_id_hex(&self) -> String {
        const_hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        const_hex::encode(self.span_id)
    }
}

thread_local! {
    /// Per-thread generator state, seeded from the system's random source once: ids need
    /// to be unique and unguessable enough, not secret, and a syscall per span costs.
    static RNG: Cell<u64> = Cell::new(u64::from_le_bytes(crate::ids::random_bytes::<8>()) | 1);
}

/// The next value of a per-thread wyrand generator.
fn next_u64() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

/// A fresh, non-zero trace id.
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let id = (u128::from(next_u64()) << 64 | u128::from(next_u64())).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A fresh, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id = next_u64().to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_malformed_values_start_a_new_trace() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(value).unwrap();
        assert!(ctx.sampled);
        assert_eq!(ctx.traceparent(), value);
        let unsampled =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!unsampled.unwrap().sampled);
        // A later version may carry more fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fresh_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_trace_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert_ne!(new_span_id(), new_span_id());
    }
}
