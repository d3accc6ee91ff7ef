//! The profile format's JSON Schema, derived from the section types (`schemars`), so it
//! cannot drift from what the parser takes; and a small validator for the subset of JSON
//! Schema it uses, with which the tests hold `profiles/REFERENCE.yaml` and every shipped
//! profile to it, and the schema to the reference (every key documented).

use serde_json::{Map, Value};

/// Where `make install` and the Debian package put the schema; the shipped profiles'
/// yaml-language-server modeline points here.
pub const INSTALLED_PATH: &str = "/usr/share/lasagna/profile.schema.json";

/// The schema of a profile file (draft 2020-12).
pub fn json() -> Value {
    let schema = schemars::schema_for!(super::ProfileFile);
    let mut v = serde_json::to_value(schema).expect("a schema serializes");
    if let Some(o) = v.as_object_mut() {
        o.insert("title".into(), "lasagna profile".into());
        o.insert(
            "description".into(),
            "A lasagna sandbox profile: one optional section per defense layer. `lasagna schema` prints the commented reference."
                .into(),
        );
    }
    v
}

/// Every place where `value` does not fit `schema` (`$ref`s resolved against `root`), as
/// `path: why`.
pub fn validate(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    let Some(s) = schema.as_object() else {
        return; // `true`: anything
    };
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = s.get(key) {
            let fits = options.iter().any(|o| {
                let mut e = Vec::new();
                validate(root, o, value, path, &mut e);
                e.is_empty()
            });
            if !fits {
                out.push(format!("{path}: fits none of the {key} options"));
            }
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for o in all {
            validate(root, o, value, path, out);
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| type_fits(t, value)) {
            out.push(format!(
                "{path}: {} where the schema takes {}",
                kind(value),
                types.join(" or ")
            ));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(value) {
            out.push(format!(
                "{path}: {value} is not one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            out.push(format!("{path}: {value} is not {c}"));
        }
    }
    if let Value::Object(map) = value {
        let props = s.get("properties").and_then(Value::as_object);
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, v, &format!("{path}.{k}"), out),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{path}: unknown key {k:?}")),
                    Some(extra @ Value::Object(_)) => {
                        validate(root, extra, v, &format!("{path}.{k}"), out)
                    }
                    _ => {}
                },
            }
        }
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    out.push(format!("{path}: {r:?} is required"));
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, s.get("items")) {
        for (i, v) in items.iter().enumerate() {
            validate(root, item, v, &format!("{path}[{i}]"), out);
        }
    }
}

pub(super) fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix("#/")
                .and_then(|p| p.split('/').try_fold(root, |v, k| v.get(k)));
            match target {
                Some(t) => resolve(root, t),
                None => schema,
            }
        }
        None => schema,
    }
}

fn type_fits(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Every key path the schema describes (`layers.network.allow`, ...), for the check that
/// the reference documents each one.
pub fn key_paths(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(root, root, "", &mut out, 0);
    out.sort();
    out.dedup();
    out
}

fn collect(root: &Value, schema: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 12 {
        return;
    }
    let schema = resolve(root, schema);
    let Some(s) = schema.as_object() else { return };
    let empty = Map::new();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, v) in props {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        out.push(p.clone());
        collect(root, v, &p, out, depth + 1);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(options)) = s.get(key) {
            for o in options {
                collect(root, o, path, out, depth + 1);
            }
        }
    }
    if let Some(items) = s.get("items") {
        collect(root, items, path, out, depth + 1);
    }
}

/// Every key path a YAML document (as JSON) uses.
pub fn used_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push(p.clone());
                used_paths(child, &p, out);
            }
        }
        Value::Array(items) => {
            for i in items {
                used_paths(i, path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str::<Value>(text).expect("YAML parses")
    }

    #[test]
    fn the_reference_and_every_shipped_profile_fit_the_schema() {
        let schema = json();
        let mut errors = Vec::new();
        let reference = yaml(include_str!("../../profiles/REFERENCE.yaml"));
        validate(&schema, &schema, &reference, "REFERENCE.yaml", &mut errors);
        for (name, text) in super::super::SHIPPED {
            validate(&schema, &schema, &yaml(text), name, &mut errors);
        }
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn the_reference_documents_every_key_of_the_schema() {
        let schema = json();
        let text = include_str!("../../profiles/REFERENCE.yaml");
        let mut used = Vec::new();
        used_paths(&yaml(text), "", &mut used);
        // A key the reference can only show commented out (`# extends: strict`, an
        // `import` of a file the host may not have) counts when such a line names it.
        let commented = |key: &str| {
            text.lines().any(|l| {
                l.trim_start()
                    .strip_prefix('#')
                    .is_some_and(|r| r.trim_start().starts_with(&format!("{key}:")))
            })
        };
        let missing: Vec<String> = key_paths(&schema)
            .into_iter()
            .filter(|p| !used.contains(p) && !commented(p.rsplit('.').next().unwrap_or(p)))
            .collect();
        assert!(
            missing.is_empty(),
            "REFERENCE.yaml does not show: {missing:?}"
        );
    }

    #[test]
    fn the_validator_finds_what_the_parser_refuses() {
        let schema = json();
        for bad in [
            "layers:\n  network:\n    nett: none\n",
            "layers:\n  cgroups:\n    memory: 256M\n",
            "layers:\n  namespaces:\n    pid: yes-please\n",
            "extendz: strict\n",
        ] {
            let mut e = Vec::new();
            validate(&schema, &schema, &yaml(bad), "bad", &mut e);
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn the_shipped_profiles_carry_the_modeline() {
        for (name, text) in super::super::SHIPPED {
            assert!(
                text.starts_with(&format!(
                    "# yaml-language-server: $schema={INSTALLED_PATH}\n"
                )),
                "{name}.yaml does not start with the yaml-language-server modeline"
            );
        }
    }
}
