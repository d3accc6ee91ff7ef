//! Text that lasagna prints but did not write: profile names and descriptions, paths, the
//! payload's command and messages. Control characters in it are escaped before they reach
//! a terminal (an escape sequence in a profile's `description` must not move the cursor
//! or retitle the window), and the one "did you mean" helper lives here.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) written as `\n`, `\t`, `\e`, `\xNN` or
/// `\u{NNNN}`, and backslashes doubled only when something was escaped. Borrowed when
/// there is nothing to escape, so the common case costs nothing.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x100 && is_control(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_control(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Escape bytes that may not be UTF-8 (a path, a child's message).
pub fn escape_bytes(b: &[u8]) -> String {
    escape(&String::from_utf8_lossy(b)).into_owned()
}

/// Cut `s` to at most `max` bytes (`max` > 3) at a character boundary, marking the cut
/// with `...`: for text a payload chose, before the supervisor keeps or prints it.
pub fn clip(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
}

/// `s` in double quotes, escaped, and cut to `max` characters with `…` (for quoting a
/// fragment of a file that may not be a profile at all).
pub fn quote_short(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let more = if s.chars().count() > max { "…" } else { "" };
    format!("\"{}{more}\"", escape(&cut).replace('"', "\\\""))
}

/// `s` in double quotes, escaped.
pub fn quote(s: &str) -> String {
    quote_short(s, usize::MAX)
}

fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The closest of `candidates` to `wrong`, within a small edit distance: the "did you
/// mean" of every error about an unknown name (keys, layers, profiles, syscalls, rights).
pub fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wrong.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)`, or nothing.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    suggest(wrong, candidates)
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// Optimal string alignment distance: edits plus adjacent transpositions ("opne" → "open"
/// is 1).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A duration as people write it: `10 s`, `1.5 s`, `250 ms`.
pub fn duration(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else if d < std::time::Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `SIGSEGV` for 11; `signal 99` for a number this platform does not name.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

/// A plan's reason split into what it says and the fixes it names (`(fix: …)`,
/// `(hint: …)`, `; fix: …`), each fix to its closing parenthesis or the end.
pub fn split_fix(reason: &str) -> (String, Option<String>) {
    let mut rest = reason.to_string();
    let mut fixes = Vec::new();
    loop {
        let found = ["(fix: ", "(hint: ", "; fix: "]
            .iter()
            .filter_map(|m| rest.find(m).map(|at| (at, *m)))
            .min();
        let Some((at, marker)) = found else { break };
        let body = &rest[at + marker.len()..];
        let mut depth = 0usize;
        let end = body
            .char_indices()
            .find_map(|(i, c)| match c {
                '(' => {
                    depth += 1;
                    None
                }
                ')' if depth == 0 => Some(i),
                ')' => {
                    depth -= 1;
                    None
                }
                _ => None,
            })
            .unwrap_or(body.len());
        fixes.push(body[..end].trim().to_string());
        // An opening parenthesis of the marker's closes with the fix; after "; " the
        // parenthesis, if any, is the text's own.
        let after = if marker.starts_with('(') {
            body.get(end + 1..).unwrap_or("")
        } else {
            &body[end..]
        };
        rest = format!("{}{after}", rest[..at].trim_end());
    }
    let fix = (!fixes.is_empty()).then(|| fixes.join("; "));
    (rest, fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb\nc"), "a\\e[2Jb\\nc");
        assert_eq!(escape("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(quote_short("abcdef", 3), "\"abc…\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("opne", ["open", "close"]), Some("open"));
        assert_eq!(
            suggest("landlok", ["landlock", "seccomp"]),
            Some("landlock")
        );
        assert_eq!(suggest("zzzzzzzz", ["open"]), None);
        assert_eq!(
            did_you_mean("strcit", ["strict"]),
            " (did you mean \"strict\"?)"
        );
    }

    #[test]
    fn durations_read_as_written() {
        use std::time::Duration;
        assert_eq!(duration(Duration::from_secs(10)), "10 s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(duration(Duration::from_millis(250)), "250 ms");
    }
    #[test]
    fn split_fix_takes_each_fix_out_of_the_reason() {
        assert_eq!(
            split_fix("no mount_setattr (fix: run on Linux 5.12 or newer)"),
            (
                "no mount_setattr".into(),
                Some("run on Linux 5.12 or newer".into())
            )
        );
        assert_eq!(
            split_fix("pasta missing (fix: install it (apt-get install passt)): the sandbox gets net: none"),
            (
                "pasta missing: the sandbox gets net: none".into(),
                Some("install it (apt-get install passt)".into())
            )
        );
        assert_eq!(
            split_fix("cannot create namespaces: user (max is 0; fix: sysctl -w x=1); time (none)"),
            (
                "cannot create namespaces: user (max is 0); time (none)".into(),
                Some("sysctl -w x=1".into())
            )
        );
        assert_eq!(
            split_fix("not writable (hint: chown it); payload gets RLIMIT_AS instead"),
            (
                "not writable; payload gets RLIMIT_AS instead".into(),
                Some("chown it".into())
            )
        );
        assert_eq!(
            split_fix("landlock: scopes dropped; fix: run on Linux 6.12+ (ABI 6), or set mode: best-effort"),
            (
                "landlock: scopes dropped".into(),
                Some("run on Linux 6.12+ (ABI 6), or set mode: best-effort".into())
            )
        );
        assert_eq!(
            split_fix("a (fix: one); b (fix: two)"),
            ("a; b".into(), Some("one; two".into()))
        );
        assert_eq!(
            split_fix("off in the profile"),
            ("off in the profile".into(), None)
        );
    }
}
