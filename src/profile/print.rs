//! `run --print-profile`: the merged profile as YAML, each located value followed by a
//! comment naming the file and line it comes from (the last file in merge order that wrote
//! it), or the command-line flag. Values without a location (modes, booleans, numbers
//! written as such) are printed without one.

use std::collections::HashMap;

use serde_json::Value;

use super::ProfileFile;

/// `files`: each file's own sections as JSON, root of the chain first; `flags`: the
/// ad-hoc flags (an overlay value's loc is `0:N`, the N-th flag).
pub fn render(merged: &ProfileFile, files: &[(String, Value)], flags: &[String]) -> String {
    let mut origin: HashMap<String, String> = HashMap::new();
    for (path, json) in files {
        index(json, path, &mut origin);
    }
    let mut out = String::from("# the merged profile; each value's origin after it\n");
    for (key, value) in [
        ("name", merged.name.clone().map(Value::String)),
        ("description", merged.description.clone().map(Value::String)),
        ("program", merged.program.clone().map(Value::String)),
        ("package", merged.package.clone().map(Value::String)),
        (
            "command",
            merged
                .command
                .clone()
                .map(|c| Value::Array(c.into_iter().map(Value::String).collect())),
        ),
    ] {
        if let Some(v) = value {
            out.push_str(&format!("{key}: {}\n", scalar(&v)));
        }
    }
    let layers = serde_json::to_value(&merged.layers).unwrap_or_default();
    out.push_str("layers:\n");
    block(&layers, 1, &origin, flags, &mut out);
    out
}

fn key_of(v: &Value, loc: &Value) -> String {
    format!("{v}@{}:{}", loc["line"], loc["column"])
}

fn index(v: &Value, path: &str, origin: &mut HashMap<String, String>) {
    match v {
        Value::Object(m) if is_located(m) => {
            let loc = &m["loc"];
            origin.insert(key_of(&m["value"], loc), format!("{path}:{}", loc["line"]));
        }
        Value::Object(m) => m.values().for_each(|c| index(c, path, origin)),
        Value::Array(a) => a.iter().for_each(|c| index(c, path, origin)),
        _ => {}
    }
}

fn is_located(m: &serde_json::Map<String, Value>) -> bool {
    m.len() == 2 && m.contains_key("value") && m.get("loc").is_some_and(Value::is_object)
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => !is_located(m) && m.values().all(empty),
        _ => false,
    }
}

fn comment(
    m: &serde_json::Map<String, Value>,
    origin: &HashMap<String, String>,
    flags: &[String],
) -> String {
    let loc = &m["loc"];
    if loc["line"] == 0 {
        let n = loc["column"].as_u64().unwrap_or(0) as usize;
        let flag = n
            .checked_sub(1)
            .and_then(|i| flags.get(i))
            .map_or("the command line", String::as_str);
        return format!("  # {}", crate::text::escape(flag));
    }
    match origin.get(&key_of(&m["value"], loc)) {
        Some(o) => format!("  # {}", crate::text::escape(o)),
        None => String::new(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(a) => format!("[{}]", a.iter().map(scalar).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

fn block(
    v: &Value,
    depth: usize,
    origin: &HashMap<String, String>,
    flags: &[String],
    out: &mut String,
) {
    let pad = "  ".repeat(depth);
    let Value::Object(map) = v else { return };
    for (k, child) in map {
        if empty(child) {
            continue;
        }
        match child {
            Value::Object(m) if is_located(m) => {
                out.push_str(&format!(
                    "{pad}{k}: {}{}\n",
                    scalar(&m["value"]),
                    comment(m, origin, flags)
                ));
            }
            Value::Object(_) => {
                out.push_str(&format!("{pad}{k}:\n"));
                block(child, depth + 1, origin, flags, out);
            }
            Value::Array(items) => {
                out.push_str(&format!("{pad}{k}:\n"));
                for item in items {
                    item_line(item, depth + 1, origin, flags, out);
                }
            }
            other => out.push_str(&format!("{pad}{k}: {}\n", scalar(other))),
        }
    }
}

fn item_line(
    item: &Value,
    depth: usize,
    origin: &HashMap<String, String>,
    flags: &[String],
    out: &mut String,
) {
    let pad = "  ".repeat(depth);
    match item {
        Value::Object(m) if is_located(m) => {
            out.push_str(&format!(
                "{pad}- {}{}\n",
                scalar(&m["value"]),
                comment(m, origin, flags)
            ));
        }
        Value::Object(m) => {
            // A mapping item: its first key on the dash line, the rest below it.
            let mut first = true;
            for (k, child) in m {
                if empty(child) {
                    continue;
                }
                let lead = if first {
                    format!("{pad}- ")
                } else {
                    format!("{pad}  ")
                };
                first = false;
                match child {
                    Value::Object(c) if is_located(c) => {
                        out.push_str(&format!(
                            "{lead}{k}: {}{}\n",
                            scalar(&c["value"]),
                            comment(c, origin, flags)
                        ));
                    }
                    Value::Object(_) => {
                        out.push_str(&format!("{lead}{k}:\n"));
                        block(child, depth + 2, origin, flags, out);
                    }
                    Value::Array(items) => {
                        out.push_str(&format!("{lead}{k}:\n"));
                        for i in items {
                            item_line(i, depth + 2, origin, flags, out);
                        }
                    }
                    other => out.push_str(&format!("{lead}{k}: {}\n", scalar(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}- {}\n", scalar(other))),
    }
}
