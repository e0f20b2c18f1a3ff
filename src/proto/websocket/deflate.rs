//! permessage-deflate negotiation (RFC 7692 §5, §7.1).
//!
//! What it does: reads the client's permessage-deflate offers from
//! `Sec-WebSocket-Extensions`, picks the first one this server can honour,
//! and writes the response's extension value. What it does not do:
//! compress or inflate (the frame codec does, given the agreed value), or
//! look at other extensions (none is supported; they are declined by being
//! left out of the response, RFC 6455 §9.1).
//!
//! The rules (RFC 7692 §5.1, §7.1):
//! - each `permessage-deflate` element is one offer, tried in the client's
//!   order; the response accepts at most one; names are compared as
//!   registered, in lower case (RFC 7692 §7, §9);
//! - an offer with an unknown parameter, a parameter twice, a value out of
//!   range (window bits are 8..=15 without leading zeros; only
//!   `client_max_window_bits` may have no value) or a malformed parameter is
//!   declined, and the next one is tried: a bad offer never fails the
//!   handshake, at worst the connection goes without compression;
//! - every well-formed offer can be honoured, window bits 8 included. No
//!   zlib compresses with a 256-byte window: asked for 8 bits, zlib and
//!   zlib-rs deflate with 9 (raw deflateInit2 refuses 8, flate2 takes
//!   9..=15). But a deflater never reaches back more than its window less
//!   MIN_LOOKAHEAD (262) bytes (`MAX_DIST` in zlib, `max_dist` in zlib-rs,
//!   which every strategy checks and `tally_dist` asserts): 250 bytes with
//!   9 bits, within what a client holding a 256-byte window can read. So
//!   `server_max_window_bits=8` is answered with 8 and compressed with 9;
//!   and `client_max_window_bits=8` bounds what the client sends, which an
//!   inflater with any larger window reads (zlib manual, inflateInit2), the
//!   9-bit one included;
//! - what the response says: `server_no_context_takeover` and
//!   `server_max_window_bits` when offered (accepting them means echoing
//!   them, §7.1.1.1, §7.1.2.1); `client_no_context_takeover` when offered
//!   (optional, §7.1.1.2; it lets the inflater drop its window between
//!   messages); `client_max_window_bits` with the client's own value when it
//!   gave one (optional, §7.1.2.2; a smaller inflate window), never when the
//!   offer did not name it.

use std::fmt::Write as _;

use http::HeaderValue;

use crate::proto::websocket::list::{Extension, Param};

/// The extension's registered name (RFC 7692 §9).
pub(crate) const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The LZ77 window when no parameter limits it: 32 KiB (RFC 7692 §7.1.2).
const DEFAULT_WINDOW_BITS: u8 = 15;

/// The client's well-formed permessage-deflate offers, in its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeflateOffer {
    offers: Vec<DeflateParams>,
}

/// The parameters of one offer (RFC 7692 §7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct DeflateParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `server_max_window_bits=N`: the largest window the server may use.
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientWindow,
}

/// What an offer says about `client_max_window_bits` (RFC 7692 §7.1.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ClientWindow {
    /// Not named: the response must not name it either.
    #[default]
    Absent,
    /// Named without a value: the client accepts a limit from the server.
    Accepted,
    /// Named with a value: the client's window is at most this.
    Limit(u8),
}

impl DeflateOffer {
    /// The permessage-deflate offers among `extensions`, without those that
    /// are malformed; `None` when no usable one is left.
    pub(crate) fn from_extensions<'a, 'b: 'a>(
        extensions: impl IntoIterator<Item = &'a Extension<'b>>,
    ) -> Option<DeflateOffer> {
        let offers: Vec<DeflateParams> = extensions
            .into_iter()
            .filter(|extension| extension.name == PERMESSAGE_DEFLATE)
            .filter_map(|extension| DeflateParams::parse(extension.params.as_ref().ok()?))
            .collect();
        (!offers.is_empty()).then_some(DeflateOffer { offers })
    }
}

