//! `lasagna doctor PROFILE`: per layer of one profile, the plan's decision for this caller
//! in doctor's statuses (applied ok, degraded WARN, refused FAIL with its fix, off info),
//! the same as `explain` and `check` say; exit 1 exactly when `check` would refuse it.

mod common;
use common::*;

use std::process::{Command, Output};

use serde_json::Value;

/// `lasagna doctor ARGS --json` as `who`: its findings and the exit code.
fn doctor_json(who: As, args: &[&str]) -> (Vec<Value>, i32) {
    let mut argv = vec!["doctor"];
    argv.extend_from_slice(args);
    argv.push("--json");
    findings(run(who, &argv))
}

fn findings(o: Output) -> (Vec<Value>, i32) {
    let parsed: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("doctor --json is JSON ({e}):\n{}", stdout(&o)));
    let list = parsed.as_array().expect("a list of findings").clone();
    (list, o.status.code().expect("an exit code"))
}

fn str_of<'a>(f: &'a Value, key: &str) -> &'a str {
    f[key].as_str().unwrap_or_default()
}

/// One layer as `explain` states it: `LAYER (REQUESTED): WORD[: REASON]`.
struct Stated {
    layer: String,
    requested: String,
    word: String,
    reason: Option<String>,
}

fn explained(who: As, profile: &str) -> Vec<Stated> {
    let o = run(who, &["explain", profile]);
    assert_code(&o, 0);
    let mut out = Vec::new();
    for line in stdout(&o).lines() {
        // A layer's line is the only unindented one with "name (mode): ".
        let Some((layer, rest)) = line.split_once(" (") else {
            continue;
        };
        let Some((requested, rest)) = rest.split_once("): ") else {
            continue;
        };
        if line.starts_with(' ') || layer.contains(' ') {
            continue;
        }
        let (word, reason) = match rest.split_once(": ") {
            Some((w, r)) => (w, Some(r.to_string())),
            None => (rest, None),
        };
        out.push(Stated {
            layer: layer.into(),
            requested: requested.into(),
            word: word.to_lowercase(),
            reason,
        });
    }
    assert_eq!(out.len(), 9, "explain states every layer:\n{}", stdout(&o));
    out
}

/// doctor's status for a decision (the contract, not doctor's code).
fn status_for(s: &Stated) -> &'static str {
    match s.word.as_str() {
        "applied" => "ok",
        "degraded" => "warn",
        "skipped" if s.requested == "off" => "info",
        "skipped" => "warn",
        "refused" => "fail",
        other => panic!("explain word {other:?}"),
    }
}

/// `doctor PROFILE --json` as `who` agrees with `explain PROFILE` on every layer and with
/// `check PROFILE` on the exit code; returns the findings and the code.
fn agrees_with_explain_and_check(who: As, profile: &str, name: &str) -> (Vec<Value>, i32) {
    let stated = explained(who, profile);
    let (found, code) = doctor_json(who, &[profile]);
    for s in &stated {
        let mine: Vec<&Value> = found
            .iter()
            .filter(|f| str_of(f, "layer") == s.layer && f.get("decision").is_some())
            .collect();
        assert_eq!(mine.len(), 1, "one decision for {}: {found:#?}", s.layer);
        let f = mine[0];
        assert_eq!(str_of(f, "decision"), s.word, "{}: {f:#}", s.layer);
        assert_eq!(str_of(f, "status"), status_for(s), "{}: {f:#}", s.layer);
        let detail = str_of(f, "detail");
        assert!(
            detail.starts_with(&format!("{} ({})", s.word, s.requested)),
            "{}: {detail}",
            s.layer
        );
        // The reason is the plan's, with its fix moved to the fix line.
        if let Some(reason) = &s.reason {
            let (_, mine) = detail.split_once("): ").expect("a reason");
            let head = mine.split([';', '(']).next().unwrap().trim_end();
            assert!(
                !head.is_empty() && reason.starts_with(head),
                "{}: doctor says {mine:?}, explain {reason:?}",
                s.layer
            );
        }
        // The facts a layer rests on follow it; a layer off has none.
        let facts = found
            .iter()
            .filter(|f| str_of(f, "layer") == s.layer && f.get("decision").is_none())
            .count();
        if s.requested == "off" {
            assert_eq!(facts, 0, "{}: {found:#?}", s.layer);
        }
    }
    for f in &found {
        assert_eq!(str_of(f, "profile"), name, "{f:#}");
        assert_eq!(f["supported"], str_of(f, "status") != "fail", "{f:#}");
        if str_of(f, "status") == "fail" {
            assert!(!str_of(f, "fix").is_empty(), "a FAIL has its fix: {f:#}");
        }
    }
    let check = run(who, &["check", profile]);
    assert_eq!(
        Some(code),
        check.status.code(),
        "doctor's exit is check's\n{}",
        stderr(&check)
    );
    let fails = found.iter().any(|f| str_of(f, "status") == "fail");
    assert_eq!(fails, code == 1, "FAIL exactly when it exits 1: {found:#?}");
    (found, code)
}

