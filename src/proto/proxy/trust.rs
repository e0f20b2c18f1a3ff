//! Which peers are trusted proxies: the `--forwarded-allow-ips` list.
//!
//! What it does: reads the list (IP addresses and CIDR networks, comma
//! separated; `*` for every peer; empty for none) and answers whether an
//! address is in it. An IPv4 peer on a dual-stack socket
//! (`::ffff:a.b.c.d`) is its IPv4 address here, as in `REMOTE_ADDR`.
//!
//! What it does not do: decide what a trusted peer may change (`forwarded`,
//! `protocol`), or treat Unix-socket peers (they have no address; the
//! runtime trusts them).

use std::net::IpAddr;

/// The peers whose forwarding fields and PROXY headers are believed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TrustedPeers {
    /// `*`: every peer.
    Every,
    /// These networks (none: no peer).
    Networks(Vec<Network>),
}

/// An IP network: the address with its host bits zero, and the prefix
/// length (32 or 128 for a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(base)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(base)
            }
            _ => false,
        }
    }

    /// `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; host bits must be zero (as
    /// Python's `ipaddress.ip_network` asks: `10.0.0.1/8` is a mistake).
    fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let base = base.to_canonical();
        let bits = match base {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => bits,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be at most {bits}"))?,
            Some(_) => return Err(format!("{text:?} is not an IP address or network")),
        };
        let network = Network { base, prefix };
        if !network.contains(base) {
            return Err(format!("{text:?} has host bits set"));
        }
        Ok(network)
    }
}

impl TrustedPeers {
    /// Read `--forwarded-allow-ips`. Items are separated by commas, spaces
    /// around them ignored; an empty list trusts no peer.
    pub(crate) fn parse(text: &str) -> Result<TrustedPeers, String> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                return Ok(TrustedPeers::Every);
            }
            networks.push(Network::parse(item)?);
        }
        Ok(TrustedPeers::Networks(networks))
    }

    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        match self {
            TrustedPeers::Every => true,
            TrustedPeers::Networks(networks) => {
                let ip = ip.to_canonical();
                networks.iter().any(|n| n.contains(ip))
            }
        }
    }

    /// Whether no peer at all is trusted (an empty list).
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, TrustedPeers::Networks(n) if n.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn lists_and_what_they_trust() {
        // (list, trusted, not trusted)
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "127.0.0.1,::1",
                &["127.0.0.1", "::1", "::ffff:127.0.0.1"],
                &["127.0.0.2", "10.0.0.1", "::2"],
            ),
            ("", &[], &["127.0.0.1", "::1"]),
            (" , ", &[], &["127.0.0.1"]),
            ("*", &["1.2.3.4", "2001:db8::1"], &[]),
            ("10.0.0.1, *", &["1.2.3.4"], &[]),
            (
                "10.0.0.0/8, 192.168.1.0/24",
                &["10.255.0.1", "192.168.1.77"],
                &["11.0.0.1", "192.168.2.1"],
            ),
            ("0.0.0.0/0", &["8.8.8.8", "::ffff:8.8.8.8"], &["::1"]),
            (
                "2001:db8::/32",
                &["2001:db8:ffff::1"],
                &["2001:db9::1", "10.0.0.1"],
            ),
            ("::/0", &["::1", "2001:db8::1"], &["127.0.0.1"]),
            ("::ffff:10.0.0.1", &["10.0.0.1"], &["10.0.0.2"]),
        ];
        for (list, yes, no) in cases {
            let peers = TrustedPeers::parse(list).unwrap();
            for a in *yes {
                assert!(peers.trusts(ip(a)), "{list:?} should trust {a}");
            }
            for a in *no {
                assert!(!peers.trusts(ip(a)), "{list:?} should not trust {a}");
            }
        }
        assert!(TrustedPeers::parse("").unwrap().is_empty());
        assert!(!TrustedPeers::parse("*").unwrap().is_empty());
    }

    #[test]
    fn bad_lists_say_which_item() {
        for (list, says) in [
            (
                "10.0.0.300",
                "\"10.0.0.300\" is not an IP address or network",
            ),
            ("10.0.0.1/8", "\"10.0.0.1/8\" has host bits set"),
            ("10.0.0.0/33", "prefix length must be at most 32"),
            ("::/129", "prefix length must be at most 128"),
            ("10.0.0.0/", "is not an IP address or network"),
            ("10.0.0.0/+8", "is not an IP address or network"),
            ("localhost", "is not an IP address or network"),
            ("[::1]", "is not an IP address or network"),
            ("127.0.0.1;::1", "is not an IP address or network"),
            ("fe80::1%eth0", "is not an IP address or network"),
        ] {
            let e = TrustedPeers::parse(list).unwrap_err();
            assert!(e.contains(says), "{list:?}: {e}");
        }
    }
}
