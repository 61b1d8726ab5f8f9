//! Tests of parsing, validation and writing of policy files.

// Panicking on a surprise is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::PathBuf;

use chrono::NaiveDate;
use ipnet::IpNet;

use super::*;

/// The example of docs/semantics.md ("Policy file format"), with the organisation `sds` it refers to, a second agreement and
/// two infrastructure entries.
const SAMPLE: &str = include_str!("../../../tests/fixtures/example-policy.toml");

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn range(lo: u16, hi: u16) -> PortRange {
    PortRange { lo, hi }
}

fn sample_policy() -> Policy {
    PolicyDraft {
        organisations: vec![
            Organisation {
                id: "sds".into(),
                name: "Sundhedsdatastyrelsen".into(),
            },
            Organisation {
                id: "rsyd".into(),
                name: "Region Syddanmark".into(),
            },
        ],
        port_aliases: vec![PortAlias {
            name: "dicom".into(),
            protocol: Protocol::Tcp,
            ports: vec![range(104, 104), range(11112, 11112)],
        }],
        services: vec![Service {
            id: "fmk".into(),
            organisation: "sds".into(),
            name: "Faelles Medicinkort".into(),
            endpoints: vec![
                Endpoint {
                    address: net("203.0.113.10/32"),
                    protocol: Protocol::Tcp,
                    ports: vec![range(443, 443)],
                },
                Endpoint {
                    address: net("2001:db8:10::/64"),
                    protocol: Protocol::Tcp,
                    ports: vec![range(8000, 8100)],
                },
                Endpoint {
                    address: net("203.0.113.20/32"),
                    protocol: Protocol::Tcp,
                    ports: vec![range(104, 104), range(11112, 11112)],
                },
                Endpoint {
                    address: net("203.0.113.30/32"),
                    protocol: Protocol::Icmp,
                    ports: vec![],
                },
            ],
        }],
        clients: vec![Client {
            id: "ouh-ris".into(),
            organisation: "rsyd".into(),
            prefixes: vec![net("198.51.100.0/24"), net("2001:db8:200::/48")],
        }],
        agreements: vec![
            Agreement {
                id: 1001,
                client: "ouh-ris".into(),
                service: "fmk".into(),
                state: AgreementState::Approved,
                expires: NaiveDate::from_ymd_opt(2030, 1, 1),
                vlan: Some(100),
            },
            Agreement {
                id: 1002,
                client: "ouh-ris".into(),
                service: "fmk".into(),
                state: AgreementState::Requested,
                expires: None,
                vlan: None,
            },
        ],
        infrastructure: vec![
            InfraEntry {
                prefix: net("192.0.2.0/28"),
                protocol: Protocol::Tcp,
                ports: vec![range(22, 22), range(179, 179)],
            },
            InfraEntry {
                prefix: net("2001:db8:ffff::1/128"),
                protocol: Protocol::Any,
                ports: vec![],
            },
        ],
    }
    .validate()
    .unwrap()
}

