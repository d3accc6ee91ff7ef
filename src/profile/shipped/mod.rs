//! The shipped profiles, compiled into the binary as Rust values.
//!
//! `profiles/*.yaml` stay the source (`profiles show` prints them, and so does the
//! reference); `compiled.rs` is generated from them, so launching a shipped profile does
//! not parse YAML (about half a millisecond of a launch, most of it the parser's cold
//! start). A test fails while `compiled.rs` and the YAML disagree and tells how to
//! regenerate it (`make shipped`); another checks that both give the same profile.

#[cfg(test)]
mod codegen;
#[rustfmt::skip]
mod compiled;

use super::ProfileFile;

/// A shipped profile as written, without parsing its YAML.
pub fn file(name: &str) -> Option<ProfileFile> {
    compiled::file(name)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::profile::{parse_text, SHIPPED};

    const COMPILED: &str = "src/profile/shipped/compiled.rs";

    /// `compiled.rs` as generated from the YAML of every shipped profile.
    fn generate() -> String {
        let mut out = String::from(
            "// @generated from profiles/*.yaml by `make shipped`; do not edit.\n\
             // A test fails while this file and the YAML disagree.\n\n\
             #![allow(clippy::all, unused_imports)]\n\n\
             use crate::layers::{\n    capabilities, cgroups, filesystem, landlock, namespaces, process, rlimits, seccomp,\n};\n\
             use crate::profile::types::{Loc, Requirement, Spanned};\n\
             use crate::profile::{ProfileFile, Sections};\n\n\
             pub fn file(name: &str) -> Option<ProfileFile> {\n    match name {\n",
        );
        for (name, _) in SHIPPED {
            out += &format!("        {name:?} => Some({}()),\n", fn_name(name));
        }
        out += "        _ => None,\n    }\n}\n";
        for (name, text) in SHIPPED {
            let path = Path::new("profiles").join(format!("{name}.yaml"));
            let file = parse_text(text, &path).expect("shipped profile parses");
            let expr = codegen::expression(&file, 1).expect("shipped profile serializes");
            out += &format!(
                "\n/// profiles/{name}.yaml\nfn {}() -> ProfileFile {{\n    {expr}\n}}\n",
                fn_name(name)
            );
        }
        out
    }

    fn fn_name(profile: &str) -> String {
        profile.replace('-', "_")
    }

    #[test]
    fn compiled_rs_is_generated_from_the_yaml() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMPILED);
        let generated = generate();
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if generated == current {
            return;
        }
        if std::env::var_os("LASAGNA_REGENERATE").is_some() {
            std::fs::write(&path, generated).expect("write compiled.rs");
            return;
        }
        panic!("{COMPILED} is out of date with profiles/*.yaml: run `make shipped`");
    }

    #[test]
    fn compiled_and_parsed_profiles_are_the_same() {
        for (name, text) in SHIPPED {
            let parsed = parse_text(text, Path::new(name)).expect("shipped profile parses");
            let compiled = file(name).unwrap_or_else(|| panic!("{name} is not compiled"));
            assert_eq!(format!("{compiled:#?}"), format!("{parsed:#?}"), "{name}");
        }
        assert!(file("no-such-profile").is_none());
    }
}
