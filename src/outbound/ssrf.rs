//! The SSRF guard for per-request destinations: an app (or whoever controls the URLs it
//! forwards) must not make hookgate post to loopback, private, link-local or cloud
//! metadata addresses. Checked on the resolved address, at accept and again at every
//! attempt (a name can resolve differently later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use crate::config::Cidr;

/// IANA's special-purpose IPv4 blocks (and multicast): none is a webhook receiver on the
/// internet, and several reach this host, its network or its cloud's metadata service.
const SPECIAL_V4: &[&str] = &[
    "0.0.0.0/8",       // this network
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // carrier-grade NAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local, with the metadata service 169.254.169.254
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation
    "192.31.196.0/24", // AS112
    "192.52.193.0/24", // AMT
    "192.88.99.0/24",  // 6to4 relay anycast
    "192.168.0.0/16",  // private
    "192.175.48.0/24", // AS112 direct delegation
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation
    "203.0.113.0/24",  // documentation
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, and the broadcast address
];

/// IANA's special-purpose IPv6 blocks (and multicast). The blocks that embed an IPv4
/// address are handled by [`embedded_ipv4`] first.
const SPECIAL_V6: &[&str] = &[
    "::/96",             // unspecified, loopback, and the deprecated IPv4-compatible addresses
    "64:ff9b:1::/48",    // local-use NAT64
    "100::/64",          // discard-only
    "100:0:0:1::/64",    // dummy prefix
    "2001::/23",         // IETF protocol assignments, Teredo (2001::/32) among them
    "2001:db8::/32",     // documentation
    "2620:4f:8000::/48", // AS112 direct delegation
    "3fff::/20",         // documentation
    "5f00::/16",         // segment routing
    "fc00::/7",          // unique local
    "fe80::/10",         // link-local
    "fec0::/10",         // site-local (deprecated)
    "ff00::/8",          // multicast
];

static SPECIAL: LazyLock<(Vec<Cidr>, Vec<Cidr>)> = LazyLock::new(|| {
    let parse = |list: &[&str]| {
        list.iter()
            .map(|c| Cidr::parse(c).expect("the special-purpose blocks are valid CIDRs"))
            .collect()
    };
    (parse(SPECIAL_V4), parse(SPECIAL_V6))
});

/// The IPv4 address inside an IPv6 one that carries it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:AABB:CCDD::`). A connection to such an address can reach the IPv4 one.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Whether an address is one a webhook must not reach unless allow-listed.
fn is_internal(ip: IpAddr) -> bool {
    let (v4_blocks, v6_blocks) = &*SPECIAL;
    match ip {
        IpAddr::V4(_) => v4_blocks.iter().any(|c| c.contains(ip)),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => v6_blocks.iter().any(|c| c.contains(ip)),
        },
    }
}

/// Resolves `host` and refuses it when any address it gives is internal
/// (`destination_not_allowed`, and why). A host that does not resolve now passes: its DNS
/// may be down or not yet set up, and refusing it would turn a passing outage into a lost
/// message or subscription. Every connection checks the addresses again when it is made.
pub async fn check_host(host: &str, port: u16, allow: &[Cidr]) -> Result<(), String> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(addresses) => addresses.into_iter().try_for_each(|a| check(a.ip(), allow)),
        Err(e) => {
            tracing::debug!(host, error = %e, "a destination does not resolve now; checked again when attempted");
            Ok(())
        }
    }
}

/// Refuses internal addresses that no allow-list entry covers.
pub fn check(ip: IpAddr, allow: &[Cidr]) -> Result<(), String> {
    // An allow-listed IPv4 block also covers the IPv6 forms of its addresses.
    let v4 = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    let allowed = |ip: IpAddr| allow.iter().any(|c| c.contains(ip));
    if is_internal(ip) && !allowed(ip) && !v4.is_some_and(allowed) {
        return Err(format!(
            "{ip} is a loopback, private, link-local or metadata address (allow it in outbound.allow_private_destinations)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.254",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "64:ff9b:1::1",
            // IPv4 inside IPv6: mapped, translated, compatible, NAT64, 6to4, Teredo
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:7f00:1",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(
                check(ip.parse().unwrap(), &[]).is_err(),
                "{ip} should be refused"
            );
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "8.8.8.8",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "198.20.0.1",
            "192.0.3.1",
        ] {
            assert!(check(ip.parse().unwrap(), &[]).is_ok(), "{ip} is public");
        }
        let allow = [
            Cidr::parse("127.0.0.0/8").unwrap(),
            Cidr::parse("fd00::/8").unwrap(),
        ];
        assert!(check("127.0.0.1".parse().unwrap(), &allow).is_ok());
        assert!(check("::ffff:127.0.0.1".parse().unwrap(), &allow).is_ok());
        assert!(check("10.0.0.1".parse().unwrap(), &allow).is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
    }
}