fn decision<'a>(found: &'a [Value], layer: &str) -> &'a Value {
    found
        .iter()
        .find(|f| str_of(f, "layer") == layer && f.get("decision").is_some())
        .unwrap_or_else(|| panic!("a decision for {layer}: {found:#?}"))
}

/// Where this host could have pasta: lasagna looks only there.
const PASTA: [&str; 3] = ["/usr/bin/pasta", "/usr/sbin/pasta", "/usr/local/bin/pasta"];

/// `lasagna ARGS` as `who` in a mount namespace where /dev/null covers every pasta the
/// host has: no executable file at any of lasagna's fixed paths.
fn without_pasta(who: As, args: &[&str]) -> Output {
    let lasagna = command(who, args);
    let mut script = String::new();
    for p in PASTA.iter().filter(|p| std::path::Path::new(p).exists()) {
        script.push_str(&format!("mount --bind /dev/null {p} && "));
    }
    script.push_str("exec \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(script)
        .arg("sh")
        .arg(lasagna.get_program())
        .args(lasagna.get_args());
    output_within(as_is(cmd), DEADLINE)
}

fn as_is(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    cmd.current_dir("/")
        .stdin(std::process::Stdio::null())
        .process_group(0);
    cmd
}

both!(doctor_strict_says_per_layer_what_explain_says, |who| {
    let (found, code) = agrees_with_explain_and_check(who, "strict", "strict");
    assert_eq!(code, 0, "strict runs here: {found:#?}");
    // The facts of the layers strict uses: Landlock's ABI, seccomp's actions.
    assert!(
        found.iter().any(|f| str_of(f, "layer") == "landlock"
            && str_of(f, "detail").starts_with("the rules need Landlock ABI")),
        "{found:#?}"
    );
    // Without PROFILE, doctor is unchanged: no profile, no decisions.
    let (plain, code) = doctor_json(who, &[]);
    assert_eq!(code, 0);
    assert!(
        plain
            .iter()
            .all(|f| f.get("profile").is_none() && f.get("decision").is_none()),
        "{plain:#?}"
    );
    // The text form has doctor's shape.
    let text = stdout(&run(who, &["doctor", "strict"]));
    assert!(
        text.lines()
            .all(|l| ["ok ", "WARN", "FAIL", "info", "     "]
                .iter()
                .any(|p| l.starts_with(p))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok   profile") && l.contains("strict: runs here")),
        "{text}"
    );
});

both!(
    doctor_required_cgroups_as_check_says_for_this_caller,
    |who| {
        // Required cgroups: the caller either can make the cgroup or the layer is refused
        // (the unprivileged user without delegation); doctor says which, as check does.
        let dir = Scratch::new("doctor-cg");
        let p = dir.write(
            "cg.yaml",
            "extends: strict\nlayers:\n  cgroups:\n    mode: required\n",
        );
        let (found, code) = agrees_with_explain_and_check(who, &p, "cg");
        let cg = decision(&found, "cgroups");
        // Each controller the limits need is a fact of its own: where, and whether writable.
        for c in ["memory", "pids"] {
            assert!(
                found.iter().any(|f| str_of(f, "layer") == "cgroups"
                    && str_of(f, "detail").starts_with(&format!("{c}: "))),
                "{c}: {found:#?}"
            );
        }
        if str_of(cg, "status") == "fail" {
            assert_eq!(code, 1);
            assert!(!str_of(cg, "fix").is_empty(), "{cg:#}");
        } else {
            assert_eq!(str_of(cg, "status"), "ok", "{cg:#}");
            assert_eq!(code, 0);
        }
    }
);

both!(doctor_net_user_without_pasta_fails_with_the_fix, |who| {
    let dir = Scratch::new("doctor-net");
    let required = dir.write(
        "req.yaml",
        "extends: strict\nlayers:\n  network:\n    net: user\n",
    );
    let best = dir.write(
        "be.yaml",
        "extends: strict\nlayers:\n  network:\n    mode: best-effort\n    net: user\n",
    );
    let none = dir.write(
        "none.yaml",
        "extends: strict\nlayers:\n  network:\n    net: none\n",
    );
    // Required: refused, FAIL with the fix, exit 1; check refuses it too.
    let (found, code) = findings(without_pasta(who, &["doctor", &required, "--json"]));
    assert_eq!(code, 1, "{found:#?}");
    let net = decision(&found, "network");
    assert_eq!(str_of(net, "status"), "fail", "{net:#}");
    assert_eq!(str_of(net, "decision"), "refused", "{net:#}");
    assert!(
        str_of(net, "detail").contains("net: user needs pasta")
            && str_of(net, "fix").contains("apt-get install passt"),
        "{net:#}"
    );
    let pasta = found
        .iter()
        .find(|f| str_of(f, "detail") == "net: user: pasta is not installed")
        .unwrap_or_else(|| panic!("the pasta fact: {found:#?}"));
    assert_eq!(str_of(pasta, "status"), "fail", "{pasta:#}");
    let last = found.last().unwrap();
    assert_eq!(str_of(last, "layer"), "profile", "{last:#}");
    assert_eq!(str_of(last, "status"), "fail", "{last:#}");
    assert!(
        str_of(last, "detail").contains("network refused"),
        "{last:#}"
    );
    let check = without_pasta(who, &["check", &required]);
    assert_code(&check, 1);
    assert!(
        stderr(&check).contains("network would be refused on this host"),
        "{}",
        stderr(&check)
    );
    // The text form: the FAIL line and its fix below it.
    let text = stdout(&without_pasta(who, &["doctor", &required]));
    let at = text
        .lines()
        .position(|l| l.starts_with("FAIL network       refused (required): "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.lines()
            .nth(at + 1)
            .unwrap()
            .trim_start()
            .starts_with("fix: "),
        "{text}"
    );
    // Best-effort: degraded to net: none, WARN, nothing fails, exit 0.
    let (found, code) = findings(without_pasta(who, &["doctor", &best, "--json"]));
    assert_eq!(code, 0, "{found:#?}");
    let net = decision(&found, "network");
    assert_eq!(str_of(net, "status"), "warn", "{net:#}");
    assert_eq!(str_of(net, "decision"), "degraded", "{net:#}");
    assert!(
        found.iter().all(|f| str_of(f, "status") != "fail"),
        "{found:#?}"
    );
    // Control: net: none needs no pasta; applied, ok, exit 0.
    let (found, code) = findings(without_pasta(who, &["doctor", &none, "--json"]));
    assert_eq!(code, 0, "{found:#?}");
    let net = decision(&found, "network");
    assert_eq!(str_of(net, "status"), "ok", "{net:#}");
    assert_eq!(str_of(net, "decision"), "applied", "{net:#}");
    assert!(
        !found.iter().any(|f| str_of(f, "detail").contains("pasta")),
        "net: none needs no pasta: {found:#?}"
    );
});

both!(
    doctor_an_unknown_or_bad_profile_exits_as_check_does,
    |who| {
        let o = run(who, &["doctor", "lasagna-no-such-profile"]);
        let check = run(who, &["check", "lasagna-no-such-profile"]);
        assert_ne!(check.status.code(), Some(0));
        assert_eq!(o.status.code(), check.status.code(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("no profile named \"lasagna-no-such-profile\""),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            stdout(&o),
            "",
            "nothing is reported for a profile that does not load"
        );
        // A profile with an error: the file, line and column, and check's code.
        let dir = Scratch::new("doctor-bad");
        let p = dir.write(
            "bad.yaml",
            "extends: strict\nlayers:\n  seccomp:\n    mod: required\n",
        );
        let o = run(who, &["doctor", &p, "--json"]);
        let check = run(who, &["check", &p]);
        assert_ne!(check.status.code(), Some(0));
        assert_eq!(o.status.code(), check.status.code(), "{}", stderr(&o));
        assert!(stderr(&o).contains("bad.yaml:4:5"), "{}", stderr(&o));
        // Control: a profile that loads exits 0 and has its name on every finding.
        let good = dir.write("good.yaml", "extends: strict\n");
        let (found, code) = doctor_json(who, &[&good]);
        assert_eq!(code, 0, "{found:#?}");
        assert!(
            found.iter().all(|f| str_of(f, "profile") == "good"),
            "{found:#?}"
        );
    }
);

both!(
    doctor_a_best_effort_layer_skipped_warns_and_its_dependent_fails,
    |who| {
        // Namespaces best-effort without a user namespace: root creates them; a user cannot,
        // so the layer is skipped (WARN), and the filesystem layer, which needs its pid
        // namespace for a fresh /proc, is refused (FAIL with the fix): exit 1, as check says.
        let dir = Scratch::new("doctor-ns");
        let p = dir.write(
            "ns.yaml",
            "extends: strict\nlayers:\n  namespaces:\n    mode: best-effort\n    user: false\n",
        );
        let (found, code) = agrees_with_explain_and_check(who, &p, "ns");
        let ns = decision(&found, "namespaces");
        let fs = decision(&found, "filesystem");
        match who {
            As::Root => {
                assert_eq!(str_of(ns, "status"), "ok", "{ns:#}");
                assert_eq!(str_of(fs, "status"), "ok", "{fs:#}");
                assert_eq!(code, 0);
            }
            As::User => {
                assert_eq!(str_of(ns, "decision"), "skipped", "{ns:#}");
                assert_eq!(str_of(ns, "status"), "warn", "{ns:#}");
                assert_eq!(str_of(fs, "status"), "fail", "{fs:#}");
                assert!(str_of(fs, "fix").contains("pid: true"), "{fs:#}");
                assert_eq!(code, 1);
            }
        }
    }
);
