//! Every unknown key and every value of the wrong kind in a profile file, for `check`:
//! the parse stops at its first error, this walk goes on to the end of the file.
//!
//! It reads the file's YAML events once (the event parser serde-saphyr itself reads them
//! with), following the profile's JSON Schema ([`super::schema::json`], derived from the
//! section types) to each key's place. A key the schema does not know there, and a value
//! of a kind that cannot fit there (a scalar where a mapping or a list belongs, a list or
//! a mapping where a scalar belongs, a word where a boolean or a number belongs), is a
//! candidate; the parser is then given that one node alone at the same place, and only
//! what it refuses is reported, with its own message. So a key the parser takes but the
//! schema hides (`process: close-fds`, kept to say it is gone) is never reported, and each
//! finding reads as the same error would read had it been the first.
//!
//! Where the schema cannot tell what belongs (an untagged enum, `anyOf` options of more
//! than one kind, a mapping with free keys such as `env.set`), nothing below is looked at;
//! neither is a tagged node, a merge key's value or anything deeper than [`MAX_DEPTH`]. An
//! alias is a value that fits anywhere: nothing is expanded, and the walk is linear in
//! the text. Nothing here has a side effect.

use std::path::Path;

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StrInput};

use super::{schema, ErrorLine};
use crate::types::{Loc, ProfileError};

/// Deeper than any profile: below it nothing is looked at.
const MAX_DEPTH: usize = 32;

/// The schema of a place the walk knows nothing about: anything fits.
static ANYTHING: Value = Value::Bool(true);

/// Every unknown key and wrongly-kinded value of the profile file `text`, in the order of
/// the file, each at its line:column with the parser's message for it. Meant for a file
/// the parser already refused: the first of them is usually that refusal.
pub fn findings(text: &str, file: &Path) -> Vec<ProfileError> {
    if text.len() as u64 > super::MAX_PROFILE_BYTES {
        return Vec::new();
    }
    let root = schema::json();
    let mut walk = Walk {
        events: Parser::new_from_str(text),
        done: false,
        root: &root,
        lines: text.lines(),
        line: (0, ErrorLine::of("")),
        text,
        file,
        path: Vec::new(),
        found: Vec::new(),
    };
    // The first document's root; a second document is the parser's error, not ours.
    if let Some((event, span)) = walk.next().filter(|(e, _)| e.is_node()) {
        walk.node(&root, event, span, 0);
    }
    walk.found
}

/// One step from the root to a place: a mapping's known key, or a list's item.
#[derive(Debug, Clone, Copy)]
enum Step<'s> {
    Field(&'s str),
    Item,
}

/// A candidate, as it is given to the parser alone.
enum Leaf<'a> {
    /// A key the schema does not know at its place.
    Key(&'a str, ScalarStyle),
    Scalar(&'a str, ScalarStyle),
    Sequence,
    Mapping,
}

/// What the schema takes at a place.
enum Place<'s> {
    /// Unknown, or more than one kind of thing: nothing there is reported.
    Anything,
    Typed {
        /// The JSON Schema `type` names: `object`, `array`, `string`, `boolean`, ...
        types: Vec<&'s str>,
        /// A mapping's keys, when they are fixed (`additionalProperties: false`).
        fields: Option<&'s Map<String, Value>>,
        /// A list's items.
        items: &'s Value,
    },
}

impl<'s> Place<'s> {
    fn of(root: &'s Value, schema: &'s Value) -> Place<'s> {
        let mut s = schema;
        // `Option<T>` is `anyOf: [T, null]`: the null is a value that fits, T is the place.
        for _ in 0..8 {
            let Some(o) = schema::resolve(root, s).as_object() else {
                return Place::Anything;
            };
            if let Some(options) = ["anyOf", "oneOf"]
                .iter()
                .find_map(|k| o.get(*k))
                .and_then(Value::as_array)
            {
                let mut real = options.iter().filter(|o| !is_null(root, o));
                match (real.next(), real.next()) {
                    (Some(one), None) => {
                        s = one;
                        continue;
                    }
                    _ => return Place::Anything,
                }
            }
            if o.contains_key("allOf") {
                return Place::Anything;
            }
            let types: Vec<&str> = match o.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => return Place::Anything,
            };
            let fields = match o.get("additionalProperties") {
                Some(Value::Bool(false)) => o.get("properties").and_then(Value::as_object),
                _ => None,
            };
            return Place::Typed {
                types,
                fields,
                items: o.get("items").unwrap_or(&ANYTHING),
            };
        }
        Place::Anything
    }
}