/// The validation messages of an invalid document.
fn messages(text: &str) -> Vec<String> {
    match parse_toml(text) {
        Err(PolicyError::Invalid { errors, .. }) => {
            errors.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The one validation message of `SAMPLE` with `extra` appended.
fn error_with(extra: &str) -> String {
    let all = messages(&format!("{SAMPLE}\n{extra}"));
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

/// A service `lab` of `rsyd` with the given endpoint list (becomes `service[1]`).
fn lab_with(endpoints: &str) -> String {
    error_with(&format!(
        "[[service]]\nid = \"lab\"\norganisation = \"rsyd\"\nname = \"Lab\"\nendpoints = [{endpoints}]\n"
    ))
}

/// An agreement 1003 with extra lines (becomes `agreement[2]`).
fn agreement_with(lines: &str) -> String {
    let base = [
        ("client", "client = \"ouh-ris\""),
        ("service", "service = \"fmk\""),
        ("state", "state = \"approved\""),
    ];
    let mut doc = String::from("[[agreement]]\nid = 1003\n");
    for (key, line) in base {
        if !lines.contains(&format!("{key} =")) {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    doc.push_str(lines);
    error_with(&doc)
}

#[test]
fn design_example_parses() {
    assert_eq!(parse_toml(SAMPLE).unwrap(), sample_policy());
}

#[test]
fn empty_document_is_an_empty_policy() {
    assert_eq!(parse_toml("").unwrap(), Policy::default());
    assert_eq!(parse_json("{}").unwrap(), Policy::default());
}

#[test]
fn ports_are_normalised() {
    let p = parse_toml(
        r#"
[[port_alias]]
name = "web"
protocol = "tcp"
ports = ["8443", "80", "443", "81-90", "85-100"]

[[infrastructure]]
prefix = "10.0.0.0/8"
protocol = "tcp"
ports = ["web", "8000-8100", "8101", "79", "8050-8060", "443"]

[[infrastructure]]
prefix = "10.1.0.0/16"
protocol = "udp"
ports = ["0-1000", "1001-65535"]

[[infrastructure]]
prefix = "10.2.0.0/16"
protocol = "sctp"
ports = 3868

[[infrastructure]]
prefix = "10.3.0.0/16"
protocol = "udp"
ports = [53, " 60 - 70 "]
"#,
    )
    .unwrap();
    assert_eq!(
        p.port_aliases[0].ports,
        vec![range(80, 100), range(443, 443), range(8443, 8443)]
    );
    assert_eq!(
        p.infrastructure[0].ports,
        vec![
            range(79, 100),
            range(443, 443),
            range(8000, 8101),
            range(8443, 8443)
        ]
    );
    // Every port is the empty list.
    assert_eq!(p.infrastructure[1].ports, vec![]);
    assert_eq!(p.infrastructure[2].ports, vec![range(3868, 3868)]);
    assert_eq!(
        p.infrastructure[3].ports,
        vec![range(53, 53), range(60, 70)]
    );
}

#[test]
fn toml_bare_date_is_accepted() {
    let text = SAMPLE.replace("expires = \"2030-01-01\"", "expires = 2030-01-01");
    assert_eq!(parse_toml(&text).unwrap(), sample_policy());
}

// ---- one test per error kind: the message names the entry and the field ----

#[test]
fn unknown_references() {
    assert_eq!(
        agreement_with("client = \"ouh-rsi\""),
        "agreement 1003 (agreement[2]): field `client`: unknown client \"ouh-rsi\"; did you mean \"ouh-ris\"?"
    );
    assert_eq!(
        agreement_with("service = \"nsp\""),
        "agreement 1003 (agreement[2]): field `service`: unknown service \"nsp\""
    );
    assert_eq!(
        error_with("[[client]]\nid = \"x\"\norganisation = \"rsdy\"\nprefixes = [\"10.0.0.0/8\"]"),
        "client \"x\" (client[1]): field `organisation`: unknown organisation \"rsdy\"; did you mean \"rsyd\"?"
    );
    assert_eq!(
        error_with(
            "[[service]]\nid = \"s\"\norganisation = \"nobody\"\nname = \"S\"\nendpoints = [{ address = \"10.0.0.1\", protocol = \"any\" }]"
        ),
        "service \"s\" (service[1]): field `organisation`: unknown organisation \"nobody\""
    );
}

#[test]
fn host_bits_set() {
    assert_eq!(
        lab_with(
            "{ address = \"203.0.113.5\", protocol = \"any\" }, { address = \"198.51.100.7/24\", protocol = \"any\" }"
        ),
        "service \"lab\" (service[1]) endpoint[1]: field `address`: prefix 198.51.100.7/24 has host bits set; did you mean 198.51.100.0/24?"
    );
    assert_eq!(
        error_with(
            "[[client]]\nid = \"c\"\norganisation = \"rsyd\"\nprefixes = [\"10.0.0.0/8\", \"2001:db8::1/32\"]"
        ),
        "client \"c\" (client[1]): field `prefixes`: prefix 2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"
    );
    assert_eq!(
        error_with("[[infrastructure]]\nprefix = \"192.0.2.1/24\""),
        "infrastructure[2]: field `prefix`: prefix 192.0.2.1/24 has host bits set; did you mean 192.0.2.0/24?"
    );
}

#[test]
fn bad_addresses() {
    assert_eq!(
        lab_with("{ address = \"203.0.113.300\", protocol = \"any\" }"),
        "service \"lab\" (service[1]) endpoint[0]: field `address`: \"203.0.113.300\" is not an IP address or prefix"
    );
    assert_eq!(
        lab_with("{ address = \"10.0.0.0/33\", protocol = \"any\" }"),
        "service \"lab\" (service[1]) endpoint[0]: field `address`: \"10.0.0.0/33\" is not an IP address or prefix"
    );
}

#[test]
fn port_errors() {
    let ep = |ports: &str| {
        lab_with(&format!(
            "{{ address = \"10.0.0.1\", protocol = \"tcp\", ports = {ports} }}"
        ))
    };
    let at = "service \"lab\" (service[1]) endpoint[0]: field `ports`: ";
    assert_eq!(
        ep("\"8100-8000\""),
        format!("{at}inverted port range 8100-8000; did you mean 8000-8100?")
    );
    assert_eq!(ep("[]"), format!("{at}empty port list"));
    assert_eq!(
        ep("\"70000\""),
        format!("{at}port 70000 is out of range 0-65535")
    );
    assert_eq!(
        ep("[\"80\", \"1-65536\"]"),
        format!("{at}port 65536 is out of range 0-65535")
    );
    assert_eq!(
        ep("\"8000-\""),
        format!("{at}\"8000-\" is not a port (\"443\") or a port range (\"8000-8100\")")
    );
    assert_eq!(
        ep("\"\""),
        format!("{at}\"\" is not a port (\"443\") or a port range (\"8000-8100\")")
    );
    assert_eq!(
        ep("-1"),
        format!("{at}\"-1\" is not a port (\"443\") or a port range (\"8000-8100\")")
    );
    assert_eq!(
        ep("\"dicm\""),
        format!("{at}unknown port alias \"dicm\"; did you mean \"dicom\"?")
    );
}

#[test]
fn ports_on_protocols_without_ports() {
    for (protocol, address) in [
        ("icmp", "10.0.0.1"),
        ("icmpv6", "2001:db8::1"),
        ("any", "10.0.0.1"),
    ] {
        assert_eq!(
            lab_with(&format!(
                "{{ address = \"{address}\", protocol = \"{protocol}\", ports = \"443\" }}"
            )),
            format!(
                "service \"lab\" (service[1]) endpoint[0]: field `ports`: protocol {protocol} has no ports; remove `ports`"
            )
        );
    }
    assert_eq!(
        error_with("[[infrastructure]]\nprefix = \"10.0.0.0/8\"\nports = \"22\""),
        "infrastructure[2]: field `ports`: protocol any has no ports; remove `ports`"
    );
}

#[test]
fn alias_of_another_protocol() {
    assert_eq!(
        lab_with("{ address = \"10.0.0.1\", protocol = \"udp\", ports = [\"53\", \"dicom\"] }"),
        "service \"lab\" (service[1]) endpoint[0]: field `ports`: port alias \"dicom\" is for tcp, not udp"
    );
}

#[test]
fn alias_definition_errors() {
    let alias = |protocol: &str, ports: &str| {
        error_with(&format!(
            "[[port_alias]]\nname = \"web\"\nprotocol = \"{protocol}\"\nports = {ports}"
        ))
    };
    let at = "port_alias \"web\" (port_alias[1])";
    assert_eq!(
        alias("icmp", "[\"80\"]"),
        format!("{at}: field `protocol`: port aliases must be tcp, udp or sctp, not icmp")
    );
    assert_eq!(
        alias("any", "[\"80\"]"),
        format!("{at}: field `protocol`: port aliases must be tcp, udp or sctp, not any")
    );
    assert_eq!(
        alias("tcp", "[\"80\", \"dicom\"]"),
        format!(
            "{at}: field `ports`: \"dicom\" is not a port or port range (port aliases cannot refer to other aliases)"
        )
    );
    assert_eq!(
        alias("tcp", "[]"),
        format!("{at}: field `ports`: empty port list")
    );
    assert_eq!(
        alias("tcp", "[\"90-80\"]"),
        format!("{at}: field `ports`: inverted port range 90-80; did you mean 80-90?")
    );
    assert_eq!(
        error_with("[[port_alias]]\nname = \"8080x\"\nprotocol = \"tcp\"\nports = \"8080\""),
        "port_alias \"8080x\" (port_alias[1]): field `name`: port alias name \"8080x\" must start with a letter"
    );
}

#[test]
fn alias_errors_do_not_cascade() {
    // An endpoint using an invalid alias gets no error of its own.
    let all = messages(&format!(
        "{SAMPLE}\n[[port_alias]]\nname = \"bad\"\nprotocol = \"tcp\"\nports = \"99999\"\n\
         [[service]]\nid = \"lab\"\norganisation = \"rsyd\"\nname = \"Lab\"\n\
         endpoints = [{{ address = \"10.0.0.1\", protocol = \"tcp\", ports = \"bad\" }}]\n"
    ));
    assert_eq!(
        all,
        vec![
            "port_alias \"bad\" (port_alias[1]): field `ports`: port 99999 is out of range 0-65535"
        ]
    );
}

#[test]
fn wrong_address_family_for_icmp() {
    assert_eq!(
        lab_with("{ address = \"2001:db8::/64\", protocol = \"icmp\" }"),
        "service \"lab\" (service[1]) endpoint[0]: field `address`: protocol icmp needs an IPv4 address, but 2001:db8::/64 is IPv6"
    );
    assert_eq!(
        lab_with("{ address = \"10.0.0.1\", protocol = \"icmpv6\" }"),
        "service \"lab\" (service[1]) endpoint[0]: field `address`: protocol icmpv6 needs an IPv6 address, but 10.0.0.1/32 is IPv4"
    );
    assert_eq!(
        error_with("[[infrastructure]]\nprefix = \"10.0.0.0/8\"\nprotocol = \"icmpv6\""),
        "infrastructure[2]: field `prefix`: protocol icmpv6 needs an IPv6 address, but 10.0.0.0/8 is IPv4"
    );
}

#[test]
fn unknown_protocol() {
    assert_eq!(
        lab_with("{ address = \"10.0.0.1\", protocol = \"tpc\", ports = \"80\" }"),
        "service \"lab\" (service[1]) endpoint[0]: field `protocol`: unknown protocol \"tpc\"; expected one of tcp, udp, sctp, icmp, icmpv6, any"
    );
}

#[test]
fn agreement_field_errors() {
    let at = "agreement 1003 (agreement[2])";
    assert_eq!(
        agreement_with("vlan = 0"),
        format!("{at}: field `vlan`: VLAN 0 is out of range 1-4094")
    );
    assert_eq!(
        agreement_with("vlan = 4095"),
        format!("{at}: field `vlan`: VLAN 4095 is out of range 1-4094")
    );
    assert_eq!(
        agreement_with("state = \"aproved\""),
        format!(
            "{at}: field `state`: unknown state \"aproved\"; expected one of requested, approved, rejected, revoked"
        )
    );
    assert_eq!(
        agreement_with("expires = \"2030-02-30\""),
        format!("{at}: field `expires`: \"2030-02-30\" is not a valid date (YYYY-MM-DD)")
    );
    assert_eq!(
        agreement_with("expires = \"2030-1-1\""),
        format!("{at}: field `expires`: \"2030-1-1\" is not a valid date (YYYY-MM-DD)")
    );
    assert_eq!(
        agreement_with("expires = 2030-01-01T00:00:00Z"),
        format!("{at}: field `expires`: \"2030-01-01T00:00:00Z\" is not a valid date (YYYY-MM-DD)")
    );
}

#[test]
fn agreement_id_out_of_range() {
    let doc = |id: &str| {
        error_with(&format!(
            "[[agreement]]\nid = {id}\nclient = \"ouh-ris\"\nservice = \"fmk\"\nstate = \"approved\""
        ))
    };
    assert_eq!(
        doc("-1"),
        "agreement[2]: field `id`: agreement id -1 is out of range 0-4294967295"
    );
    assert_eq!(
        doc("4294967296"),
        "agreement[2]: field `id`: agreement id 4294967296 is out of range 0-4294967295"
    );
}

#[test]
fn duplicate_ids() {
    assert_eq!(
        error_with("[[organisation]]\nid = \"sds\"\nname = \"again\""),
        "organisation \"sds\" (organisation[2]): field `id`: duplicate: \"sds\" is already used by organisation[0]"
    );
    assert_eq!(
        error_with("[[port_alias]]\nname = \"dicom\"\nprotocol = \"tcp\"\nports = \"104\""),
        "port_alias \"dicom\" (port_alias[1]): field `name`: duplicate: \"dicom\" is already used by port_alias[0]"
    );
    assert_eq!(
        error_with(
            "[[service]]\nid = \"fmk\"\norganisation = \"sds\"\nname = \"again\"\nendpoints = [{ address = \"10.0.0.1\", protocol = \"any\" }]"
        ),
        "service \"fmk\" (service[1]): field `id`: duplicate: \"fmk\" is already used by service[0]"
    );
    assert_eq!(
        error_with(
            "[[client]]\nid = \"ouh-ris\"\norganisation = \"rsyd\"\nprefixes = [\"10.0.0.0/8\"]"
        ),
        "client \"ouh-ris\" (client[1]): field `id`: duplicate: \"ouh-ris\" is already used by client[0]"
    );
    assert_eq!(
        error_with(
            "[[agreement]]\nid = 1001\nclient = \"ouh-ris\"\nservice = \"fmk\"\nstate = \"revoked\""
        ),
        "agreement 1001 (agreement[2]): field `id`: duplicate: \"1001\" is already used by agreement[0]"
    );
}

#[test]
fn empty_services_and_clients() {
    assert_eq!(
        lab_with(""),
        "service \"lab\" (service[1]): field `endpoints`: a service needs at least one endpoint"
    );
    assert_eq!(
        error_with("[[service]]\nid = \"lab\"\norganisation = \"rsyd\"\nname = \"Lab\""),
        "service \"lab\" (service[1]): field `endpoints`: a service needs at least one endpoint"
    );
    assert_eq!(
        error_with("[[client]]\nid = \"c\"\norganisation = \"rsyd\"\nprefixes = []"),
        "client \"c\" (client[1]): field `prefixes`: a client needs at least one prefix"
    );
}

#[test]
fn blank_and_padded_ids() {
    assert_eq!(
        error_with("[[organisation]]\nid = \"  \"\nname = \"Nameless\""),
        "organisation[2]: field `id`: must not be empty"
    );
    assert_eq!(
        error_with("[[client]]\nid = \"\"\norganisation = \"rsyd\"\nprefixes = [\"10.0.0.0/8\"]"),
        "client[1]: field `id`: must not be empty"
    );
    assert_eq!(
        error_with("[[port_alias]]\nname = \"\"\nprotocol = \"tcp\"\nports = \"1\""),
        "port_alias[1]: field `name`: must not be empty"
    );
    assert_eq!(
        error_with("[[organisation]]\nid = \"ouh \"\nname = \"Padded\""),
        "organisation \"ouh \" (organisation[2]): field `id`: \"ouh \" must not start or end with white space"
    );
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let text = r#"
[[organisation]]
id = "rsyd"
name = "Region Syddanmark"

[[service]]
id = "fmk"
organisation = "sds"
name = "FMK"
endpoints = [
  { address = "203.0.113.7/24", protocol = "tcp", ports = "443" },
  { address = "203.0.113.30", protocol = "icmp", ports = "1" },
]

[[client]]
id = "ouh-ris"
organisation = "rsyd"
prefixes = []

[[agreement]]
id = 1001
client = "ouh-rsi"
service = "fmk"
state = "approved"
vlan = 5000

[[agreement]]
id = 1001
client = "ouh-ris"
service = "fmk"
state = "done"
"#;
    let err = parse_toml(text).unwrap_err();
    let all: Vec<String> = err
        .validation_errors()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        all,
        vec![
            "service \"fmk\" (service[0]): field `organisation`: unknown organisation \"sds\"",
            "service \"fmk\" (service[0]) endpoint[0]: field `address`: prefix 203.0.113.7/24 has host bits set; did you mean 203.0.113.0/24?",
            "service \"fmk\" (service[0]) endpoint[1]: field `ports`: protocol icmp has no ports; remove `ports`",
            "client \"ouh-ris\" (client[0]): field `prefixes`: a client needs at least one prefix",
            "agreement 1001 (agreement[0]): field `client`: unknown client \"ouh-rsi\"; did you mean \"ouh-ris\"?",
            "agreement 1001 (agreement[0]): field `vlan`: VLAN 5000 is out of range 1-4094",
            "agreement 1001 (agreement[1]): field `id`: duplicate: \"1001\" is already used by agreement[0]",
            "agreement 1001 (agreement[1]): field `state`: unknown state \"done\"; expected one of requested, approved, rejected, revoked",
        ]
    );
    // The error's message lists them all, one per line, after a header.
    let message = err.to_string();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines[0], "invalid policy (8 errors):");
    assert_eq!(lines.len(), 9);
    for (line, error) in lines[1..].iter().zip(&all) {
        assert_eq!(line.trim_start(), error);
    }
}

#[test]
fn toml_syntax_errors_have_line_and_column() {
    let err = parse_toml("[[organisation]]\nid = \"x\nname = \"y\"\n").unwrap_err();
    assert!(matches!(err, PolicyError::Toml { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("column"), "{message}");
}

#[test]
fn unknown_fields_are_rejected() {
    let text = SAMPLE.replace("vlan = 100 ", "vlan = 100\ncolour = \"red\" ");
    let message = parse_toml(&text).unwrap_err().to_string();
    assert!(message.contains("unknown field `colour`"), "{message}");
    assert!(message.contains("line "), "{message}");

    let message = parse_toml("[[servise]]\nid = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown field `servise`"), "{message}");
}

#[test]
fn toml_round_trip() {
    let policy = sample_policy();
    let text = to_toml(&policy).unwrap();
    assert_eq!(parse_toml(&text).unwrap(), policy, "{text}");
    // Writing is deterministic: the written text reads and writes back to itself.
    assert_eq!(to_toml(&parse_toml(&text).unwrap()).unwrap(), text);
    assert!(
        text.contains(r#"{ address = "203.0.113.10", protocol = "tcp", ports = "443" }"#),
        "{text}"
    );
    assert!(text.contains(r#"ports = ["104", "11112"]"#), "{text}");
    assert!(text.contains(r#"expires = "2030-01-01""#), "{text}");
}

#[test]
fn toml_round_trip_of_awkward_values() {
    let mut policy = sample_policy().into_draft();
    // Quotes, a backslash, non-ASCII, a comment sign (control characters are refused).
    policy.organisations[1].name = "Region \"Syd\" \\ Sønderborg 'line' #1".into();
    policy.services[0].endpoints[1].ports = vec![range(0, 0), range(7, 9), range(65535, 65535)];
    policy.services[0].endpoints[0].protocol = Protocol::Sctp;
    policy.agreements[1].state = AgreementState::Revoked;
    policy.agreements.push(Agreement {
        id: u32::MAX,
        client: "ouh-ris".into(),
        service: "fmk".into(),
        state: AgreementState::Rejected,
        expires: NaiveDate::from_ymd_opt(1999, 12, 31),
        vlan: Some(4094),
    });
    policy.infrastructure[1].protocol = Protocol::Icmpv6;
    let policy = policy.validate().unwrap();
    let text = to_toml(&policy).unwrap();
    assert_eq!(parse_toml(&text).unwrap(), policy, "{text}");
}

#[test]
fn json_has_the_same_structure() {
    let json = r#"{
      "organisation": [
        {"id": "sds", "name": "Sundhedsdatastyrelsen"},
        {"id": "rsyd", "name": "Region Syddanmark"}
      ],
      "port_alias": [{"name": "dicom", "protocol": "tcp", "ports": ["104", "11112"]}],
      "service": [{
        "id": "fmk", "organisation": "sds", "name": "Faelles Medicinkort",
        "endpoints": [
          {"address": "203.0.113.10", "protocol": "tcp", "ports": "443"},
          {"address": "2001:db8:10::/64", "protocol": "tcp", "ports": "8000-8100"},
          {"address": "203.0.113.20", "protocol": "tcp", "ports": "dicom"},
          {"address": "203.0.113.30", "protocol": "icmp"}
        ]
      }],
      "client": [{"id": "ouh-ris", "organisation": "rsyd",
                  "prefixes": ["198.51.100.0/24", "2001:db8:200::/48"]}],
      "agreement": [
        {"id": 1001, "client": "ouh-ris", "service": "fmk", "state": "approved",
         "expires": "2030-01-01", "vlan": 100},
        {"id": 1002, "client": "ouh-ris", "service": "fmk", "state": "requested",
         "expires": null}
      ],
      "infrastructure": [
        {"prefix": "192.0.2.0/28", "protocol": "tcp", "ports": [22, "179"]},
        {"prefix": "2001:db8:ffff::1"}
      ]
    }"#;
    assert_eq!(parse_json(json).unwrap(), sample_policy());

    let bad = json.replace("\"vlan\": 100", "\"vlan\": 100, \"colour\": 1");
    let err = parse_json(&bad).unwrap_err();
    assert!(matches!(err, PolicyError::Json { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("unknown field `colour`") && message.contains("line"),
        "{message}"
    );

    let invalid = json.replace("\"vlan\": 100", "\"vlan\": 0");
    assert_eq!(
        parse_json(&invalid).unwrap_err().validation_errors().len(),
        1
    );
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("sdn-policy-test-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn load_file_by_extension() {
    let toml_file = TempFile::new("policy.toml", SAMPLE);
    assert_eq!(load_file(&toml_file.0).unwrap(), sample_policy());

    let json = serde_json::json!({
        "organisation": [{"id": "sds", "name": "SDS"}],
        "client": [{"id": "c", "organisation": "sds", "prefixes": ["10.0.0.0/8"]}]
    });
    let json_file = TempFile::new("policy.JSON", &json.to_string());
    let p = load_file(&json_file.0).unwrap();
    assert_eq!(p.clients[0].prefixes, vec![net("10.0.0.0/8")]);

    // Errors name the file.
    let bad = TempFile::new(
        "bad.toml",
        "[[client]]\nid = \"c\"\norganisation = \"x\"\nprefixes = [\"10.0.0.0/8\"]",
    );
    let message = load_file(&bad.0).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "policy file {}: invalid policy (1 error):",
            bad.0.display()
        )),
        "{message}"
    );
    assert!(
        message
            .contains("client \"c\" (client[0]): field `organisation`: unknown organisation \"x\""),
        "{message}"
    );

    let missing = std::env::temp_dir().join("sdn-policy-test-does-not-exist.toml");
    let err = load_file(&missing).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()));
}
