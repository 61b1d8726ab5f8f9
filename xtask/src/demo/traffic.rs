//! The demo's traffic: what the policy allows and denies, sent for real between the client and
//! service namespaces through the hub, each outcome checked.

use std::{
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use anyhow::Result;

/// Namespace and interface prefix of the demo topology (`sdn-client`, `sdn-hub`, ...).
pub(crate) const NS: &str = "sdn";

/// A command in namespace `NS-ns`.
pub(crate) fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{NS}-{ns}")]).args(args);
    c
}

/// Prints one outcome; true when it is what the policy says.
pub(crate) fn report(what: &str, ok: bool, expect_ok: bool) -> bool {
    let verdict = if ok == expect_ok {
        "as expected"
    } else {
        "UNEXPECTED"
    };
    println!(
        "  {what:<62} {:<8} {verdict}",
        if ok { "ok" } else { "blocked" }
    );
    ok == expect_ok
}

/// Runs a command, reports whether it succeeded (traffic that is meant to fail is no error).
fn attempt(what: &str, cmd: &mut Command, expect_ok: bool) -> bool {
    let ok = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    report(what, ok, expect_ok)
}

fn listen(ns: &str, args: &[&str]) -> Result<Child> {
    let child = in_ns(ns, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    sleep(Duration::from_millis(300));
    Ok(child)
}

/// One TCP connection from the client namespace (source `src`, default the clinic's address)
/// to `dst`:`port` that carries a line to a listener; true when the line arrived.
pub(crate) fn tcp_exchange(src: Option<&str>, dst: &str, port: &str, v6: bool) -> Result<bool> {
    let server = listen("service", &["timeout", "4", "nc", "-l", dst, port])?;
    let mut args = vec!["timeout", "3", "nc", "-w", "2", "-N"];
    if v6 {
        args.push("-6");
    }
    if let Some(s) = src {
        args.extend(["-s", s]);
    }
    args.extend([dst, port]);
    let mut client = in_ns("client", &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = client.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(b"hello from the clinic\n");
    }
    let _ = client.wait();
    let out = server.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("hello from the clinic"))
}

/// The allowed and denied traffic of the demo policy; true when every outcome is the one the
/// policy says.
pub(crate) fn policy_traffic() -> Result<bool> {
    println!(
        "  (client 198.51.100.10 has agreements 1001 fmk and 1003 pacs; 198.51.100.20's agreement 1002 is revoked)"
    );
    let mut good = true;
    good &= attempt(
        "ping 203.0.113.10 (icmp, agreement 1001)",
        &mut in_ns(
            "client",
            &["ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.10"],
        ),
        true,
    );
    let ok = tcp_exchange(None, "203.0.113.10", "443", false)?;
    good &= report(
        "TCP 198.51.100.10 -> 203.0.113.10:443 (agreement 1001)",
        ok,
        true,
    );
    let ok = tcp_exchange(None, "203.0.113.20", "11112", false)?;
    good &= report(
        "TCP 198.51.100.10 -> 203.0.113.20:11112 dicom (agreement 1003)",
        ok,
        true,
    );
    let ok = tcp_exchange(None, "2001:db8:300::10", "443", true)?;
    good &= report(
        "TCP [2001:db8:100::10] -> [2001:db8:300::10]:443 (1001)",
        ok,
        true,
    );
    let ping6 = "ping -6 -c 3 -i 0.2 -W 1 2001:db8:300::10";
    good &= attempt(
        "ping 2001:db8:300::10 (icmpv6, agreement 1001)",
        &mut in_ns("client", &ping6.split(' ').collect::<Vec<_>>()),
        true,
    );
    let udp = listen(
        "service",
        &["timeout", "3", "nc", "-u", "-l", "203.0.113.10", "5000"],
    )?;
    let sent = in_ns("client", &["bash", "-c", "for i in 1 2 3 4 5; do echo datagram-$i; sleep 0.05; done | timeout 2 nc -u -w1 203.0.113.10 5000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let out = udp.wait_with_output()?;
    let got = String::from_utf8_lossy(&out.stdout)
        .matches("datagram-")
        .count();
    good &= report(
        &format!("UDP 5 datagrams -> 203.0.113.10:5000 ({got} received)"),
        sent && got == 5,
        true,
    );
    let ok = tcp_exchange(Some("198.51.100.20"), "203.0.113.10", "443", false)?;
    good &= report(
        "TCP 198.51.100.20 -> 203.0.113.10:443 (agreement 1002 revoked)",
        ok,
        false,
    );
    let ok = tcp_exchange(None, "203.0.113.10", "22", false)?;
    good &= report(
        "TCP 198.51.100.10 -> 203.0.113.10:22 (no agreement for port 22)",
        ok,
        false,
    );
    good &= attempt(
        "ping 203.0.113.20 (pacs has no icmp endpoint)",
        &mut in_ns(
            "client",
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", "203.0.113.20"],
        ),
        false,
    );
    Ok(good)
}
