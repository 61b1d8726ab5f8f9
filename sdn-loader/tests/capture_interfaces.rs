//! pcapng reading: every packet must name an interface described before it in its section,
//! or its link type is unknown; such a file is refused, naming the block (it used to be read
//! as Ethernet). The files are written byte by byte: pcap-file's writer refuses to write them.
//!
//! Needs no root: the capture is refused before anything is loaded.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use std::path::{Path, PathBuf};
use std::process::Command;

use sdn_loader::tools::replay::{ReplayError, read_capture};

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

const POLICY: &str = r#"
[[organisation]]
id = "o"
name = "Org"
"#;

/// A block: type, total length, body (padded to 4 bytes), total length; little-endian.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = u32::try_from(12 + body.len()).unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn section_header() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &body)
}

fn ethernet_interface() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_le_bytes()); // LINKTYPE_ETHERNET
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0xffffu32.to_le_bytes());
    block(1, &body)
}

/// The block index, interface and described-interface count a refusal must name.
type Expected = (usize, u32, usize);

/// A 60-byte frame (its content does not matter: it is never run).
const FRAME: [u8; 60] = [0; 60];

fn enhanced_packet(interface: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&interface.to_le_bytes());
    body.extend_from_slice(&[0; 8]);
    body.extend_from_slice(&60u32.to_le_bytes());
    body.extend_from_slice(&60u32.to_le_bytes());
    body.extend_from_slice(&FRAME);
    block(6, &body)
}

fn simple_packet() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&60u32.to_le_bytes());
    body.extend_from_slice(&FRAME);
    block(3, &body)
}

#[test]
fn pcapng_packets_need_an_interface_description() {
    let dir = tempfile::tempdir().unwrap();
    let shb = section_header();
    let idb = ethernet_interface();
    // Name, blocks, and the block, interface and interface count the error must name.
    let cases: [(&str, Vec<Vec<u8>>, Expected); 4] = [
        ("no-idb", vec![shb.clone(), enhanced_packet(0)], (1, 0, 0)),
        ("simple", vec![shb.clone(), simple_packet()], (1, 0, 0)),
        (
            "interface-1",
            vec![
                shb.clone(),
                idb.clone(),
                enhanced_packet(0),
                enhanced_packet(1),
            ],
            (3, 1, 1),
        ),
        // A new section forgets the interfaces of the one before.
        (
            "second-section",
            vec![
                shb.clone(),
                idb.clone(),
                enhanced_packet(0),
                shb.clone(),
                enhanced_packet(0),
            ],
            (4, 0, 0),
        ),
    ];
    for (name, blocks, expected) in cases {
        let path = write(dir.path(), &format!("{name}.pcapng"), &blocks.concat());
        match read_capture(&path) {
            Err(ReplayError::NoInterface {
                block,
                interface,
                described,
                ..
            }) => assert_eq!((block, interface, described), expected, "{name}"),
            other => panic!("{name}: expected NoInterface, got {other:?}"),
        }
    }
    // With its interface described, the same packet is read.
    let good = write(
        dir.path(),
        "good.pcapng",
        &[
            shb.clone(),
            idb.clone(),
            enhanced_packet(0),
            simple_packet(),
        ]
        .concat(),
    );
    assert_eq!(read_capture(&good).unwrap(), vec![FRAME.to_vec(); 2]);

    // And `replay` says so, naming the file and the block.
    let bad = write(
        dir.path(),
        "bad.pcapng",
        &[shb, enhanced_packet(0)].concat(),
    );
    let policy = write(dir.path(), "p.toml", POLICY.as_bytes());
    let out = Command::new(env!("CARGO_BIN_EXE_sdn-loader"))
        .args([
            "replay",
            "--policy",
            policy.to_str().unwrap(),
            "--pcap",
            bad.to_str().unwrap(),
        ])
        .env_remove("SDN_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for part in [
        bad.to_str().unwrap(),
        "pcapng block 1",
        "interface description block",
        "link type is unknown",
    ] {
        assert!(stderr.contains(part), "stderr {stderr:?} lacks {part:?}");
    }
}