fn is_null(root: &Value, schema: &Value) -> bool {
    schema::resolve(root, schema)
        .get("type")
        .and_then(Value::as_str)
        == Some("null")
}

/// A scalar that reads as null (`~`, `null`, nothing), or that is empty: it fits wherever
/// a value may be left out, and is never reported.
fn null_like(value: &str, style: ScalarStyle) -> bool {
    let t = value.trim();
    t.is_empty() || (style == ScalarStyle::Plain && matches!(t, "~" | "null" | "Null" | "NULL"))
}

/// Whether a (non-null) scalar may fit one of `types`. Lenient on purpose: a number is
/// anything that starts like one (the parser takes `0x10`, `1_000`, `.inf`).
fn scalar_may_fit(types: &[&str], value: &str) -> bool {
    let t = value.trim();
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let first = unsigned.chars().next();
    types.iter().any(|ty| match *ty {
        "string" => true,
        // serde-saphyr's strict booleans.
        "boolean" => matches!(t, "true" | "True" | "TRUE" | "false" | "False" | "FALSE"),
        "integer" => first.is_some_and(|c| c.is_ascii_digit()),
        "number" => first.is_some_and(|c| c.is_ascii_digit() || c == '.'),
        _ => false,
    })
}

struct Walk<'t, 's> {
    events: Parser<'t, StrInput<'t>>,
    done: bool,
    root: &'s Value,
    text: &'t str,
    /// The lines after the one in `line`, and it with its number: findings come in the
    /// order of the file, so each line is read once.
    lines: std::str::Lines<'t>,
    line: (u64, ErrorLine<'t>),
    file: &'t Path,
    /// From the root to the node being read.
    path: Vec<Step<'s>>,
    found: Vec<ProfileError>,
}

impl<'t, 's> Walk<'t, 's> {
    /// The next node or collection end; comments and anchors are left out. A scan error
    /// ends the walk (the parse reported the first error already).
    fn next(&mut self) -> Option<(Event<'t>, Span)> {
        while !self.done {
            match self.events.next() {
                Some(Ok((e, span)))
                    if e.is_node()
                        || matches!(
                            e,
                            Event::SequenceEnd
                                | Event::MappingEnd
                                | Event::DocumentEnd
                                | Event::StreamEnd
                        ) =>
                {
                    return Some((e, span))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.done = true,
            }
        }
        None
    }

    /// Read past the rest of the node `event` starts, looking at nothing in it.
    fn skip(&mut self, event: Event<'t>) {
        if !matches!(event, Event::SequenceStart(..) | Event::MappingStart(..)) {
            return;
        }
        let mut open = 1usize;
        while open > 0 {
            match self.next() {
                Some((Event::SequenceStart(..) | Event::MappingStart(..), _)) => open += 1,
                Some((Event::SequenceEnd | Event::MappingEnd, _)) => open -= 1,
                Some(_) => {}
                None => return,
            }
        }
    }

    /// The node `event` starts, at a place whose schema is `schema`.
    fn node(&mut self, schema: &'s Value, event: Event<'t>, span: Span, depth: usize) {
        let place = if depth > MAX_DEPTH {
            Place::Anything
        } else {
            Place::of(self.root, schema)
        };
        let Place::Typed {
            types,
            fields,
            items,
        } = place
        else {
            return self.skip(event);
        };
        let at = loc(span);
        match event {
            Event::Scalar(value, style, _, None) => {
                if !null_like(&value, style) && !scalar_may_fit(&types, &value) {
                    self.confirm(Leaf::Scalar(&value, style), at);
                }
            }
            Event::SequenceStart(_, _, None) if types.contains(&"array") => {
                self.path.push(Step::Item);
                while let Some((e, span)) = self.next() {
                    if matches!(e, Event::SequenceEnd) {
                        break;
                    }
                    self.node(items, e, span, depth + 1);
                }
                self.path.pop();
            }
            Event::MappingStart(_, _, None) if types.contains(&"object") => match fields {
                Some(fields) => self.fields(fields, depth),
                None => self.skip(event),
            },
            Event::SequenceStart(_, _, None) => {
                self.confirm(Leaf::Sequence, at);
                self.skip(event);
            }
            Event::MappingStart(_, _, None) => {
                self.confirm(Leaf::Mapping, at);
                self.skip(event);
            }
            // Aliases, tagged nodes.
            other => self.skip(other),
        }
    }

    /// The entries of a mapping whose keys are `fields`, after its start.
    fn fields(&mut self, fields: &'s Map<String, Value>, depth: usize) {
        while let Some((key, span)) = self.next() {
            match key {
                Event::MappingEnd => return,
                Event::Scalar(k, style, _, None) if k != "<<" => {
                    let Some((value, value_span)) = self.next() else {
                        return;
                    };
                    match fields.get_key_value(k.as_ref()) {
                        Some((name, schema)) => {
                            self.path.push(Step::Field(name));
                            self.node(schema, value, value_span, depth + 1);
                            self.path.pop();
                        }
                        None => {
                            self.confirm(Leaf::Key(&k, style), loc(span));
                            self.skip(value);
                        }
                    }
                }
                // A merge key, a tagged, aliased or complex key: neither it nor its value
                // is looked at.
                other => {
                    self.skip(other);
                    if let Some((value, _)) = self.next() {
                        self.skip(value);
                    }
                }
            }
        }
    }

    /// Give the parser `leaf` alone at the current place; what it refuses there, at that
    /// node, is a finding at `at`, in the words of the parse.
    fn confirm(&mut self, leaf: Leaf<'_>, at: Loc) {
        let (doc, column) = alone(&self.path, &leaf);
        let Err(e) = super::parse(&doc, self.file) else {
            return;
        };
        if e.location().map(|l| (l.line(), l.column())) != Some((1, column)) {
            return;
        }
        let mut err = super::yaml_error(&e, self.file);
        err.loc = Some(at);
        let err = super::refine_at(err, self.line(at.line));
        self.found.push(err);
    }

    /// Line `n` (1-indexed) of the text, as [`super::refine`] reads it.
    fn line(&mut self, n: u64) -> &ErrorLine<'t> {
        if n < self.line.0 {
            self.lines = self.text.lines();
            self.line = (0, ErrorLine::of(""));
        }
        while self.line.0 < n {
            self.line = (
                self.line.0 + 1,
                ErrorLine::of(self.lines.next().unwrap_or("")),
            );
        }
        &self.line.1
    }
}

/// serde-saphyr's place for an event: its first character, 1-indexed.
fn loc(span: Span) -> Loc {
    Loc::at(span.start.line() as u64, span.start.col() as u64 + 1)
}

/// A one-line document holding only `leaf` at `path`, and the column `leaf` starts at.
fn alone(path: &[Step<'_>], leaf: &Leaf<'_>) -> (String, u64) {
    let mut doc = String::new();
    for step in path {
        match step {
            Step::Field(name) => {
                doc.push('{');
                write_scalar(&mut doc, name, ScalarStyle::Plain);
                doc.push_str(": ");
            }
            Step::Item => doc.push('['),
        }
    }
    if matches!(leaf, Leaf::Key(..)) {
        doc.push('{');
    }
    let column = doc.chars().count() as u64 + 1;
    match leaf {
        Leaf::Key(k, style) => {
            write_scalar(&mut doc, k, *style);
            doc.push_str(": null}");
        }
        Leaf::Scalar(v, style) => write_scalar(&mut doc, v, *style),
        Leaf::Sequence => doc.push_str("[]"),
        Leaf::Mapping => doc.push_str("{}"),
    }
    for step in path.iter().rev() {
        doc.push(match step {
            Step::Field(_) => '}',
            Step::Item => ']',
        });
    }
    (doc, column)
}

/// A scalar as the parser reads it back: a plain word stays plain (so `yes` and `12` are
/// resolved as they were), anything else is double-quoted with every character outside
/// printable ASCII escaped.
fn write_scalar(doc: &mut String, value: &str, style: ScalarStyle) {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+');
    let plain = style == ScalarStyle::Plain
        && value.chars().next().is_some_and(word)
        && value.chars().all(|c| word(c) || c == '-');
    if plain {
        doc.push_str(value);
        return;
    }
    doc.push('"');
    for c in value.chars() {
        match c {
            '"' => doc.push_str("\\\""),
            '\\' => doc.push_str("\\\\"),
            ' '..='~' => doc.push(c),
            c if (c as u32) <= 0xffff => doc.push_str(&format!("\\u{:04x}", c as u32)),
            c => doc.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    doc.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("p.yaml")
    }

    /// Each finding as `line:col: message`.
    fn found(text: &str) -> Vec<String> {
        findings(text, file())
            .iter()
            .map(|e| {
                let l = e.loc.expect("a finding has a place");
                format!("{}:{}: {}", l.line, l.column, e.message)
            })
            .collect()
    }

    fn first_error(text: &str) -> String {
        let e = super::super::parse_text(text, file()).expect_err("the parse refuses it");
        let l = e.loc.expect("the parse error has a place");
        format!("{}:{}: {}", l.line, l.column, e.message)
    }

    /// Files with one problem each: the walk finds exactly the parse's error, at its place,
    /// in its words (hint included).
    #[test]
    fn one_problem_is_found_as_the_parse_reports_it() {
        for text in [
            "extendz: strict\n",
            "name: t\nlayers:\n  filesystm: {}\n",
            "layers: {network: {mode: off}, proces: {}}\n",
            "layers:\n  network:\n    nett: none\n",
            "layers:\n  filesystem:\n    mounts:\n      - bind: /a\n        optinal: true\n",
            "layers:\n  landlock:\n    rules:\n      - path: /a\n        access: [read]\n        extra: 1\n",
            "layers:\n  chroot: {}\n",
            "layers: 3\n",
            "layers:\n  network: [a]\n",
            "layers:\n  network:\n    - a\n",
            "layers:\n  cgroups:\n    memory: 256M\n",
            "layers:\n  process:\n    env: 3\n",
            "layers:\n  namespaces:\n    pid: yes-please\n",
            "layers:\n  namespaces:\n    pid: [x]\n",
            "layers:\n  namespaces:\n    uid: abc\n",
            "layers:\n  cgroups:\n    cpu:\n      cores: many\n",
            "layers:\n  process:\n    pass-fds: [x]\n",
            "layers:\n  seccomp:\n    allow: {a: 1}\n",
            "layers:\n  seccomp:\n    allow-if: [3]\n",
            "layers:\n  filesystem:\n    mounts: {a: 1}\n",
            "command: foo\n",
            "command: [a, [b]]\n",
            "name: {a: 1}\n",
            "[1, 2]\n",
            "{name: é, extendz: x}\n",
            "{name: \"é\", \"ext\\u00e9nds\": x}\n",
            "layers:\n  process:\n    timeout: [1]\n    cwd: ${CWD}\n",
        ] {
            assert_eq!(found(text), vec![first_error(text)], "{text}");
        }
    }

    #[test]
    fn every_problem_of_a_file_is_found_in_its_order() {
        let text = "\
name: t
extendz: strict
layers:
  procss: {}
  network:
    mode: required
    nett: none
  namespaces:
    pid: maybe
    user: [true]
  filesystem:
    mounts:
      - bind: /a
        optinal: true
      - 3
";
        let got = found(text);
        let places: Vec<&str> = got.iter().map(|f| f.split(": ").next().unwrap()).collect();
        assert_eq!(
            places,
            ["2:1", "4:3", "7:5", "9:10", "10:11", "14:9", "15:9"],
            "{got:#?}"
        );
        assert!(got[0].contains("unknown field `extendz`"), "{got:#?}");
        assert!(got[3].contains("invalid boolean"), "{got:#?}");
        assert!(got[5].contains("unknown field `optinal`"), "{got:#?}");
        // The same hint as the parse gives.
        let errors = findings(text, file());
        assert_eq!(
            errors[1].hint.as_deref(),
            Some("did you mean `process`? unknown keys are errors; see 'lasagna schema' for the format")
        );
        // On one line, as the issue shows it.
        assert_eq!(
            found("layers: {filesystm: {}, proces: {}}\n")
                .iter()
                .map(|f| f.split(": ").next().unwrap())
                .collect::<Vec<_>>(),
            ["1:10", "1:25"]
        );
    }

    #[test]
    fn nothing_is_found_where_the_schema_cannot_tell_or_the_parse_takes_it() {
        for text in [
            include_str!("../../profiles/REFERENCE.yaml"),
            include_str!("../../profiles/strict.yaml"),
            include_str!("../../profiles/agent.yaml"),
            // Hidden from the schema, taken by the parser (validation says it is gone).
            "layers:\n  process:\n    close-fds: true\n",
            // Free keys, untagged and plain enums, nulls, numbers as the parser reads them.
            "layers:\n  process:\n    env:\n      set: {ANY_NAME: 1, OTHER: [x]}\n",
            "layers:\n  namespaces:\n    host-uid: [1]\n    mode: [a]\n",
            "layers:\n  namespaces:\n    pid: ~\n    uid: 0x10\n    net: TRUE\n  network:\n",
            "layers:\n  cgroups:\n    cpu: {cores: .5}\n    pids: {max: 1_000}\n",
            // Merge keys, tags and aliases are not looked into.
            "layers:\n  network: &n {mode: off}\n  process: {<<: *n, bogus: *n}\n",
            "layers: !!map {bogus: 1}\n",
            "name: &a x\nprogram: *a\n",
        ] {
            let got = found(text);
            let only_bogus = got.iter().all(|f| f.contains("`bogus`"));
            assert!(only_bogus, "{text}: {got:#?}");
        }
        // The merge entry's explicit keys are still keys.
        assert_eq!(
            found("layers:\n  network: &n {mode: off}\n  process: {<<: *n, bogus: *n}\n").len(),
            1
        );
    }

    #[test]
    fn nothing_is_expanded_and_the_walk_ends() {
        // The shape of an alias bomb: each level names the one before ten times.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..40 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let got = found(&text);
        assert_eq!(got.len(), 40, "{got:#?}");
        assert!(got.iter().all(|f| f.contains("unknown field `a")));
        // Nesting past any profile, and a file cut short: no panic, what was read counts.
        let deep = format!("layers: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(found(&deep).len(), 1);
        let cut = found("bogus: 1\nlayers: {network: [\n");
        let places: Vec<&str> = cut.iter().map(|f| f.split(": ").next().unwrap()).collect();
        assert_eq!(places, ["1:1", "2:19"], "{cut:#?}");
        assert!(found("").is_empty());
        assert!(found("- - - -").len() <= 1);
    }

    #[test]
    fn the_lone_node_reads_back_as_written() {
        let path = [
            Step::Field("layers"),
            Step::Field("filesystem"),
            Step::Field("mounts"),
            Step::Item,
        ];
        let (doc, column) = alone(&path, &Leaf::Key("x\"y\u{7f}é", ScalarStyle::Plain));
        assert_eq!(
            doc,
            "{layers: {filesystem: {mounts: [{\"x\\\"y\\u007f\\u00e9\": null}]}}}"
        );
        assert_eq!(&doc[column as usize - 1..column as usize], "\"");
        let (doc, _) = alone(&[], &Leaf::Scalar("yes", ScalarStyle::Plain));
        assert_eq!(doc, "yes");
        let (doc, _) = alone(&[], &Leaf::Scalar("yes", ScalarStyle::SingleQuoted));
        assert_eq!(doc, "\"yes\"");
        let (doc, _) = alone(&[], &Leaf::Scalar("a: b", ScalarStyle::Plain));
        assert_eq!(doc, "\"a: b\"");
    }
}
