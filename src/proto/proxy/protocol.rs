//! HAProxy's PROXY protocol header (versions 1 and 2), read before anything
//! else on a connection from a trusted load balancer.
//!
//! RULES (haproxy.org/download/2.8/doc/proxy-protocol.txt): the header is
//! the first bytes of the connection, before TLS or HTTP.
//!
//! - Version 1 (§2.1): the text line `PROXY TCP4|TCP6 <src> <dst> <sport>
//!   <dport>\r\n`, or `PROXY UNKNOWN ...\r\n`, 107 bytes at most.
//! - Version 2 (§2.2): the 12-byte signature, the version and command byte
//!   (version 2; `LOCAL` or `PROXY`), the family and transport byte, the
//!   length of what follows (big endian), the addresses, then TLVs, which
//!   are skipped here.
//!
//! `LOCAL` (the proxy's own health checks), `UNKNOWN`, `AF_UNSPEC`,
//! `AF_UNIX` and transports other than a stream keep the connection's own
//! addresses (§2.2: "the receiver must ... use the real connection
//! endpoints"). Values the spec leaves unassigned are refused.
//!
//! Theory of operation: `parse` is given every byte read so far and says
//! `Partial` (every one of them is header: read on), `Complete` with the
//! header's length (exactly that many belong to it; what follows is the
//! client's), or why the bytes are no PROXY header. The caller can thus
//! consume what it has looked at without ever reading past the header.
//!
//! What it does not do: I/O, timeouts, or decide whom to believe (only
//! trusted peers may send a header; the runtime checks that first).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature (§2.2).
pub(crate) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 line, CRLF included (§2.1: "a receiver knows it
/// must not read more than 107 bytes").
pub(crate) const V1_MAX: usize = 107;

/// The longest version 2 header accepted: the 16 fixed bytes and 4080 of
/// addresses and TLVs. The length field allows 65535; load balancers send
/// far less (addresses at most 216 bytes, AWS, GCP and Azure add a TLV of
/// tens of bytes; nginx refuses anything longer than its 1 KiB client
/// header buffer). The bound is what an unfinished header may hold per
/// connection.
pub(crate) const V2_MAX: usize = 4096;

/// What a complete header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Addresses {
    /// The client's address and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The connection's own addresses stand (`LOCAL`, `UNKNOWN`, a family
    /// or transport with no TCP addresses).
    Own,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not complete: every byte given so far is part of the header.
    Partial,
    /// The header is the first `len` bytes.
    Complete { len: usize, addresses: Addresses },
}

/// Why the first bytes are not a PROXY header (the connection is closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadHeader(pub(crate) &'static str);

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

const V1_PREFIX: &[u8] = b"PROXY ";

