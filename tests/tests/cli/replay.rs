//! `replay`: JSON shape and values against the library, text output, empty and non-Ethernet captures.

use super::*;

/// Sanity of the library's own answers for the fixture, so a broken fixture (or a program that
/// drops everything) cannot make the CLI comparison vacuous.
fn check_library_expectations(frames: &[(&str, Vec<u8>)], lib: &[Verdict]) {
    let by_name = |name: &str| {
        let i = frames.iter().position(|(n, _)| *n == name).unwrap();
        &lib[i]
    };
    let expect = |name: &str, pass: bool, agreement: Option<u32>, reason: &str, txn: bool| {
        let v = by_name(name);
        assert_eq!(
            (v.passed(), v.agreement, v.reason, v.transaction),
            (pass, agreement, reason, txn),
            "library verdict for {name}: {v:?}"
        );
    };
    expect("allowed forward SYN", true, Some(1001), "forward", true);
    expect("its reply SYN+ACK", true, Some(1001), "reply", false);
    expect(
        "established ACK",
        true,
        Some(1001),
        "established-forward",
        false,
    );
    expect("denied port 22", false, None, "no-agreement", false);
    expect("revoked agreement", false, None, "no-agreement", false);
    expect("ARP", true, None, "non-ip", false);
    expect("IPv6 SYN", true, Some(1001), "forward", true);
    expect("ICMP echo request", true, Some(1001), "forward", true);
    expect("ICMP echo reply", true, Some(1001), "reply", false);
    expect(
        "service opens a connection (reply SYN)",
        false,
        None,
        "reply-syn",
        false,
    );
    for name in ["malformed IHL", "truncated IPv4 header", "runt (10 bytes)"] {
        assert!(
            !by_name(name).passed(),
            "{name} must drop: {:?}",
            by_name(name)
        );
    }
}

/// [`write_pcap`] or [`write_pcapng`].
type WriteCapture = fn(&[(&str, Vec<u8>)]) -> TempFile;

/// The lines `replay` printed, after checking there is one for each of the `frames`.
fn line_per_frame(run: &Run, frames: usize) -> Vec<&str> {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), frames, "one line per frame: {}", run.show());
    lines
}

/// Writes the test frames with `write` (pcap or pcapng), runs `replay --json` on the capture
/// and compares every line with the library. Needs root (skips without it).
fn replay_json_matches_library(write: WriteCapture) {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let frames = frames();
    let capture = write(&frames);
    let lib = library_verdicts(POLICY, &frames);
    check_library_expectations(&frames, &lib);

    let run = replay_run(&policy, &capture, &["--json", "--date", DATE]).success();
    let lines = line_per_frame(&run, frames.len());
    for (i, line) in lines.iter().enumerate() {
        let obj = parse_verdict_line(line, &run);
        assert_eq!(obj["index"], Value::from(i), "index in order: {line}");
        assert_eq!(
            obj,
            expected_object(&lib[i]),
            "frame {i} ({}): CLI vs library",
            frames[i].0
        );
    }
    let summary = run
        .stderr
        .lines()
        .find(|l| l.contains("frames"))
        .unwrap_or_else(|| panic!("no summary line on stderr: {}", run.show()));
    let passed = lib.iter().filter(|v| v.passed()).count();
    let transactions = lib.iter().filter(|v| v.transaction).count();
    for part in [
        format!("{} frames", frames.len()),
        format!("{passed} passed"),
        format!("{} dropped", frames.len() - passed),
        format!("{transactions} transactions"),
    ] {
        assert!(
            summary.contains(&part),
            "summary {summary:?} should say {part:?}"
        );
    }
    assert!(
        !run.stdout.contains(" frames: "),
        "the summary belongs on stderr, not stdout: {}",
        run.show()
    );
}

#[test]
fn replay_json_pcap_matches_library() {
    replay_json_matches_library(write_pcap);
}

#[test]
fn replay_json_pcapng_matches_library() {
    replay_json_matches_library(write_pcapng);
}

#[test]
fn replay_text_one_line_per_frame() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let frames = frames();
    let lib = library_verdicts(POLICY, &frames);
    for capture in [write_pcap(&frames), write_pcapng(&frames)] {
        let run = replay_run(&policy, &capture, &["--date", DATE]).success();
        let lines = line_per_frame(&run, frames.len());
        for (i, (line, v)) in lines.iter().zip(&lib).enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                words.first(),
                Some(&i.to_string().as_str()),
                "index: {line:?}"
            );
            let verdict = if v.passed() { "pass" } else { "drop" };
            assert!(
                words.contains(&verdict),
                "frame {i}: {line:?} should say {verdict}"
            );
            assert!(
                words.contains(&v.reason),
                "frame {i}: {line:?} should say {}",
                v.reason
            );
            if let Some(a) = v.agreement {
                assert!(
                    words.contains(&a.to_string().as_str()),
                    "frame {i}: {line:?} should name agreement {a}"
                );
            }
            assert_eq!(
                words.contains(&"transaction"),
                v.transaction,
                "frame {i}: {line:?} transaction flag"
            );
        }
        assert!(
            run.stderr.contains(&format!("{} frames", frames.len())),
            "summary on stderr: {}",
            run.show()
        );
    }
}

#[test]
fn replay_empty_capture() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let capture = write_pcap(&[]);
    let run = replay_run(&policy, &capture, &["--json", "--date", DATE]).success();
    assert!(run.stdout.trim().is_empty(), "{}", run.show());
    run.stderr_has(&["0 frames"]);
}

#[test]
fn replay_refuses_captures_that_are_not_ethernet() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let capture = TempFile::new(".pcap");
    let file = std::fs::File::create(capture.path()).unwrap();
    let header = pcap_file::pcap::PcapHeader {
        datalink: DataLink::RAW,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(file, header).unwrap();
    let frame = frames()[0].1.clone();
    w.write_packet(&PcapPacket::new(
        Duration::ZERO,
        frame.len() as u32,
        &frame[14..],
    ))
    .unwrap();
    drop(w);
    let run = replay_run(&policy, &capture, &[]).failure();
    run.stderr_has(&[capture.arg(), "link type", "not Ethernet"]);
    assert!(run.stdout.trim().is_empty(), "{}", run.show());
}
