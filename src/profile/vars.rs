//! Variables in profile values: `${HOME}`, `${CWD}`, `${USER}`, `${UID}`, `${GID}`,
//! `${XDG_RUNTIME_DIR}`, `${XDG_CONFIG_HOME}`, `${XDG_CACHE_HOME}`, `${PROFILE_DIR}` and
//! `${ENV:NAME}` / `${ENV:NAME:-default}`; `$${` is a literal `${`.
//!
//! Expanded once per file, right after it is read and before anything is merged or
//! validated, in every located value (paths, sources, rule paths, cwd, …), the `command`
//! and `process.env.set` values. Never in inline file `content`. No shell, no command
//! substitution, no nesting. A variable whose value is empty, holds a `..` component, or (for
//! the path variables) is not absolute, is an error naming the file, line, column, the
//! variable and its value: a profile that says `${HOME}/.cache` must never mean `/.cache` or
//! `../../etc`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::types::{Loc, ProfileError};

/// The variables' values for one file.
#[derive(Debug, Clone)]
pub struct Vars {
    home: Option<String>,
    cwd: Option<String>,
    user: Option<String>,
    uid: u32,
    gid: u32,
    runtime: Option<String>,
    config: Option<String>,
    cache: Option<String>,
    profile_dir: Option<String>,
}

/// The variables that name directories (their values must be absolute).
const PATHS: [&str; 6] = [
    "HOME",
    "CWD",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "PROFILE_DIR",
];
const NAMES: [&str; 9] = [
    "HOME",
    "CWD",
    "USER",
    "UID",
    "GID",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "PROFILE_DIR",
];

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Vars {
    /// The caller's values; `profile_dir`: the file's directory (`None` for a shipped one).
    pub fn of_caller(profile_dir: Option<&Path>) -> Vars {
        let uid = nix::unistd::getuid();
        let pw = crate::procfs::passwd_entry(uid.as_raw());
        let home = env("HOME").or_else(|| pw.as_ref().map(|(_, dir)| dir.clone()));
        let user = env("USER").or_else(|| pw.as_ref().map(|(name, _)| name.clone()));
        let under_home = |rel: &str| {
            home.as_ref()
                .map(|h| format!("{}/{rel}", h.trim_end_matches('/')))
        };
        Vars {
            cwd: std::env::current_dir()
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            uid: uid.as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            runtime: env("XDG_RUNTIME_DIR").or_else(|| Some(format!("/run/user/{}", uid.as_raw()))),
            config: env("XDG_CONFIG_HOME").or_else(|| under_home(".config")),
            cache: env("XDG_CACHE_HOME").or_else(|| under_home(".cache")),
            profile_dir: profile_dir.map(|p| {
                std::fs::canonicalize(p)
                    .unwrap_or_else(|_| p.to_path_buf())
                    .to_string_lossy()
                    .into_owned()
            }),
            home,
            user,
        }
    }

    /// The caller's home directory, as `${HOME}` expands.
    pub fn home(&self) -> Option<&str> {
        self.home.as_deref()
    }

    /// The caller's working directory, as `${CWD}` expands.
    pub fn cwd(&self) -> Option<&str> {
        self.cwd.as_deref()
    }

    /// The same values for another file.
    pub fn for_file(&self, profile_dir: Option<&Path>) -> Vars {
        let mut v = self.clone();
        v.profile_dir = profile_dir.map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| PathBuf::from(p))
                .to_string_lossy()
                .into_owned()
        });
        v
    }

    fn get(&self, name: &str) -> Result<String, String> {
        let unset = |what: &str| format!("${{{name}}} has no value: {what}");
        match name {
            "HOME" => self.home.clone().ok_or_else(|| unset("HOME is not set")),
            "CWD" => self
                .cwd
                .clone()
                .ok_or_else(|| unset("the working directory is gone")),
            "USER" => self
                .user
                .clone()
                .ok_or_else(|| unset("USER is not set and the uid has no passwd entry")),
            "UID" => Ok(self.uid.to_string()),
            "GID" => Ok(self.gid.to_string()),
            "XDG_RUNTIME_DIR" => self.runtime.clone().ok_or_else(|| unset("not set")),
            "XDG_CONFIG_HOME" => self
                .config
                .clone()
                .ok_or_else(|| unset("neither it nor HOME is set")),
            "XDG_CACHE_HOME" => self
                .cache
                .clone()
                .ok_or_else(|| unset("neither it nor HOME is set")),
            "PROFILE_DIR" => self
                .profile_dir
                .clone()
                .ok_or_else(|| unset("a shipped profile has no directory")),
            _ => Err(format!(
                "unknown variable ${{{name}}}{}; known: {}, and ${{ENV:NAME}}",
                crate::text::did_you_mean(name, NAMES.iter().copied()),
                NAMES.map(|n| format!("${{{n}}}")).join(", ")
            )),
        }
    }
}