/// The PROXY header at the start of `bytes` (every byte read so far).
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, BadHeader> {
    let starts = |prefix: &[u8]| {
        let n = bytes.len().min(prefix.len());
        bytes[..n] == prefix[..n]
    };
    if bytes.is_empty() {
        Ok(Parsed::Partial)
    } else if starts(V1_PREFIX) {
        parse_v1(bytes)
    } else if starts(&V2_SIGNATURE) {
        parse_v2(bytes)
    } else {
        Err(BadHeader(
            "the connection does not start with a PROXY protocol header",
        ))
    }
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, BadHeader> {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        if window.len() == V1_MAX {
            return Err(BadHeader("PROXY v1 line longer than 107 bytes"));
        }
        // A lone LF, or any byte no line has, refuses at once.
        if window
            .iter()
            .any(|&b| b == b'\n' || !(b == b'\r' || (b' '..=b'~').contains(&b)))
        {
            return Err(BadHeader("PROXY v1 line with a byte it cannot have"));
        }
        return Ok(Parsed::Partial);
    };
    let len = cr + 2;
    let line = std::str::from_utf8(&bytes[V1_PREFIX.len()..cr])
        .map_err(|_| BadHeader("PROXY v1 line is not ASCII"))?;
    let mut words = line.split(' ');
    let addresses = match words.next() {
        // §2.1: "the receiver must ignore anything presented before the
        // CRLF is found".
        Some("UNKNOWN") => Addresses::Own,
        Some(family @ ("TCP4" | "TCP6")) => {
            let v6 = family == "TCP6";
            let mut next = || {
                words
                    .next()
                    .ok_or(BadHeader("PROXY v1 line is missing fields"))
            };
            let source_ip = v1_ip(next()?, v6)?;
            let destination_ip = v1_ip(next()?, v6)?;
            let source_port = v1_port(next()?)?;
            let destination_port = v1_port(next()?)?;
            if words.next().is_some() {
                return Err(BadHeader("PROXY v1 line has too many fields"));
            }
            Addresses::Proxied {
                source: SocketAddr::new(source_ip, source_port),
                destination: SocketAddr::new(destination_ip, destination_port),
            }
        }
        _ => return Err(BadHeader("PROXY v1 line names no known protocol")),
    };
    Ok(Parsed::Complete { len, addresses })
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, BadHeader> {
    let ip = match v6 {
        false => text.parse::<Ipv4Addr>().map(IpAddr::V4),
        true => text.parse::<Ipv6Addr>().map(IpAddr::V6),
    };
    ip.map_err(|_| BadHeader("PROXY v1 line has a bad address"))
}

/// §2.1: a decimal number, 0 to 65535.
fn v1_port(text: &str) -> Result<u16, BadHeader> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadHeader("PROXY v1 line has a bad port"));
    }
    text.parse()
        .map_err(|_| BadHeader("PROXY v1 line has a bad port"))
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, BadHeader> {
    if bytes.len() < 16 {
        return Ok(Parsed::Partial);
    }
    let version = bytes[12] >> 4;
    let command = bytes[12] & 0x0F;
    if version != 2 {
        return Err(BadHeader("PROXY v2 header of another version"));
    }
    let local = match command {
        0x0 => true,
        0x1 => false,
        _ => return Err(BadHeader("PROXY v2 header with an unknown command")),
    };
    let family = bytes[13] >> 4;
    let transport = bytes[13] & 0x0F;
    if family > 3 || transport > 2 {
        return Err(BadHeader(
            "PROXY v2 header with an unknown family or transport",
        ));
    }
    let len = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if len > V2_MAX {
        return Err(BadHeader("PROXY v2 header longer than 4096 bytes"));
    }
    if bytes.len() < len {
        return Ok(Parsed::Partial);
    }
    let block = &bytes[16..len];
    // The address block's size by family (§2.2): INET, INET6, UNIX.
    let needed = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if !local && block.len() < needed {
        return Err(BadHeader(
            "PROXY v2 address block shorter than its family's",
        ));
    }
    // STREAM: TCP (or a stream over UNIX, which has no IP address).
    let addresses = match (local, family, transport) {
        (false, 1, 1) => {
            let ip = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&block[at..at + 4]).expect("4"));
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (false, 2, 1) => {
            let ip =
                |at: usize| IpAddr::from(<[u8; 16]>::try_from(&block[at..at + 16]).expect("16"));
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => Addresses::Own,
    };
    Ok(Parsed::Complete { len, addresses })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(source: &str, destination: &str) -> Addresses {
        Addresses::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// A v2 header: command, family/transport byte, address block, TLVs.
    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&(block.len() as u16).to_be_bytes());
        header.extend_from_slice(block);
        header
    }

    fn inet_block() -> Vec<u8> {
        let mut block = vec![203, 0, 113, 7, 192, 0, 2, 1];
        block.extend_from_slice(&4711u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block
    }

    fn inet6_block() -> Vec<u8> {
        let source: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let destination: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut block = source.octets().to_vec();
        block.extend_from_slice(&destination.octets());
        block.extend_from_slice(&4711u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block
    }

    fn good_headers() -> Vec<(Vec<u8>, Addresses)> {
        let mut with_tlvs = inet_block();
        // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com": skipped.
        with_tlvs.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
        with_tlvs.extend_from_slice(&[0x02, 0, 11]);
        with_tlvs.extend_from_slice(b"example.com");
        vec![
            (
                b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n".to_vec(),
                proxied("203.0.113.7:4711", "192.0.2.1:443"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n".to_vec(),
                proxied("[2001:db8::1]:4711", "[2001:db8::2]:443"),
            ),
            (
                b"PROXY TCP6 ::ffff:203.0.113.7 ::1 65535 0\r\n".to_vec(),
                proxied("[::ffff:203.0.113.7]:65535", "[::1]:0"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), Addresses::Own),
            (
                b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".to_vec(),
                Addresses::Own,
            ),
            (
                v2(0x1, 0x11, &inet_block()),
                proxied("203.0.113.7:4711", "192.0.2.1:443"),
            ),
            (
                v2(0x1, 0x11, &with_tlvs),
                proxied("203.0.113.7:4711", "192.0.2.1:443"),
            ),
            (
                v2(0x1, 0x21, &inet6_block()),
                proxied("[2001:db8::1]:4711", "[2001:db8::2]:443"),
            ),
            // LOCAL: the proxy's own connection (health checks).
            (v2(0x0, 0x00, &[]), Addresses::Own),
            (v2(0x0, 0x11, &inet_block()), Addresses::Own),
            // UNSPEC, UNIX, and datagrams: the connection's own addresses.
            (v2(0x1, 0x00, &[]), Addresses::Own),
            (v2(0x1, 0x31, &[0; 216]), Addresses::Own),
            (v2(0x1, 0x12, &inet_block()), Addresses::Own),
        ]
    }

    #[test]
    fn whole_byte_by_byte_and_with_what_follows() {
        for (header, addresses) in good_headers() {
            let complete = Parsed::Complete {
                len: header.len(),
                addresses,
            };
            assert_eq!(parse(&header), Ok(complete), "{header:?}");
            for n in 0..header.len() {
                assert_eq!(
                    parse(&header[..n]),
                    Ok(Parsed::Partial),
                    "{header:?} to {n}"
                );
            }
            let mut more = header.clone();
            more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(parse(&more), Ok(complete), "{header:?} and a request");
        }
    }

    #[test]
    fn bad_headers() {
        let mut long_v1 = b"PROXY UNKNOWN ".to_vec();
        long_v1.resize(V1_MAX, b'x');
        let mut long_v2 = v2(0x1, 0x11, &inet_block());
        long_v2[14..16].copy_from_slice(&((V2_MAX - 15) as u16).to_be_bytes());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "does not start"),
            (b"\x16\x03\x01".to_vec(), "does not start"),
            (b"PROXY\r\n".to_vec(), "does not start"),
            (
                b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                "does not start",
            ),
            (long_v1, "longer than 107"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_vec(), "cannot have"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00".to_vec(),
                "cannot have",
            ),
            (
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                "no known protocol",
            ),
            (b"PROXY \r\n".to_vec(), "no known protocol"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
                "missing fields",
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n".to_vec(), "too many"),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                "bad address",
            ),
            (
                b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n".to_vec(),
                "bad address",
            ),
            (
                b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n".to_vec(),
                "bad address",
            ),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n".to_vec(), "bad address"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".to_vec(),
                "bad port",
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n".to_vec(), "bad port"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n".to_vec(), "too many"),
            (
                [&V2_SIGNATURE[..], &[0x11, 0x11, 0, 0]].concat(),
                "another version",
            ),
            (
                [&V2_SIGNATURE[..], &[0x22, 0x11, 0, 0]].concat(),
                "unknown command",
            ),
            (
                [&V2_SIGNATURE[..], &[0x21, 0x41, 0, 0]].concat(),
                "unknown family",
            ),
            (
                [&V2_SIGNATURE[..], &[0x21, 0x13, 0, 0]].concat(),
                "unknown family",
            ),
            (long_v2, "longer than 4096"),
            (
                v2(0x1, 0x11, &inet_block()[..11]),
                "shorter than its family's",
            ),
            (v2(0x1, 0x21, &inet_block()), "shorter than its family's"),
            (v2(0x1, 0x31, &[0; 100]), "shorter than its family's"),
        ];
        for (bytes, says) in cases {
            let e = parse(&bytes).expect_err(&format!("{bytes:?}"));
            assert!(e.0.contains(says), "{bytes:?}: {e}");
        }
        // The longest v2 header is accepted, one byte longer is not.
        let longest = v2(0x1, 0x11, &vec![0; V2_MAX - 16]);
        assert!(matches!(
            parse(&longest),
            Ok(Parsed::Complete { len: V2_MAX, .. })
        ));
    }
}