impl DeflateParams {
    /// `None` for an unknown, repeated or out-of-range parameter (RFC 7692
    /// §5.1: the server declines such an offer).
    fn parse(params: &[Param<'_>]) -> Option<DeflateParams> {
        let mut offer = DeflateParams::default();
        for param in params {
            let value = param.value.as_deref();
            match param.name {
                "server_no_context_takeover" if value.is_none() => {
                    set_once(&mut offer.server_no_context_takeover)?;
                }
                "client_no_context_takeover" if value.is_none() => {
                    set_once(&mut offer.client_no_context_takeover)?;
                }
                "server_max_window_bits" if offer.server_max_window_bits.is_none() => {
                    offer.server_max_window_bits = Some(window_bits(value?)?);
                }
                "client_max_window_bits"
                    if offer.client_max_window_bits == ClientWindow::Absent =>
                {
                    offer.client_max_window_bits = match value {
                        None => ClientWindow::Accepted,
                        Some(value) => ClientWindow::Limit(window_bits(value)?),
                    };
                }
                _ => return None,
            }
        }
        Some(offer)
    }
}

fn set_once(flag: &mut bool) -> Option<()> {
    if *flag {
        return None;
    }
    *flag = true;
    Some(())
}

/// 8..=15, "a decimal integer value without leading zeroes" (RFC 7692
/// §7.1.2.1, §7.1.2.2).
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

/// The permessage-deflate settings agreed for a connection; the response's
/// `Sec-WebSocket-Extensions` value is [`DeflateAgreement::header_value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeflateAgreement {
    /// The largest window the server compresses with (8..=15); a deflater
    /// for 8 is built with 9, the least flate2 takes, whose output a
    /// 256-byte window reads (see the module's rules).
    pub(crate) server_max_window_bits: u8,
    /// The largest window the client compresses with (8..=15); an inflater
    /// for 8 is built with 9, the least flate2 takes, which reads it.
    pub(crate) client_max_window_bits: u8,
    /// The server resets its compressor after each message.
    pub(crate) server_no_context_takeover: bool,
    /// The client resets its compressor after each message, so the server
    /// may reset its inflater.
    pub(crate) client_no_context_takeover: bool,
    /// The offer named `server_max_window_bits`, so the response names it,
    /// even at 15 (RFC 7692 §7.1.2.1: a server accepts it "by including"
    /// it).
    pub(crate) server_max_window_bits_offered: bool,
}

