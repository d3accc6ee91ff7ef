//! The shipped profiles, embedded in the binary as JSON generated from their YAML.
//!
//! `profiles/*.yaml` stay the source (`profiles show` prints them, and so does the
//! reference); `json/NAME.json` is each one after parsing, spans included, written by a
//! test (`make shipped`). Launching a shipped profile then parses a few kilobytes of JSON
//! (tens of microseconds) instead of running the YAML parser, whose cold start alone is
//! about 0.2 ms. A test fails while the JSON and the YAML disagree.

use super::ProfileFile;
use crate::types::PlainSpans;

/// `(name, JSON)` of every shipped profile, in the order of `profile::SHIPPED`.
const JSON: &[(&str, &str)] = &[
    ("seccomp-default", include_str!("json/seccomp-default.json")),
    ("base", include_str!("json/base.json")),
    ("strict", include_str!("json/strict.json")),
    ("cli-read", include_str!("json/cli-read.json")),
    ("cli-write", include_str!("json/cli-write.json")),
    ("interpreter", include_str!("json/interpreter.json")),
    ("build", include_str!("json/build.json")),
    ("python3", include_str!("json/python3.json")),
    ("node", include_str!("json/node.json")),
    ("perl", include_str!("json/perl.json")),
    ("ruby", include_str!("json/ruby.json")),
    ("lua", include_str!("json/lua.json")),
    ("sh", include_str!("json/sh.json")),
    ("make", include_str!("json/make.json")),
    ("cmake", include_str!("json/cmake.json")),
    ("cargo", include_str!("json/cargo.json")),
    ("jq", include_str!("json/jq.json")),
    ("sqlite3", include_str!("json/sqlite3.json")),
    ("tar", include_str!("json/tar.json")),
    ("gzip", include_str!("json/gzip.json")),
    ("xz", include_str!("json/xz.json")),
    ("zstd", include_str!("json/zstd.json")),
    ("unzip", include_str!("json/unzip.json")),
    ("awk", include_str!("json/awk.json")),
    ("sed", include_str!("json/sed.json")),
    ("ripgrep", include_str!("json/ripgrep.json")),
    ("imagemagick", include_str!("json/imagemagick.json")),
    ("ffmpeg", include_str!("json/ffmpeg.json")),
    ("curl", include_str!("json/curl.json")),
    ("wget", include_str!("json/wget.json")),
    ("git", include_str!("json/git.json")),
    ("untrusted", include_str!("json/untrusted.json")),
    ("judge", include_str!("json/judge.json")),
    ("agent", include_str!("json/agent.json")),
];

/// A shipped profile as written, without parsing its YAML.
pub fn file(name: &str) -> Option<ProfileFile> {
    let (_, json) = JSON.iter().find(|(n, _)| *n == name)?;
    let _plain = PlainSpans::enter();
    serde_json::from_str(json).ok()
}

/// Whether a shipped profile's values hold variables.
pub fn has_vars(src: &super::Source) -> bool {
    match src {
        super::Source::Shipped(name) => JSON
            .iter()
            .any(|(n, json)| n == name && super::vars::has_vars(json)),
        super::Source::File(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::profile::{parse_text, SHIPPED};

    fn json_of(text: &str, name: &str) -> String {
        let file = parse_text(text, Path::new(name)).expect("shipped profile parses");
        serde_json::to_string(&file).expect("a profile serializes") + "\n"
    }

    #[test]
    fn json_is_generated_from_the_yaml() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/profile/shipped/json");
        let regenerate = std::env::var_os("LASAGNA_REGENERATE").is_some();
        let mut stale = Vec::new();
        for (name, text) in SHIPPED {
            let path = dir.join(format!("{name}.json"));
            let generated = json_of(text, name);
            if std::fs::read_to_string(&path).unwrap_or_default() != generated {
                if regenerate {
                    std::fs::write(&path, generated).expect("write the JSON");
                } else {
                    stale.push(name.to_string());
                }
            }
        }
        assert!(
            stale.is_empty(),
            "src/profile/shipped/json is out of date for {stale:?}: run `make shipped`"
        );
        assert_eq!(
            JSON.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            "every shipped profile has its JSON"
        );
    }

    #[test]
    fn json_and_parsed_profiles_are_the_same() {
        for (name, text) in SHIPPED {
            let parsed = parse_text(text, Path::new(name)).expect("shipped profile parses");
            let embedded = file(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert_eq!(format!("{embedded:#?}"), format!("{parsed:#?}"), "{name}");
        }
        assert!(file("no-such-profile").is_none());
    }
}
