//! The SSRF guard for per-request destinations: an app (or whoever controls the URLs it
//! forwards) must not make hookgate post to loopback, private, link-local or cloud
//! metadata addresses. Checked on the resolved address, at accept and again at every
//! attempt (a name can resolve differently later).

use std::net::IpAddr;

/// A CIDR block from `outbound.allow_private_destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("expected a CIDR such as 10.0.0.0/8, found {text:?}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length in {text:?}"))?
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether an address is one a webhook must not reach unless allow-listed.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local() // includes 169.254.169.254, the cloud metadata service
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || o[0] == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link-local
                    || v6.segments()[..6] == [0xfd00, 0xec2, 0, 0, 0, 0] // AWS metadata over IPv6
            }
        },
    }
}

/// Refuses internal addresses that no allow-list entry covers.
pub fn check(ip: IpAddr, allow: &[Cidr]) -> Result<(), String> {
    if is_internal(ip) && !allow.iter().any(|c| c.contains(ip)) {
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
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                check(ip.parse().unwrap(), &[]).is_err(),
                "{ip} should be refused"
            );
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(check(ip.parse().unwrap(), &[]).is_ok(), "{ip} is public");
        }
        let allow = [
            Cidr::parse("127.0.0.0/8").unwrap(),
            Cidr::parse("fd00::/8").unwrap(),
        ];
        assert!(check("127.0.0.1".parse().unwrap(), &allow).is_ok());
        assert!(check("10.0.0.1".parse().unwrap(), &allow).is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
    }
}