impl DeflateAgreement {
    /// The response's `Sec-WebSocket-Extensions` value: the parameters that
    /// differ from the defaults, and `server_max_window_bits` when offered.
    pub(crate) fn header_value(&self) -> HeaderValue {
        let mut value = String::from(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits_offered || self.server_max_window_bits != DEFAULT_WINDOW_BITS
        {
            let _ = write!(
                value,
                "; server_max_window_bits={}",
                self.server_max_window_bits
            );
        }
        if self.client_max_window_bits != DEFAULT_WINDOW_BITS {
            let _ = write!(
                value,
                "; client_max_window_bits={}",
                self.client_max_window_bits
            );
        }
        HeaderValue::try_from(value).expect("tokens, '; ' and digits make a valid field value")
    }
}

/// The first offer this server can honour, as agreed settings; `None` when
/// it declines them all (the connection then goes uncompressed). Every
/// well-formed offer can be honoured (see the module's rules), so this is
/// the first one.
pub(crate) fn negotiate(offer: &DeflateOffer) -> Option<DeflateAgreement> {
    offer.offers.first().map(|params| {
        let server_max_window_bits = params.server_max_window_bits;
        DeflateAgreement {
            server_max_window_bits: server_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS),
            client_max_window_bits: match params.client_max_window_bits {
                ClientWindow::Limit(bits) => bits,
                ClientWindow::Absent | ClientWindow::Accepted => DEFAULT_WINDOW_BITS,
            },
            server_no_context_takeover: params.server_no_context_takeover,
            client_no_context_takeover: params.client_no_context_takeover,
            server_max_window_bits_offered: server_max_window_bits.is_some(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map;
    use crate::proto::websocket::list::extensions;

    fn offer(fields: &[&str]) -> Option<DeflateOffer> {
        let fields: Vec<_> = fields
            .iter()
            .map(|value| ("sec-websocket-extensions", *value))
            .collect();
        let headers = header_map(&fields);
        let found: Vec<_> = extensions(&headers).collect();
        DeflateOffer::from_extensions(&found)
    }

    /// The response value negotiated from these field lines, or `None` when
    /// every offer is declined.
    fn response(fields: &[&str]) -> Option<String> {
        let agreement = negotiate(&offer(fields)?)?;
        Some(agreement.header_value().to_str().unwrap().to_owned())
    }

    #[test]
    fn autobahn_style_offers() {
        // Autobahn's 12.* and 13.* cases send the first seven (its client's
        // `acceptMaxWindowBits`, on by default, is a bare
        // `client_max_window_bits`, `requestNoContextTakeover` is
        // `server_no_context_takeover`, `requestMaxWindowBits=N`
        // `server_max_window_bits=N`); then other clients' forms.
        for (fields, expected) in [
            // 12.*, 13.1.*
            (
                &["permessage-deflate; client_max_window_bits"][..],
                "permessage-deflate",
            ),
            // 13.2.*
            (
                &["permessage-deflate; client_max_window_bits; server_no_context_takeover"],
                "permessage-deflate; server_no_context_takeover",
            ),
            // 13.3.*
            (
                &["permessage-deflate; client_max_window_bits; server_max_window_bits=8"],
                "permessage-deflate; server_max_window_bits=8",
            ),
            // 13.4.*
            (
                &["permessage-deflate; client_max_window_bits; server_max_window_bits=15"],
                "permessage-deflate; server_max_window_bits=15",
            ),
            // 13.5.*
            (
                &["permessage-deflate; client_max_window_bits; server_no_context_takeover; \
                   server_max_window_bits=8"],
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
            ),
            // 13.6.*
            (
                &["permessage-deflate; client_max_window_bits; server_no_context_takeover; \
                   server_max_window_bits=15"],
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
            ),
            // 13.7.*: several offers, the first is taken.
            (
                &["permessage-deflate; client_max_window_bits; server_no_context_takeover; \
                   server_max_window_bits=8, \
                   permessage-deflate; client_max_window_bits; server_no_context_takeover, \
                   permessage-deflate; client_max_window_bits"],
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
            ),
            (&["permessage-deflate"], "permessage-deflate"),
            (
                &["permessage-deflate; client_no_context_takeover"],
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                &["permessage-deflate; client_max_window_bits; server_max_window_bits=9"],
                "permessage-deflate; server_max_window_bits=9",
            ),
            (
                &["permessage-deflate; server_no_context_takeover; client_max_window_bits; server_max_window_bits=9"],
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            ),
            (
                &["permessage-deflate; client_max_window_bits=9"],
                "permessage-deflate; client_max_window_bits=9",
            ),
            (
                &["permessage-deflate; client_max_window_bits=15; client_no_context_takeover"],
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                &["permessage-deflate; client_max_window_bits=8"],
                "permessage-deflate; client_max_window_bits=8",
            ),
            (
                // A malformed offer is skipped, the next usable one taken.
                &["permessage-deflate; server_max_window_bits=7, \
                   permessage-deflate; server_max_window_bits=12, permessage-deflate"],
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                // Offers on several field lines, after another extension.
                &["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=11"],
                "permessage-deflate; server_max_window_bits=11",
            ),
            (
                // A quoted value (RFC 7692 §7.1, RFC 6455 §9.1).
                &["permessage-deflate; server_max_window_bits=\"10\""],
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                &["permessage-deflate; client_max_window_bits = \"12\"; server_no_context_takeover"],
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
            ),
        ] {
            assert_eq!(response(fields).as_deref(), Some(expected), "{fields:?}");
        }
    }

    #[test]
    fn unusable_offers_are_skipped() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=1 0",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; Server_No_Context_Takeover",
            "permessage-deflate; mystery",
            "permessage-deflate; mystery=1",
            "permessage-deflate;",
            "permessage-deflate; ; server_no_context_takeover",
            "permessage-deflate; =10",
        ] {
            assert_eq!(offer(&[bad]), None, "{bad}");
            // Never an error for the handshake: the next offer is taken.
            assert_eq!(
                response(&[bad, "permessage-deflate; client_no_context_takeover"]).as_deref(),
                Some("permessage-deflate; client_no_context_takeover"),
                "{bad}"
            );
        }
    }

    #[test]
    fn nothing_usable_means_no_compression() {
        assert_eq!(offer(&[]), None);
        assert_eq!(offer(&["x-webkit-deflate-frame, deflate-frame"]), None);
        assert_eq!(
            response(&["permessage-deflate; x=1, permessage-deflate;"]),
            None
        );
    }

    #[test]
    fn agreement_fields() {
        let found = offer(&[
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=10",
        ])
        .unwrap();
        assert_eq!(
            negotiate(&found),
            Some(DeflateAgreement {
                server_max_window_bits: 12,
                client_max_window_bits: 10,
                server_no_context_takeover: false,
                client_no_context_takeover: true,
                server_max_window_bits_offered: true,
            })
        );
        let plain = negotiate(&offer(&["permessage-deflate"]).unwrap()).unwrap();
        assert_eq!(
            plain,
            DeflateAgreement {
                server_max_window_bits: 15,
                client_max_window_bits: 15,
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits_offered: false,
            }
        );
    }

    #[test]
    fn window_bits_table() {
        for (value, expected) in [
            ("8", Some(8)),
            ("9", Some(9)),
            ("10", Some(10)),
            ("15", Some(15)),
            ("7", None),
            ("16", None),
            ("08", None),
            ("", None),
            ("1", None),
            ("150", None),
        ] {
            assert_eq!(window_bits(value), expected, "{value:?}");
        }
    }
}
