//! Tests of the strict rules: no leading zeros in IPv4 octets or prefix lengths, no control
//! or invisible characters in ids and names, no repeated endpoint or client prefix.

// Panicking on a surprise is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::net::IpAddr;

use super::*;

/// Organisation `o` and service `s` (the endpoints given), client `c` (the prefixes given).
fn doc(endpoints: &str, prefixes: &str) -> String {
    format!(
        "[[organisation]]\nid = \"o\"\nname = \"Org\"\n\n\
         [[service]]\nid = \"s\"\norganisation = \"o\"\nname = \"S\"\nendpoints = [{endpoints}]\n\n\
         [[client]]\nid = \"c\"\norganisation = \"o\"\nprefixes = [{prefixes}]\n"
    )
}

const ONE_ENDPOINT: &str = r#"{ address = "203.0.113.10", protocol = "tcp", ports = "443" }"#;
const ONE_PREFIX: &str = r#""198.51.100.0/24""#;

/// The validation messages of an invalid document.
fn messages(text: &str) -> Vec<String> {
    match parse_toml(text) {
        Err(PolicyError::Invalid { errors, .. }) => {
            errors.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The one message of `text`.
fn message(text: &str) -> String {
    let all = messages(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

fn endpoint_message(address: &str) -> String {
    message(&doc(
        &format!(r#"{{ address = "{address}", protocol = "any" }}"#),
        ONE_PREFIX,
    ))
}

const AMBIGUOUS: &str = "has leading zeros, which are ambiguous (octal or decimal?)";

#[test]
fn leading_zeros_in_octets_are_refused_with_or_without_a_length() {
    // The prefix form used to be read as 198.51.100.10 while the bare address was refused.
    for text in ["198.051.100.010/32", "198.051.100.010"] {
        assert_eq!(
            endpoint_message(text),
            format!(
                "service \"s\" (service[0]) endpoint[0]: field `address`: \"{text}\": IPv4 octet \"051\" {AMBIGUOUS}; write it without them"
            )
        );
    }
    assert!(endpoint_message("203.0.113.00").contains("IPv4 octet \"00\""));
    assert!(endpoint_message("0203.0.113.1/32").contains("IPv4 octet \"0203\""));
}

#[test]
fn leading_zeros_are_refused_in_client_and_infrastructure_prefixes() {
    assert_eq!(
        message(&doc(
            ONE_ENDPOINT,
            r#""198.51.100.0/24", "198.051.100.0/24""#
        )),
        format!(
            "client \"c\" (client[0]): field `prefixes`: \"198.051.100.0/24\": IPv4 octet \"051\" {AMBIGUOUS}; write it without them"
        )
    );
    let infra = format!(
        "{}\n[[infrastructure]]\nprefix = \"192.0.2.0/024\"\n",
        doc(ONE_ENDPOINT, ONE_PREFIX)
    );
    assert_eq!(
        message(&infra),
        format!(
            "infrastructure[0]: field `prefix`: \"192.0.2.0/024\": prefix length \"024\" {AMBIGUOUS}; write it without them"
        )
    );
}

#[test]
fn ipv4_embedded_in_ipv6_is_as_strict() {
    assert!(
        endpoint_message("::ffff:198.051.100.10").contains("IPv4 octet \"051\" has leading zeros")
    );
    assert!(endpoint_message("2001:db8::/064").contains("prefix length \"064\" has leading zeros"));
}

#[test]
fn zero_alone_and_ipv6_hex_groups_are_fine() {
    let p = parse_toml(&doc(
        r#"{ address = "0.0.0.0/0", protocol = "any" },
           { address = "2001:0db8:0000::/48", protocol = "any" },
           { address = "::ffff:198.51.100.0/120", protocol = "any" },
           { address = "203.0.113.0", protocol = "any" }"#,
        r#""10.0.0.0/8", "198.51.100.0/24""#,
    ))
    .unwrap();
    let addresses: Vec<String> = p.services[0]
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(
        addresses,
        [
            "0.0.0.0/0",
            "2001:db8::/48",
            "::ffff:198.51.100.0/120",
            "203.0.113.0/32"
        ]
    );
}

#[test]
fn parse_net_and_parse_addr() {
    let net = |t: &str| parse_net(t);
    assert_eq!(
        net("198.51.100.7/24").unwrap().to_string(),
        "198.51.100.7/24"
    );
    assert_eq!(net("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
    assert_eq!(
        net("198.051.100.010/32"),
        Err(AddressError::LeadingZeros {
            text: "198.051.100.010/32".into(),
            part: "IPv4 octet",
            digits: "051".into(),
        })
    );
    // Other mistakes keep the plain message, even with a zero-led octet in them.
    for bad in [
        "198.051.100",
        "198.51.100.0256",
        " 198.51.100.1",
        "198.51.100.1 ",
        "198.51.100.0/33",
        "198.51.100.0/",
        "198.51.100.0/+8",
        "2001:db8::/129",
        "00db8::1",
        "::00010",
        "",
    ] {
        assert_eq!(
            net(bad),
            Err(AddressError::Syntax { text: bad.into() }),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse_addr("198.51.100.1"),
        Ok(IpAddr::from([198, 51, 100, 1]))
    );
    assert!(matches!(
        parse_addr("010.0.0.1"),
        Err(AddressError::LeadingZeros { .. })
    ));
    assert!(matches!(
        parse_addr("198.51.100.0/24"),
        Err(AddressError::Syntax { .. })
    ));
}

#[test]
fn control_characters_in_ids_are_refused() {
    let org = |id: &str| {
        message(&format!(
            "[[organisation]]\nid = \"{id}\"\nname = \"Org\"\n"
        ))
    };
    assert_eq!(
        org(r"a\u0007b"),
        "organisation \"a\\u{7}b\" (organisation[0]): field `id`: contains the control character '\\u{7}' (U+0007) at character 2; control characters are not allowed"
    );
    // A trailing newline or tab is reported as a control character, not also as white space.
    assert!(org(r"ouh\n").contains("'\\n' (U+000A) at character 4"));
    assert!(org(r"a\tb").contains("'\\t' (U+0009)"));
    assert!(org(r"a\u007f").contains("(U+007F)"));
    assert!(org(r"a\u0085").contains("(U+0085)"));
    let service = message(&format!(
        "[[organisation]]\nid = \"o\"\nname = \"Org\"\n[[service]]\nid = \"s\\u001b[31m\"\norganisation = \"o\"\nname = \"S\"\nendpoints = [{ONE_ENDPOINT}]\n"
    ));
    assert!(
        service.contains("field `id`: contains the control character '\\u{1b}'"),
        "{service}"
    );
    let client = message(&format!(
        "[[organisation]]\nid = \"o\"\nname = \"Org\"\n[[client]]\nid = \"c\\r\"\norganisation = \"o\"\nprefixes = [{ONE_PREFIX}]\n"
    ));
    assert!(client.contains("field `id`: contains the control character '\\r'"));
    let alias =
        message("[[port_alias]]\nname = \"\\u0007dicom\"\nprotocol = \"tcp\"\nports = \"104\"\n");
    assert_eq!(
        alias,
        "port_alias \"\\u{7}dicom\" (port_alias[0]): field `name`: contains the control character '\\u{7}' (U+0007) at character 1; control characters are not allowed"
    );
}

#[test]
fn control_characters_in_names_are_refused() {
    assert_eq!(
        message("[[organisation]]\nid = \"o\"\nname = \"Region\\tSyd\"\n"),
        "organisation \"o\" (organisation[0]): field `name`: contains the control character '\\t' (U+0009) at character 7; control characters are not allowed"
    );
    let service = doc(ONE_ENDPOINT, ONE_PREFIX).replace("name = \"S\"", "name = \"S\\nfake line\"");
    assert_eq!(
        message(&service),
        "service \"s\" (service[0]): field `name`: contains the control character '\\n' (U+000A) at character 2; control characters are not allowed"
    );
}

#[test]
fn invisible_characters() {
    // In ids: anything that prints as nothing, and text reordering.
    for c in ["\\u200B", "\\u200E", "\\uFEFF", "\\u202E", "\\u2066"] {
        let m = message(&format!(
            "[[organisation]]\nid = \"a{c}b\"\nname = \"Org\"\n"
        ));
        assert!(
            m.contains("field `id`: contains the invisible formatting character U+")
                && m.contains("at character 2"),
            "{c}: {m}"
        );
    }
    // In names: reordering only; joiners and marks are part of writing some names.
    let m = message("[[organisation]]\nid = \"o\"\nname = \"abc\\u202Edef\"\n");
    assert!(
        m.contains(
            "field `name`: contains the invisible formatting character U+202E at character 4"
        ),
        "{m}"
    );
    let p = parse_toml(
        "[[organisation]]\nid = \"o\"\nname = \"\\u0915\\u094D\\u200D\\u0937 \\u05D0\\u200F\"\n",
    )
    .unwrap();
    assert_eq!(
        p.organisations[0].name,
        "\u{915}\u{94d}\u{200d}\u{937} \u{5d0}\u{200f}"
    );
    // Plain non-ASCII letters are fine in ids.
    assert!(parse_toml("[[organisation]]\nid = \"rigshospitalet-ø\"\nname = \"Ø\"\n").is_ok());
}

#[test]
fn duplicate_endpoints_are_refused() {
    let dup = |endpoints: &str| message(&doc(endpoints, ONE_PREFIX));
    assert_eq!(
        dup(&format!(
            "{ONE_ENDPOINT}, {{ address = \"203.0.113.11\", protocol = \"tcp\", ports = \"443\" }}, {ONE_ENDPOINT}"
        )),
        "service \"s\" (service[0]) endpoint[2]: field `endpoints`: duplicate endpoint 203.0.113.10/32 tcp 443: the same address, protocol and ports as endpoint[0]; remove one"
    );
    // Equal after parsing: a bare address and its /32, an integer port, ports in another order.
    assert!(
        dup(
            r#"{ address = "203.0.113.10", protocol = "tcp", ports = [443, 80] },
           { address = "203.0.113.10/32", protocol = "tcp", ports = ["80", "443"] }"#
        )
        .contains("endpoint[1]: field `endpoints`: duplicate endpoint 203.0.113.10/32 tcp 80,443")
    );
    assert!(
        dup(r#"{ address = "2001:db8::/32", protocol = "icmpv6" },
           { address = "2001:0db8::/32", protocol = "icmpv6" }"#)
        .contains("duplicate endpoint 2001:db8::/32 icmpv6: the same")
    );
    assert!(
        dup(r#"{ address = "203.0.113.0/24", protocol = "udp" },
           { address = "203.0.113.0/24", protocol = "udp", ports = "0-65535" }"#)
        .contains("duplicate endpoint 203.0.113.0/24 udp all ports")
    );
    // An alias and the ports it stands for.
    let text = format!(
        "[[port_alias]]\nname = \"dicom\"\nprotocol = \"tcp\"\nports = [\"104\", \"11112\"]\n{}",
        doc(
            r#"{ address = "203.0.113.20", protocol = "tcp", ports = "dicom" },
               { address = "203.0.113.20", protocol = "tcp", ports = ["11112", "104"] }"#,
            ONE_PREFIX
        )
    );
    assert!(message(&text).contains("duplicate endpoint 203.0.113.20/32 tcp 104,11112"));
}

#[test]
fn endpoints_that_differ_are_kept() {
    let p = parse_toml(&doc(
        r#"{ address = "203.0.113.10", protocol = "tcp", ports = "443" },
           { address = "203.0.113.10", protocol = "tcp", ports = "8443" },
           { address = "203.0.113.10", protocol = "udp", ports = "443" },
           { address = "203.0.113.10", protocol = "any" },
           { address = "203.0.113.0/24", protocol = "tcp", ports = "443" }"#,
        ONE_PREFIX,
    ))
    .unwrap();
    assert_eq!(p.services[0].endpoints.len(), 5);
}

#[test]
fn duplicate_client_prefixes_are_refused() {
    assert_eq!(
        message(&doc(
            ONE_ENDPOINT,
            r#""198.51.100.0/24", "2001:db8:200::/48", "2001:0db8:0200::/48""#
        )),
        "client \"c\" (client[0]): field `prefixes`: duplicate prefix 2001:db8:200::/48: prefixes[2] is the same as prefixes[1]; remove one"
    );
    assert!(
        message(&doc(ONE_ENDPOINT, r#""198.51.100.1", "198.51.100.1/32""#))
            .contains("duplicate prefix 198.51.100.1/32: prefixes[1] is the same as prefixes[0]")
    );
    // The same prefix in two clients is two clients' business, not a repeat.
    let two = format!(
        "{}\n[[client]]\nid = \"d\"\norganisation = \"o\"\nprefixes = [{ONE_PREFIX}]\n",
        doc(ONE_ENDPOINT, ONE_PREFIX)
    );
    assert_eq!(parse_toml(&two).unwrap().clients.len(), 2);
}

#[test]
fn repeated_infrastructure_entries_are_kept() {
    // The loader appends its configuration's entries to the policy's, and writes and reads the
    // result back (sync state): the same entry in both must not make that fail.
    let text = format!(
        "{}\n[[infrastructure]]\nprefix = \"192.0.2.0/28\"\n[[infrastructure]]\nprefix = \"192.0.2.0/28\"\n",
        doc(ONE_ENDPOINT, ONE_PREFIX)
    );
    assert_eq!(parse_toml(&text).unwrap().infrastructure.len(), 2);
}

#[test]
fn json_documents_get_the_same_rules() {
    let text = r#"{"organisation": [{"id": "o\u0007", "name": "Org"}],
        "service": [{"id": "s", "organisation": "o\u0007", "name": "S", "endpoints": [
            {"address": "198.051.100.010/32", "protocol": "any"}]}]}"#;
    let errors = match parse_json(text) {
        Err(PolicyError::Invalid { errors, .. }) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    };
    let kinds: Vec<&ValidationErrorKind> = errors.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [
                ValidationErrorKind::ControlCharacter {
                    ch: '\u{7}',
                    position: 2
                },
                ValidationErrorKind::BadAddress {
                    error: AddressError::LeadingZeros { .. }
                }
            ]
        ),
        "{errors:#?}"
    );
}

#[test]
fn synthetic_policies_are_valid_at_the_largest_shape() {
    // The most clients and services `Shape::scaled` makes: no repeated endpoint or prefix.
    let shape = crate::tools::policies::Shape {
        agreements: 1,
        clients: 60_000,
        services: 60_000,
    };
    let p = crate::tools::policies::policy(shape).unwrap();
    let text = crate::db::text::policy_json(&p).to_string();
    assert_eq!(parse_json(&text).unwrap(), p);
}