/// Whether `s` holds anything [`expand`] would change.
pub fn has_vars(s: &str) -> bool {
    s.contains("${")
}

/// `s` with its variables replaced.
pub fn expand(s: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body.find('}').ok_or_else(|| {
            format!(
                "{:?}: `${{` without its closing `}}`",
                crate::text::quote_short(s, 60)
            )
        })?;
        let inner = &body[..end];
        let (name, value) = if let Some(e) = inner.strip_prefix("ENV:") {
            let (var, default) = match e.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (e, None),
            };
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("${{ENV:{var}}}: not a variable name"));
            }
            let value = match (std::env::var(var), default) {
                (Ok(v), _) if !v.is_empty() => v,
                (_, Some(d)) => d.to_string(),
                (Ok(_), None) => return Err(format!("${{ENV:{var}}} is empty (write ${{ENV:{var}:-default}} for a default)")),
                (Err(_), None) => return Err(format!("${{ENV:{var}}}: {var} is not set (write ${{ENV:{var}:-default}} for a default)")),
            };
            (format!("ENV:{var}"), value)
        } else {
            (inner.to_string(), vars.get(inner)?)
        };
        check(&name, &value)?;
        out.push_str(&value);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A variable's value: not empty, no `..` component, no NUL; absolute for a directory.
fn check(name: &str, value: &str) -> Result<(), String> {
    let shown = crate::text::quote_short(value, 80);
    if value.is_empty() {
        return Err(format!("${{{name}}} is empty"));
    }
    if value.contains('\0') {
        return Err(format!("${{{name}}} holds a NUL byte"));
    }
    if value.split('/').any(|c| c == "..") {
        return Err(format!(
            "${{{name}}} is {shown}, which has a `..` component"
        ));
    }
    if PATHS.contains(&name) && !value.starts_with('/') {
        return Err(format!(
            "${{{name}}} is {shown}, which is not an absolute path"
        ));
    }
    Ok(())
}

/// Expand every located string of a profile in its JSON form (`{value, loc}` objects),
/// and the plain strings of `command` and `process.env.set`. Errors carry the value's loc.
pub fn expand_json(v: &mut Value, vars: &Vars) -> Result<(), ProfileError> {
    walk(v, vars, Ctx::Other)
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Other,
    /// Inside `command` or `env.set`: plain strings are expanded too.
    Plain,
}

