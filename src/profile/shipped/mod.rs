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
use super::SHIPPED_JSON as JSON;

/// A shipped profile as written, without parsing its YAML.
pub fn file(name: &str) -> Option<ProfileFile> {
    let (_, json) = JSON.iter().find(|(n, _)| *n == name)?;
    let _plain = PlainSpans::enter();
    let _in =
        crate::types::InFile::enter(&std::path::PathBuf::from(format!("<shipped>/{name}.yaml")));
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

    fn shipped_path(name: &str) -> std::path::PathBuf {
        Path::new("<shipped>").join(format!("{name}.yaml"))
    }

    /// The embedded form: locations without a file id (`file` sets the id when it reads it).
    fn json_of(text: &str, name: &str) -> String {
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::Object(loc)) = m.get_mut("loc") {
                        loc.remove("file");
                    }
                    m.values_mut().for_each(strip);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let file = parse_text(text, &shipped_path(name)).expect("shipped profile parses");
        let mut json = serde_json::to_value(&file).expect("a profile serializes");
        strip(&mut json);
        serde_json::to_string(&json).expect("a profile serializes") + "\n"
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
            let parsed = parse_text(text, &shipped_path(name)).expect("shipped profile parses");
            let embedded = file(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert_eq!(format!("{embedded:#?}"), format!("{parsed:#?}"), "{name}");
        }
        assert!(file("no-such-profile").is_none());
    }
}
