//! Which IP addresses are public: the ranges a destination may not reach unless allowed.
//!
//! Non-public means: in the IANA IPv4 or IPv6 Special-Purpose Address Registry, IPv4
//! multicast, or IPv6 outside global unicast (2000::/3). An IPv6 address that carries an
//! IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4) is judged by that IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

/// IPv4 ranges that are not public: the IANA IPv4 Special-Purpose Address Registry, plus
/// multicast.
const NON_PUBLIC_V4: &[(Ipv4Addr, u32)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private use
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private use
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 31, 196, 0), 24),    // AS112-v4
    (Ipv4Addr::new(192, 52, 193, 0), 24),    // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private use
    (Ipv4Addr::new(192, 175, 48, 0), 24),    // direct delegation AS112 service
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved
    (Ipv4Addr::new(255, 255, 255, 255), 32), // limited broadcast
];

/// IPv6 ranges inside global unicast (2000::/3) that are not public: the IANA IPv6
/// Special-Purpose Address Registry. Everything outside 2000::/3 is refused anyway.
const NON_PUBLIC_V6: &[(Ipv6Addr, u32)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (incl. Teredo)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // direct delegation AS112 service
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

/// 64:ff9b::/96, the well-known NAT64 prefix.
const NAT64: (Ipv6Addr, u32) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NON_PUBLIC_V4.iter().any(|&net| in_v4(ip, net))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    // Only 2000::/3 is global unicast. Outside it lie, among others, ::/96 (loopback,
    // unspecified, IPv4-compatible), ::ffff:0:0:0/96 (IPv4-translated), 64:ff9b:1::/48
    // (local-use NAT64), 100::/64 (discard-only), 5f00::/16 (SRv6 SIDs), fc00::/7 (unique
    // local), fe80::/10 (link-local), fec0::/10 (site-local) and ff00::/8 (multicast).
    in_v6(ip, (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3))
        && !NON_PUBLIC_V6.iter().any(|&net| in_v6(ip, net))
}

/// The IPv4 address that decides where an IPv6 address leads: IPv4-mapped (::ffff:0:0/96),
/// NAT64 (64:ff9b::/96, last 32 bits) and 6to4 (2002::/16, bits 16 to 48).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |high: u16, low: u16| Ipv4Addr::from(u32::from(high) << 16 | u32::from(low));
    if let Some(mapped) = ip.to_ipv4_mapped() {
        Some(mapped)
    } else if in_v6(ip, NAT64) {
        Some(v4(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(v4(s[1], s[2]))
    } else {
        None
    }
}

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u32)) -> bool {
    u32::from(ip) >> (32 - len) == u32::from(net) >> (32 - len)
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u32)) -> bool {
    u128::from(ip) >> (128 - len) == u128::from(net) >> (128 - len)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The IPv6 literals an outside audit found passing the save-time check.
    pub(in crate::destination) const AUDIT_LITERALS: [&str; 5] =
        ["::127.0.0.1", "::ffff:0:127.0.0.1", "2002:7f00:1::", "fec0::1", "2001::1"];

    #[test]
    fn non_public_addresses_are_refused() {
        let non_public = [
            // IPv4, one per range
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 outside 2000::/3
            "::",
            "::1",
            "::8.8.8.8", // IPv4-compatible: refused whatever it embeds
            "::ffff:0:8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "100::1",
            "5f00::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            // IPv6 inside 2000::/3
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "2001:2::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            "2620:4f:8000::1",
            "3fff::1",
            "3fff:fff::1",
        ];
        for text in AUDIT_LITERALS.iter().chain(&non_public) {
            assert!(!is_public(ip(text)), "{text} passed");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:200::1",
            "2001:db9::1",
            "2620:4f:8001::1",
            "3fff:1000::1",
            "3ffe::1",
        ] {
            assert!(is_public(ip(text)), "{text} refused");
        }
    }
}