fn walk(v: &mut Value, vars: &Vars, ctx: Ctx) -> Result<(), ProfileError> {
    match v {
        Value::Object(map) => {
            if map.len() == 2 && map.contains_key("loc") {
                if let (Some(Value::String(s)), Some(loc)) = (map.get("value"), map.get("loc")) {
                    if has_vars(s) {
                        let loc: Option<Loc> = serde_json::from_value(loc.clone()).ok();
                        let expanded = expand(s, vars).map_err(|m| match loc {
                            Some(l) => ProfileError::at(l, m),
                            None => ProfileError {
                                file: PathBuf::new(),
                                loc: None,
                                message: m,
                                hint: None,
                            },
                        })?;
                        map.insert("value".into(), Value::String(expanded));
                    }
                    return Ok(());
                }
            }
            for (k, child) in map.iter_mut() {
                if k == "content" {
                    continue;
                }
                let c = if k == "command" || (k == "set" && ctx == Ctx::Other) {
                    Ctx::Plain
                } else {
                    ctx
                };
                walk(child, vars, c)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for i in items {
                walk(i, vars, ctx)?;
            }
            Ok(())
        }
        Value::String(s) if ctx == Ctx::Plain && has_vars(s) => {
            *s = expand(s, vars).map_err(|m| ProfileError {
                file: PathBuf::new(),
                loc: None,
                message: m,
                hint: None,
            })?;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            home: Some("/home/ann".into()),
            cwd: Some("/home/ann/src/app".into()),
            user: Some("ann".into()),
            uid: 1000,
            gid: 1000,
            runtime: Some("/run/user/1000".into()),
            config: Some("/home/ann/.config".into()),
            cache: Some("/home/ann/.cache".into()),
            profile_dir: Some("/etc/lasagna/profiles".into()),
        }
    }

    #[test]
    fn variables_expand_and_literals_stay() {
        let v = vars();
        assert_eq!(expand("${HOME}/.cache", &v).unwrap(), "/home/ann/.cache");
        assert_eq!(expand("${CWD}", &v).unwrap(), "/home/ann/src/app");
        assert_eq!(
            expand("/run/user/${UID}/bus", &v).unwrap(),
            "/run/user/1000/bus"
        );
        assert_eq!(
            expand("${PROFILE_DIR}/x.yaml", &v).unwrap(),
            "/etc/lasagna/profiles/x.yaml"
        );
        assert_eq!(
            expand("cost: $5, $${HOME}", &v).unwrap(),
            "cost: $5, ${HOME}"
        );
        assert_eq!(
            expand("${ENV:LASAGNA_SURELY_UNSET_VAR:-fallback}", &v).unwrap(),
            "fallback"
        );
        assert_eq!(expand("plain", &v).unwrap(), "plain");
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        let mut v = vars();
        assert!(expand("${HOEM}", &v).unwrap_err().contains("did you mean"));
        assert!(expand("${HOME", &v).unwrap_err().contains("closing"));
        assert!(expand("${ENV:LASAGNA_SURELY_UNSET_VAR}", &v)
            .unwrap_err()
            .contains("is not set"));
        v.home = Some("relative/home".into());
        let e = expand("${HOME}/x", &v).unwrap_err();
        assert!(
            e.contains("${HOME} is \"relative/home\"") && e.contains("not an absolute path"),
            "{e}"
        );
        v.home = Some("/home/../etc".into());
        assert!(expand("${HOME}", &v).unwrap_err().contains("`..`"));
        v.home = Some(String::new());
        assert!(expand("${HOME}", &v).unwrap_err().contains("is empty"));
        v.profile_dir = None;
        assert!(expand("${PROFILE_DIR}", &v)
            .unwrap_err()
            .contains("shipped"));
    }

    #[test]
    fn json_walk_expands_located_values_and_commands_not_content() {
        let mut j: Value = serde_json::json!({
            "command": ["${HOME}/bin/x"],
            "layers": {
                "filesystem": {"mounts": [{"bind": {"value": "${CWD}", "loc": {"line": 3, "column": 9}}, "content": "${HOME}"}]},
                "process": {"env": {"set": {"A": "${USER}"}}},
            }
        });
        expand_json(&mut j, &vars()).unwrap();
        assert_eq!(j["command"][0], "/home/ann/bin/x");
        assert_eq!(
            j["layers"]["filesystem"]["mounts"][0]["bind"]["value"],
            "/home/ann/src/app"
        );
        assert_eq!(j["layers"]["filesystem"]["mounts"][0]["content"], "${HOME}");
        assert_eq!(j["layers"]["process"]["env"]["set"]["A"], "ann");
        let mut bad =
            serde_json::json!({"x": {"value": "${NOPE}", "loc": {"line": 7, "column": 2}}});
        let e = expand_json(&mut bad, &vars()).unwrap_err();
        assert_eq!(e.loc, Some(Loc::at(7, 2)));
    }

    #[test]
    fn every_named_variable_expands_to_its_value() {
        let v = vars();
        for (name, value) in [
            ("HOME", "/home/ann"),
            ("CWD", "/home/ann/src/app"),
            ("USER", "ann"),
            ("UID", "1000"),
            ("GID", "1000"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("XDG_CONFIG_HOME", "/home/ann/.config"),
            ("XDG_CACHE_HOME", "/home/ann/.cache"),
            ("PROFILE_DIR", "/etc/lasagna/profiles"),
        ] {
            assert_eq!(
                expand(&format!("${{{name}}}"), &v).unwrap(),
                value,
                "{name}"
            );
        }
        let other = Vars {
            gid: 2000,
            ..vars()
        };
        assert_eq!(expand("${UID}:${GID}", &other).unwrap(), "1000:2000");
    }

    #[test]
    fn an_environment_variable_that_is_set_expands_to_its_value() {
        // A variable of the test process whose value is a plain word (no `/`, so no `..`),
        // as ${ENV:NAME} and as ${ENV:NAME:-default}: the value wins over the default.
        let (name, value) = std::env::vars()
            .find(|(n, v)| {
                !v.is_empty()
                    && !v.contains('/')
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .expect("the test process has an environment variable with a plain value");
        let v = vars();
        assert_eq!(expand(&format!("${{ENV:{name}}}"), &v).unwrap(), value);
        assert_eq!(
            expand(&format!("<${{ENV:{name}:-default}}>"), &v).unwrap(),
            format!("<{value}>")
        );
    }

    #[test]
    fn an_environment_variable_needs_a_name() {
        let v = vars();
        for bad in ["${ENV:}", "${ENV:-x}", "${ENV:A-B}", "${ENV:A B:-x}"] {
            let e = expand(bad, &v).unwrap_err();
            assert!(e.contains("not a variable name"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_value_with_a_nul_or_a_dot_dot_component_is_refused() {
        let mut v = vars();
        v.user = Some("a\0b".into());
        assert!(expand("${USER}", &v).unwrap_err().contains("NUL"));
        v.user = Some("..".into());
        assert!(expand("${USER}", &v).unwrap_err().contains("`..`"));
        // A name that only holds dots, and a relative value of a variable that is not a
        // directory, are fine.
        v.user = Some("a..b".into());
        assert_eq!(expand("${USER}", &v).unwrap(), "a..b");
        v.cwd = Some("/srv/..data".into());
        assert_eq!(expand("${CWD}", &v).unwrap(), "/srv/..data");
    }

    #[test]
    fn json_walk_leaves_plain_strings_outside_command_and_env_set() {
        let mut j: Value = serde_json::json!({
            "name": "${HOME}",
            "layers": {"process": {"env": {"keep": ["${HOME}"]}}},
            "tags": ["${CWD}"],
            // Not a located value (those hold exactly `value` and `loc`): a plain object.
            "odd": {"value": "${HOME}", "loc": {"line": 1, "column": 1}, "note": "x"},
        });
        let before = j.clone();
        expand_json(&mut j, &vars()).unwrap();
        assert_eq!(j, before);
    }

    #[test]
    fn an_empty_environment_variable_takes_the_default_or_is_an_error() {
        // Run in a child of this test binary with the variable set to the empty string, so
        // that no other test's environment changes.
        const EMPTY: &str = "LASAGNA_VARS_TEST_EMPTY";
        if std::env::var_os(EMPTY).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .env(EMPTY, "")
                .args([
                    "--exact",
                    "profile::vars::tests::an_empty_environment_variable_takes_the_default_or_is_an_error",
                    "--test-threads=1",
                ])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let v = vars();
        assert_eq!(
            expand(&format!("${{ENV:{EMPTY}:-fallback}}"), &v).unwrap(),
            "fallback"
        );
        let e = expand(&format!("${{ENV:{EMPTY}}}"), &v).unwrap_err();
        assert!(e.contains("is empty") && e.contains(":-default"), "{e}");
    }

    #[test]
    fn the_callers_values_are_its_own() {
        // The environment of this test process, as a profile loaded here sees it.
        let v = Vars::of_caller(Some(Path::new("/proc/self/..")));
        assert_eq!(v.uid, nix::unistd::getuid().as_raw());
        assert_eq!(v.gid, nix::unistd::getgid().as_raw());
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(v.cwd(), cwd.to_str());
        assert_eq!(v.cwd.as_deref(), cwd.to_str());
        if let Ok(home) = std::env::var("HOME") {
            assert_eq!(v.home(), Some(home.as_str()));
            let under = |rel: &str| format!("{}/{rel}", home.trim_end_matches('/'));
            if std::env::var_os("XDG_CONFIG_HOME").is_none() {
                assert_eq!(v.config, Some(under(".config")));
            }
            if std::env::var_os("XDG_CACHE_HOME").is_none() {
                assert_eq!(v.cache, Some(under(".cache")));
            }
        }
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            assert_eq!(v.runtime, Some(format!("/run/user/{}", v.uid)));
        }
        // The file's directory, canonical; the same values for another file.
        assert_eq!(v.profile_dir.as_deref(), Some("/proc"));
        let other = v.for_file(Some(Path::new("/proc/self/../sys")));
        assert_eq!(other.profile_dir.as_deref(), Some("/proc/sys"));
        assert_eq!((other.uid, other.cwd()), (v.uid, v.cwd()));
        // A directory that cannot be canonicalized is kept as written; a shipped profile
        // has none.
        let gone = v.for_file(Some(Path::new("/nonexistent/lasagna-vars")));
        assert_eq!(
            gone.profile_dir.as_deref(),
            Some("/nonexistent/lasagna-vars")
        );
        assert_eq!(v.for_file(None).profile_dir, None);
        let gone = Vars::of_caller(Some(Path::new("/nonexistent/lasagna-vars")));
        assert_eq!(
            gone.profile_dir.as_deref(),
            Some("/nonexistent/lasagna-vars")
        );
        assert_eq!(Vars::of_caller(None).profile_dir, None);
    }

    /// Run the test `name` again in a child of this test binary, with `MARK` set to `mode`
    /// and the variables `env` gives (`None`: removed), so that no other test's
    /// environment changes.
    fn in_child(name: &str, mode: &str, env: &[(&str, Option<&str>)]) {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.env(MARK, mode).args([
            &format!("profile::vars::tests::{name}"),
            "--exact",
            "--test-threads=1",
        ]);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{mode}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    const MARK: &str = "LASAGNA_VARS_TEST_CALLER";
    const CALLER_ENV: [&str; 5] = [
        "HOME",
        "USER",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_RUNTIME_DIR",
    ];

    #[test]
    fn the_environment_wins_and_passwd_fills_in() {
        let name = "the_environment_wins_and_passwd_fills_in";
        let uid = nix::unistd::getuid().as_raw();
        match std::env::var(MARK).as_deref() {
            Err(_) => {
                let set = ["/srv/vh", "vuser", "/srv/vc", "/srv/vk", "/srv/vr"];
                let env: Vec<_> = CALLER_ENV
                    .iter()
                    .zip(set)
                    .map(|(k, v)| (*k, Some(v)))
                    .collect();
                in_child(name, "set", &env);
                let env: Vec<_> = CALLER_ENV.iter().map(|k| (*k, None)).collect();
                in_child(name, "unset", &env);
            }
            Ok("set") => {
                let v = Vars::of_caller(None);
                assert_eq!(v.home(), Some("/srv/vh"));
                assert_eq!(v.user.as_deref(), Some("vuser"));
                assert_eq!(
                    (
                        v.config.as_deref(),
                        v.cache.as_deref(),
                        v.runtime.as_deref()
                    ),
                    (Some("/srv/vc"), Some("/srv/vk"), Some("/srv/vr"))
                );
            }
            Ok(_) => {
                let v = Vars::of_caller(None);
                let Some((user, dir)) = crate::procfs::passwd_entry(uid) else {
                    panic!("uid {uid} has no passwd entry to fall back on");
                };
                assert_eq!(v.user.as_deref(), Some(user.as_str()));
                assert_eq!(v.home(), Some(dir.as_str()));
                let under = |rel: &str| format!("{}/{rel}", dir.trim_end_matches('/'));
                assert_eq!(v.config, Some(under(".config")));
                assert_eq!(v.cache, Some(under(".cache")));
                assert_eq!(v.runtime, Some(format!("/run/user/{uid}")));
            }
        }
    }

    #[test]
    fn only_a_dollar_brace_is_a_variable() {
        assert!(has_vars("a ${HOME}") && has_vars("$${HOME}"));
        assert!(!has_vars("cost: $5, {HOME}, $ {x}"));
    }

    #[test]
    fn unset_variables_say_which_and_why() {
        let none = Vars {
            home: None,
            cwd: None,
            user: None,
            runtime: None,
            config: None,
            cache: None,
            profile_dir: None,
            ..vars()
        };
        for (name, why) in [
            ("HOME", "HOME is not set"),
            ("CWD", "the working directory is gone"),
            ("USER", "no passwd entry"),
            ("XDG_RUNTIME_DIR", "not set"),
            ("XDG_CONFIG_HOME", "neither it nor HOME is set"),
            ("XDG_CACHE_HOME", "neither it nor HOME is set"),
        ] {
            let e = expand(&format!("${{{name}}}"), &none).unwrap_err();
            assert!(
                e.starts_with(&format!("${{{name}}} has no value: ")) && e.ends_with(why),
                "{e}"
            );
        }
        let e = expand("${NOPE}", &vars()).unwrap_err();
        assert!(e.contains("known: ${HOME}, ${CWD}, ${USER}"), "{e}");
    }
}
