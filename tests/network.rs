//! The network layer: `none` keeps the host's loopback out of reach, `host` lets it in while
//! Landlock's ports still hold; bad input names file, line and column.

mod common;
use common::*;

use std::net::TcpListener;

/// A listener on the host's 127.0.0.1 (a random port), accepting in the background.
fn listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Bounded: a test makes a handful of connections at most.
        for s in l.incoming().take(16) {
            drop(s);
        }
    });
    port
}

fn connect(port: u16) -> String {
    format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected || echo refused")
}

both!(
    net_none_keeps_the_host_loopback_out_and_host_lets_it_in,
    |who| {
        let port = listener();
        let script = connect(port);
        let cmd = ["/bin/bash", "-c", script.as_str()];
        // Landlock's TCP rules off in both runs: the network layer's own effect.
        let c = Contrast::of(
            who,
            &["-p", "strict", "--without", "landlock", "--net", "none"],
            &["-p", "strict", "--without", "landlock", "--net", "host"],
            &cmd,
        );
        c.prints("refused\n", "connected\n");
        // The profile's own section does the same as the flag.
        let dir = Scratch::new("net");
        let p = dir.write(
            "host.yaml",
            "extends: strict\nlayers:\n  network:\n    net: host\n  landlock:\n    mode: off\n",
        );
        let o = run(who, &["run", "-p", &p, "--", "/bin/bash", "-c", &script]);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "connected\n");
    }
);

both!(net_host_still_obeys_landlock_ports, |who| {
    let (open, closed) = (listener(), listener());
    let dir = Scratch::new("net-ll");
    let p = dir.write(
        "p.yaml",
        &format!("extends: strict\nlayers:\n  network:\n    net: host\n  landlock:\n    net:\n      connect: [{open}]\n"),
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &p,
            "--",
            "/bin/bash",
            "-c",
            &format!("{}; {}", connect(open), connect(closed)),
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "connected\nrefused\n", "{}", stderr(&o));
    // Control: without Landlock the second port is reachable too.
    let o = run(
        who,
        &[
            "run",
            "-p",
            &p,
            "--without",
            "landlock",
            "--",
            "/bin/bash",
            "-c",
            &connect(closed),
        ],
    );
    assert_eq!(stdout(&o), "connected\n");
    // explain says what host mode exposes.
    let text = stdout(&run(who, &["explain", &p]));
    assert!(
        text.contains("does NOT stop: connecting to the host's loopback services"),
        "{text}"
    );
});

both!(bad_network_input_names_the_place, |who| {
    let dir = Scratch::new("net-bad");
    for (yaml, want) in [
        (
            "layers:\n  network:\n    net: hots\n",
            "3:10: unknown net \"hots\" (did you mean \"host\"?)",
        ),
        (
            "layers:\n  network:\n    net: proxy\n",
            "3:10: net: proxy is not available in this version",
        ),
        (
            "layers:\n  network:\n    allow: [\"example.com:0\"]\n",
            "port 0 is not a port",
        ),
        (
            "layers:\n  network:\n    allow: [\"example.com:443\"]\n",
            "3:13: allow: entries need net: proxy",
        ),
        ("layers:\n  network:\n    nett: none\n", "unknown field"),
    ] {
        let p = dir.write("bad.yaml", yaml);
        let o = run(who, &["check", &p]);
        assert_ne!(o.status.code(), Some(0), "{yaml}");
        let err = stderr(&o) + &stdout(&o);
        assert!(err.contains(want), "{yaml}: {err}");
        assert!(err.contains("bad.yaml"), "{err}");
    }
    let o = run(who, &["run", "--net", "user", "--", "/bin/true"]);
    assert_code(&o, 2);
});
