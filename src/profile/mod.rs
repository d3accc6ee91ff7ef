//! Profiles: the YAML model as written, loading with `extends`, and validation into a
//! checked [`Profile`]. Loading has no side effects besides reading files.
//!
//! Parsing uses serde-saphyr with budgets (no alias bombs), strict booleans, duplicate keys
//! as errors and a size cap. Every error carries file:line:col. Shipped profiles are not
//! parsed at run time: [`shipped`] holds them compiled from the same YAML.

mod guard;
pub mod overlay;
mod print;
pub mod schema;
mod shape;
pub mod shipped;
pub mod vars;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::types::{LayerSection, Merge, Spanned};
use serde::Deserialize;

use crate::layers::{
    capabilities, cgroups, filesystem, landlock, namespaces, network, process, rlimits, seccomp,
};
pub use crate::types::{Loc, ProfileError, Requirement, SandboxPath};

/// Largest profile file accepted.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;
/// Longest `extends` chain accepted.
const MAX_EXTENDS_DEPTH: usize = 16;

/// One list of the shipped profiles: their YAML (the source, for `profiles show` and the
/// reference) and their generated JSON (what a launch parses, `profile::shipped`).
macro_rules! shipped_profiles {
    ($($name:literal),* $(,)?) => {
        /// The profiles shipped inside the binary, by name.
        pub const SHIPPED: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("../../profiles/", $name, ".yaml")))),*];
        /// The same profiles as JSON generated from their YAML (`make shipped`).
        const SHIPPED_JSON: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("shipped/json/", $name, ".json")))),*];
    };
}

shipped_profiles!(
    "seccomp-default",
    "base",
    "strict",
    "cli-read",
    "cli-write",
    "interpreter",
    "build",
    "python3",
    "node",
    "perl",
    "ruby",
    "lua",
    "sh",
    "make",
    "cmake",
    "cargo",
    "jq",
    "sqlite3",
    "tar",
    "gzip",
    "xz",
    "zstd",
    "unzip",
    "awk",
    "sed",
    "ripgrep",
    "imagemagick",
    "ffmpeg",
    "curl",
    "wget",
    "git",
    "untrusted",
    "judge",
    "agent",
);

pub const CHROOT_REFUSAL: &str = "chroot is not a security boundary: chroot(2) says it is not \
intended for security; a process that can chroot again walks out with '..', and a directory \
fd held from outside escapes through fchdir";
pub const CHROOT_HINT: &str = "use the `filesystem` layer (mount namespace + pivot_root, the old \
root detached) together with `landlock` for path rules";

/// A profile file as written.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileFile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub extends: Option<Spanned<String>>,
    pub command: Option<Vec<String>>,
    /// The program the profile is for: a run is refused, naming it and the profile, when
    /// the host does not have it.
    pub program: Option<String>,
    /// The Debian package that provides `program` (for the fix in that message).
    pub package: Option<String>,
    #[serde(default)]
    pub layers: Sections,
}

/// One optional section per layer, as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Sections {
    pub namespaces: Option<namespaces::Section>,
    pub filesystem: Option<filesystem::Section>,
    pub cgroups: Option<cgroups::Section>,
    pub capabilities: Option<capabilities::Section>,
    pub rlimits: Option<rlimits::Section>,
    pub process: Option<process::Section>,
    pub landlock: Option<landlock::Section>,
    pub seccomp: Option<seccomp::Section>,
    pub network: Option<network::Section>,
}

crate::merge_fields!(Sections {
    namespaces: nested,
    filesystem: nested,
    cgroups: nested,
    capabilities: nested,
    rlimits: nested,
    process: nested,
    landlock: nested,
    seccomp: nested,
    network: nested
});

/// Where a profile came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Shipped(&'static str),
    File(PathBuf),
}

impl Source {
    /// The name used in error messages.
    pub fn display_path(&self) -> PathBuf {
        match self {
            Source::Shipped(name) => PathBuf::from(format!("<shipped>/{name}.yaml")),
            Source::File(p) => p.clone(),
        }
    }

    /// The directory relative paths in the profile are resolved against.
    fn dir(&self) -> PathBuf {
        match self {
            Source::Shipped(_) => PathBuf::from("/"),
            Source::File(p) => p
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }
}

/// A loaded, validated profile: every section checked, ready for planning.
#[derive(Debug)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub source: Source,
    /// The chain of profiles this one extends, nearest first.
    pub extends: Vec<String>,
    pub command: Option<Vec<String>>,
    pub namespaces: Option<namespaces::Config>,
    pub filesystem: Option<filesystem::Config>,
    pub cgroups: Option<cgroups::Config>,
    pub capabilities: Option<capabilities::Config>,
    pub rlimits: Option<rlimits::Config>,
    pub process: Option<process::Config>,
    pub landlock: Option<landlock::Config>,
    pub seccomp: Option<seccomp::Config>,
    pub network: Option<network::Config>,
    /// Every file that makes up the profile, in merge order (root first, `.local.yaml`
    /// overlays last).
    pub files: Vec<String>,
    /// The program the profile is for, and its Debian package.
    pub program: Option<(String, Option<String>)>,
}

impl Profile {
    /// The files of the user's or the system's profile directories that change what a
    /// shipped profile name means: every `.local.yaml` overlay, and a profile that takes a
    /// shipped profile's name. `run` names each at every run (a payload that once wrote
    /// there would otherwise change every later run in silence).
    pub fn overriding_files(&self) -> Vec<String> {
        let dirs = search_dirs();
        self.files
            .iter()
            .filter(|f| {
                let path = Path::new(f.as_str());
                let in_dirs = path.parent().is_some_and(|p| dirs.iter().any(|d| d == p));
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let shadows = name
                    .strip_suffix(".yaml")
                    .is_some_and(|stem| SHIPPED.iter().any(|(n, _)| *n == stem));
                name.ends_with(".local.yaml") || (in_dirs && shadows)
            })
            .cloned()
            .collect()
    }
}

/// Find a profile by name or path: a path if it contains `/` or ends in `.yaml`/`.yml`;
/// otherwise `NAME.yaml` in the search path ([`search_dirs`]: the user's, then the
/// system's), otherwise a shipped profile.
pub fn resolve(name_or_path: &str) -> Result<Source, ProfileError> {
    if looks_like_path(name_or_path) {
        return Ok(Source::File(PathBuf::from(name_or_path)));
    }
    for dir in search_dirs() {
        let candidate = dir.join(format!("{name_or_path}.yaml"));
        if candidate.is_file() {
            return Ok(Source::File(candidate));
        }
    }
    if let Some((name, _)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
        return Ok(Source::Shipped(name));
    }
    let known: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    Err(ProfileError {
        file: PathBuf::from(name_or_path),
        loc: None,
        message: format!(
            "no profile named {name_or_path:?}{}",
            crate::text::did_you_mean(name_or_path, known.iter().copied())
        ),
        hint: Some(format!(
            "shipped profiles: {}; `lasagna profiles list` shows every profile found; or give a path to a .yaml file",
            known.join(", ")
        )),
    })
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".yaml") || s.ends_with(".yml")
}

/// Where profiles are looked up by name, in order: `$XDG_CONFIG_HOME/lasagna/profiles`
/// (`~/.config/...`), then `/etc/lasagna/profiles`; shipped profiles come last.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(cfg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(cfg).join("lasagna/profiles"));
    } else if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(home).join(".config/lasagna/profiles"));
    }
    dirs.push(PathBuf::from("/etc/lasagna/profiles"));
    dirs
}

/// The `NAME.local.yaml` overlays of a profile named NAME, in merge order: the system's,
/// then the user's (both on top of NAME).
pub fn local_overlays(name: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = search_dirs()
        .into_iter()
        .map(|d| d.join(format!("{name}.local.yaml")))
        .filter(|p| p.is_file())
        .collect();
    found.reverse();
    found
}

fn read_source(source: &Source) -> Result<String, ProfileError> {
    let path = source.display_path();
    let err = |message: String| ProfileError {
        file: path.clone(),
        loc: None,
        message,
        hint: None,
    };
    match source {
        Source::Shipped(name) => Ok(SHIPPED
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, text)| text.to_string())
            .unwrap_or_default()),
        Source::File(p) => crate::hostfs::read_config(p, MAX_PROFILE_BYTES)
            .map_err(|e| err(format!("cannot read profile: {e}"))),
    }
}

/// Parse one profile file's text, with line:col errors.
pub fn parse_text(text: &str, file: &Path) -> Result<ProfileFile, ProfileError> {
    if text.len() as u64 > MAX_PROFILE_BYTES {
        return Err(ProfileError {
            file: file.to_path_buf(),
            loc: None,
            message: format!("profile is larger than the {MAX_PROFILE_BYTES} byte limit"),
            hint: None,
        });
    }
    parse(text, file).map_err(|e| refine(yaml_error(&e, file), text))
}

/// The parse itself, with the options every profile file is read with.
fn parse(text: &str, file: &Path) -> Result<ProfileFile, serde_saphyr::Error> {
    let mut options = serde_saphyr::options! { strict_booleans: true };
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // Every located value read here is in `file`.
    let _in = crate::types::InFile::enter(file);
    serde_saphyr::from_str_with_options::<ProfileFile>(text, options)
}

/// A parse error made specific from the line of `text` it points at.
fn refine(err: ProfileError, text: &str) -> ProfileError {
    let line = err
        .loc
        .and_then(|l| text.lines().nth(l.line.saturating_sub(1) as usize))
        .unwrap_or("");
    refine_at(err, &ErrorLine::of(line))
}

/// What [`refine`] reads from the line of an error, read once per line.
struct ErrorLine<'a> {
    /// `[${CWD}]`: in a flow collection `{` opens a mapping.
    variable_in_flow: bool,
    /// The key the line starts with (after a `- `).
    key: &'a str,
}

impl<'a> ErrorLine<'a> {
    fn of(line: &'a str) -> ErrorLine<'a> {
        ErrorLine {
            variable_in_flow: line.contains("${") && (line.contains('[') || line.contains('{')),
            key: line
                .trim_start()
                .trim_start_matches("- ")
                .split(':')
                .next()
                .unwrap_or("")
                .trim(),
        }
    }
}

fn refine_at(mut err: ProfileError, line: &ErrorLine<'_>) -> ProfileError {
    if line.variable_in_flow {
        err.hint =
            Some("inside [ ] or { }, quote a value that holds a variable: [\"${CWD}\"]".into());
    }
    // A scalar where a mapping belongs: say what the key takes.
    if err.message.contains("expected mapping") || err.message.contains("expected struct") {
        if let Some(takes) = mapping_shape(line.key) {
            err.message = format!("`{}` takes a mapping: {takes}", line.key);
        }
    }
    err
}

/// What a key that takes a mapping looks like, for the error when it is given a scalar.
fn mapping_shape(key: &str) -> Option<String> {
    let example = match key {
        "memory" => "{max: SIZE, high: SIZE, swap-max: SIZE}, e.g. memory: {max: 256M}",
        "pids" => "{max: N}, e.g. pids: {max: 64}",
        "cpu" => "{cores: N, weight: N}, e.g. cpu: {cores: 0.5}",
        "io" => "{weight: N}, e.g. io: {weight: 100}",
        "env" => "{allow: [NAME], set: {NAME: value}, inherit: BOOL}",
        "net" => "{bind: [PORT], connect: [PORT]}, e.g. net: {connect: [443]}",
        "layers" => {
            "one section per layer (network, namespaces, filesystem, ...); see `lasagna schema`"
        }
        k if crate::launch::Layer::from_name(k).is_some() => {
            return Some(format!(
                "the {k} layer's keys, e.g. {k}: {{mode: required}}; see `lasagna schema`"
            ))
        }
        _ => return None,
    };
    Some(example.to_string())
}

fn yaml_error(e: &serde_saphyr::Error, file: &Path) -> ProfileError {
    let loc = e.location().map(|l| Loc::at(l.line(), l.column()));
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("invalid profile").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Drop serde-saphyr's own "line N column M: " prefix; we print file:line:col.
    let message = match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
        _ => first,
    };
    let message = message
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace("strict mode expects true/false", "write true or false");
    // A file that is not a profile at all (`-p /etc/shadow`) must not be quoted back: every
    // quoted fragment of it is cut short and escaped.
    let message = cut_fragments(&message, 40);
    let message = if let Some(what) = message.strip_prefix("budget breached: ") {
        format!(
            "the profile exceeds the YAML parser's limits ({what}): a real profile is far \
             smaller, and this is how an alias bomb expands; nothing was read past the limit"
        )
    } else if message.contains("from_str_multiple") || message.contains("multiple documents") {
        "a profile is one YAML document; this file holds several (a `---` line starts another)"
            .to_string()
    } else {
        message
    };
    let mut error = ProfileError {
        file: file.to_path_buf(),
        loc,
        message: message.clone(),
        hint: None,
    };
    if message.contains("unknown field `chroot`") {
        error.message = format!("chroot refused: {CHROOT_REFUSAL}");
        error.hint = Some(CHROOT_HINT.into());
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde: "unknown field `X`, expected one of `a`, `b`" (or "expected `a`").
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .split_once("expected one of ")
            .or_else(|| expected.split_once("expected "))
            .map(|(_, e)| e)
            .unwrap_or("");
        let known: Vec<&str> = expected
            .split(", ")
            .map(|k| k.trim().trim_matches('`'))
            .collect();
        let hint = match crate::text::suggest(field, known.iter().copied()) {
            Some(k) => format!(
                "did you mean `{k}`? unknown keys are errors; see 'lasagna schema' for the format"
            ),
            None => "unknown keys are errors; see 'lasagna schema' for the format".into(),
        };
        error.hint = Some(hint);
    }
    error
}

/// `message` with every `…` or "…" quoted fragment longer than `max` characters cut, and
/// control characters escaped.
fn cut_fragments(message: &str, max: usize) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().expect("found a quote");
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        match after.find(quote) {
            Some(close) => {
                let inner = &after[..close];
                let cut: String = inner.chars().take(max).collect();
                out.push_str(&crate::text::escape(&cut));
                if inner.chars().count() > max {
                    out.push('…');
                }
                out.push(quote);
                rest = &after[close + 1..];
            }
            None => {
                rest = after;
                break;
            }
        }
    }
    let tail: String = rest.chars().take(200).collect();
    out.push_str(&crate::text::escape(&tail));
    out
}

/// Load a profile with its `extends` chain and, for a name, its `.local.yaml` overlays,
/// then validate it.
pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
    load_named(name_or_path, None)
}

/// [`load`] with `run`'s ad-hoc flags on top.
pub fn load_named(
    name_or_path: &str,
    overlay: Option<&overlay::Overlay>,
) -> Result<Profile, ProfileError> {
    let (source, locals) = source_and_locals(name_or_path)?;
    load_chain(source, &locals, overlay)
}

/// The profile a name or path names, and its `.local.yaml` overlays (for a name),
/// outermost first: the user's overlay is the child of the system's.
fn source_and_locals(name_or_path: &str) -> Result<(Source, Vec<PathBuf>), ProfileError> {
    let source = resolve(name_or_path)?;
    let mut locals = if looks_like_path(name_or_path) {
        Vec::new()
    } else {
        local_overlays(name_or_path)
    };
    locals.reverse();
    Ok((source, locals))
}

/// [`load`] for `check`: every error of the merged profile (one per section that has one),
/// not only the first. A file that does not parse stops at its parse error, with every
/// further unknown key and value of the wrong kind in it ([`shape`]).
pub fn load_all_errors(name_or_path: &str) -> Result<Profile, Vec<ProfileError>> {
    let (source, locals) = source_and_locals(name_or_path).map_err(|e| vec![e])?;
    let mut more = Vec::new();
    match load_chain_printed(source, &locals, None, false, Some(&mut more)) {
        Ok((p, _)) => Ok(p),
        Err(first) => {
            more.insert(0, first);
            // In the order of the file.
            more.sort_by_key(|e| e.loc.map(|l| (l.file, l.line, l.column)));
            Err(more)
        }
    }
}

pub fn load_source(source: Source) -> Result<Profile, ProfileError> {
    load_chain(source, &[], None)
}

/// Load `source`'s chain under `locals` (`.local.yaml` overlays, outermost first) and
/// `run`'s ad-hoc flags.
fn load_chain(
    source: Source,
    locals: &[PathBuf],
    overlay: Option<&overlay::Overlay>,
) -> Result<Profile, ProfileError> {
    load_chain_printed(source, locals, overlay, false, None).map(|(p, _)| p)
}

/// `run --print-profile`: the merged profile (checked) as YAML, each located value with
/// the file and line it comes from, or the flag.
pub fn print_profile(
    name_or_path: &str,
    overlay: Option<&overlay::Overlay>,
) -> Result<String, ProfileError> {
    let (source, locals) = source_and_locals(name_or_path)?;
    load_chain_printed(source, &locals, overlay, true, None)
        .map(|(_, text)| text.unwrap_or_default())
}

fn load_chain_printed(
    source: Source,
    locals: &[PathBuf],
    overlay: Option<&overlay::Overlay>,
    print: bool,
    mut more_errors: Option<&mut Vec<ProfileError>>,
) -> Result<(Profile, Option<String>), ProfileError> {
    let caller = vars::Vars::of_caller(None);
    let mut chain: Vec<(Source, ProfileFile)> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    // (source, is a `.local.yaml` overlay), in the order they are read: each profile
    // reached by name comes after its overlays, which sit on top of it.
    let mut queue: std::collections::VecDeque<(Source, bool)> = locals
        .iter()
        .cloned()
        .map(|p| (Source::File(p), true))
        .collect();
    queue.push_back((source, false));
    let mut local_flags: Vec<bool> = Vec::new();
    while let Some((src, is_local)) = queue.pop_front() {
        let key = match &src {
            Source::File(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
            Source::Shipped(_) => src.display_path(),
        };
        if !seen.insert(key) {
            let (child_src, child) = chain.last().expect("a cycle needs a child");
            let ext = child.extends.as_ref().expect("a cycle needs extends");
            return Err(ProfileError::at(
                Loc::of(ext),
                format!("extends cycle: {:?} is already in the chain", ext.value),
            )
            .in_file(&child_src.display_path()));
        }
        if chain.len() >= MAX_EXTENDS_DEPTH {
            return Err(ProfileError {
                file: src.display_path(),
                loc: None,
                message: format!("extends chain is longer than {MAX_EXTENDS_DEPTH} profiles"),
                hint: None,
            });
        }
        // Shipped profiles come compiled; their YAML is the same (a test holds them equal).
        let compiled = match &src {
            Source::Shipped(name) => shipped::file(name),
            Source::File(_) => None,
        };
        let (mut file, has_vars) = match compiled {
            Some(file) => (file, shipped::has_vars(&src)),
            None => {
                let text = read_source(&src)?;
                let path = src.display_path();
                match parse_text(&text, &path) {
                    Ok(file) => (file, vars::has_vars(&text)),
                    Err(first) => {
                        // `check`: every further unknown key and wrong kind of the file.
                        if let Some(more) = more_errors.as_deref_mut() {
                            more.extend(
                                shape::findings(&text, &path)
                                    .into_iter()
                                    .filter(|f| f.loc != first.loc),
                            );
                        }
                        return Err(first);
                    }
                }
            }
        };
        // Variables, in this file's values, before anything is merged or checked.
        if has_vars {
            let dir = matches!(src, Source::File(_)).then(|| src.dir());
            file = expand_vars(file, &caller.for_file(dir.as_deref()))
                .map_err(|e| e.in_file(&src.display_path()))?;
        }
        // A relative seccomp `import` is relative to the file that names it.
        if let Some(imp) = file.layers.seccomp.as_mut().and_then(|s| s.import.as_mut()) {
            if !imp.value.starts_with('/') {
                imp.value = src.dir().join(&imp.value).to_string_lossy().into_owned();
            }
        }
        if let (true, Some(ext)) = (is_local, &file.extends) {
            return Err(ProfileError::at(
                Loc::of(ext),
                "a .local.yaml overlay has no extends: it is merged on top of the profile of its name",
            )
            .in_file(&src.display_path()));
        }
        if let (false, Some(ext)) = (is_local, &file.extends) {
            let parent = resolve_extends(&src, ext)?;
            if !looks_like_path(&ext.value) {
                let mut theirs = local_overlays(&ext.value);
                theirs.reverse();
                queue.extend(theirs.into_iter().map(|p| (Source::File(p), true)));
            }
            queue.push_back((parent, false));
        }
        local_flags.push(is_local);
        chain.push((src, file));
    }
    let n_locals = local_flags.iter().take_while(|l| **l).count();
    let files: Vec<String> = chain
        .iter()
        .rev()
        .map(|(s, _)| s.display_path().display().to_string())
        .collect();
    let (top_source, _) = &chain[n_locals];
    let top_source = top_source.clone();
    let dir = top_source.dir();
    let names: Vec<String> = chain
        .iter()
        .zip(&local_flags)
        .skip(n_locals + 1)
        .filter(|(_, local)| !**local)
        .map(|(c, _)| c)
        .map(|(s, f)| {
            f.name
                .clone()
                .unwrap_or_else(|| s.display_path().display().to_string())
        })
        .collect();
    // Kept to tell which file an error of the merged profile comes from.
    let own_sections: Vec<(PathBuf, PathBuf, Sections)> = chain
        .iter()
        .map(|(src, f)| (src.display_path(), src.dir(), f.layers.clone()))
        .collect();
    // Merge from the root of the chain down to the profile itself.
    let mut merged = ProfileFile::default();
    let top_name = chain[n_locals].1.name.clone();
    let top_description = chain[n_locals].1.description.clone();
    for (_, file) in chain.into_iter().rev() {
        merged = ProfileFile {
            // A profile's name and description are its own, not its parent's.
            name: top_name.clone(),
            description: top_description.clone(),
            extends: None,
            command: file.command.or(merged.command),
            program: file.program.or(merged.program),
            package: file.package.or(merged.package),
            layers: Merge::merge(merged.layers, file.layers),
        };
    }
    let flags: &[String] = overlay.map_or(&[], |o| o.flags.as_slice());
    crate::types::register_flags(flags);
    if let Some(o) = overlay.filter(|o| !o.is_empty()) {
        o.displace(&mut merged.layers);
        let extra = o.sections(&merged.layers)?;
        merged.layers = Merge::merge(merged.layers, extra);
    }
    let printed = print.then(|| {
        let files: Vec<(String, serde_json::Value)> = own_sections
            .iter()
            .rev()
            .map(|(path, _, sections)| {
                (
                    path.display().to_string(),
                    serde_json::to_value(sections).unwrap_or_default(),
                )
            })
            .collect();
        print::render(&merged, &files, flags)
    });
    let mut profile = match validate(merged, top_source, dir, names) {
        Ok(p) => p,
        Err(errors) => {
            let mut errors = errors
                .into_iter()
                .map(|e| on_flag(attribute(e, &own_sections)));
            let first = errors.next().expect("a failed validation has an error");
            if let Some(more) = more_errors {
                more.extend(errors);
            }
            return Err(first);
        }
    };
    profile.files = files;
    if let Some(fs) = profile.filesystem.as_mut() {
        fs.guarded = guard::guarded(
            &profile.files,
            caller.home().map(Path::new),
            caller.cwd().map(Path::new),
            &fs.unprotect,
        );
    }
    Ok((profile, printed))
}

/// An error at an overlay value (line 0) names its flag instead of a line.
fn on_flag(e: ProfileError) -> ProfileError {
    match e.loc {
        Some(l) if l.line == 0 => {
            let flag = l.describe();
            ProfileError {
                file: PathBuf::from("<command line>"),
                loc: None,
                message: format!("{flag}: {}", e.message),
                hint: e.hint,
            }
        }
        _ => e,
    }
}

/// A file with its variables expanded ([`vars`]), through its JSON form (the form the
/// shipped profiles are embedded in).
fn expand_vars(file: ProfileFile, vars: &vars::Vars) -> Result<ProfileFile, ProfileError> {
    let internal = |e: serde_json::Error| ProfileError {
        file: PathBuf::new(),
        loc: None,
        message: format!("expanding variables: {e}"),
        hint: None,
    };
    let mut json = serde_json::to_value(&file).map_err(internal)?;
    vars::expand_json(&mut json, vars)?;
    let _plain = crate::types::PlainSpans::enter();
    serde_json::from_value(json).map_err(internal)
}

/// An error of the merged profile points into the file whose own sections give the same
/// error at the same place; errors that need the whole chain stay with the top file.
fn attribute(e: ProfileError, chain: &[(PathBuf, PathBuf, Sections)]) -> ProfileError {
    for (path, dir, sections) in chain {
        if let Err(own) = check_sections(sections, dir) {
            if own.loc == e.loc && own.message == e.message {
                return ProfileError {
                    file: path.clone(),
                    ..e
                };
            }
        }
    }
    e
}

fn resolve_extends(child: &Source, ext: &Spanned<String>) -> Result<Source, ProfileError> {
    let name = ext.value.as_str();
    let looks_like_path = name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml");
    let located = |message: String, hint: String| {
        ProfileError::at(Loc::of(ext), message)
            .hint(hint)
            .in_file(&child.display_path())
    };
    if looks_like_path {
        // A profile is named, or given as a .yaml file relative to the profile's own
        // directory (an absolute path to a .yaml file is read with the same checks).
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            return Err(located(
                format!("extends {}: not a profile", crate::text::quote_short(name, 60)),
                "extends takes a profile name, or a path to a .yaml or .yml file relative to this profile's directory".into(),
            ));
        }
        let path = child.dir().join(name);
        if !path.is_file() {
            return Err(located(
                format!("extends {name:?}: no such file {}", path.display()),
                "a path in extends is relative to the profile's own directory".into(),
            ));
        }
        return Ok(Source::File(path));
    }
    resolve(name).map_err(|e| located(e.message, e.hint.unwrap_or_default()))
}

/// Check one section, when the profile has it.
fn checked<S: LayerSection>(s: &Option<S>, dir: &Path) -> Result<Option<S::Config>, ProfileError> {
    s.as_ref().map(|x| x.validate(dir)).transpose()
}

fn check_sections(s: &Sections, dir: &Path) -> Result<(), ProfileError> {
    checked(&s.namespaces, dir)?;
    checked(&s.filesystem, dir)?;
    checked(&s.cgroups, dir)?;
    checked(&s.capabilities, dir)?;
    checked(&s.rlimits, dir)?;
    checked(&s.process, dir)?;
    checked(&s.landlock, dir)?;
    checked(&s.seccomp, dir)?;
    checked(&s.network, dir)?;
    Ok(())
}

/// Check every section of the merged profile: each section's first error, in layer order.
fn validate(
    file: ProfileFile,
    source: Source,
    dir: PathBuf,
    extends: Vec<String>,
) -> Result<Profile, Vec<ProfileError>> {
    let path = source.display_path();
    let at = |e: ProfileError| e.in_file(&path);
    let s = file.layers;
    let mut errors = Vec::new();
    if let Some(cmd) = &file.command {
        if cmd.is_empty() {
            errors.push(ProfileError {
                file: path.clone(),
                loc: None,
                message: "command is an empty list".into(),
                hint: Some("leave `command` out, or give the program and its arguments".into()),
            });
        }
    }
    fn each<S: LayerSection>(
        s: &Option<S>,
        dir: &Path,
        errors: &mut Vec<ProfileError>,
        at: &impl Fn(ProfileError) -> ProfileError,
    ) -> Option<S::Config> {
        match s.as_ref().map(|x| x.validate_each(dir)).transpose() {
            Ok(config) => config,
            Err(each) => {
                errors.extend(each.into_iter().map(at));
                None
            }
        }
    }
    let namespaces = each(&s.namespaces, &dir, &mut errors, &at);
    let filesystem = each(&s.filesystem, &dir, &mut errors, &at);
    let cgroups = each(&s.cgroups, &dir, &mut errors, &at);
    let capabilities = each(&s.capabilities, &dir, &mut errors, &at);
    let rlimits = each(&s.rlimits, &dir, &mut errors, &at);
    let process = each(&s.process, &dir, &mut errors, &at);
    let mut landlock = each(&s.landlock, &dir, &mut errors, &at);
    let seccomp = each(&s.seccomp, &dir, &mut errors, &at);
    let network = each(&s.network, &dir, &mut errors, &at);
    // A mount entry's own Landlock rights, where the profile has a Landlock layer.
    if let (Some(fs), Some(ll)) = (&filesystem, &mut landlock) {
        for (path, optional, loc, rights) in &fs.grants {
            if let Err(e) = ll.grant(path, rights, *optional, *loc) {
                errors.push(at(e));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Profile {
        name: file.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "profile".into())
        }),
        description: file.description.unwrap_or_default(),
        command: file.command,
        namespaces,
        filesystem,
        cgroups,
        capabilities,
        rlimits,
        process,
        landlock,
        seccomp,
        network,
        source,
        extends,
        files: Vec::new(),
        program: file.program.map(|p| (p, file.package)),
    })
}

impl Profile {
    /// Where the host has the profile's program (searched in the sandbox's `PATH`, which
    /// the view binds from the host), or why it is missing.
    pub fn find_program(&self) -> Result<(), String> {
        let Some((program, package)) = &self.program else {
            return Ok(());
        };
        let path = self
            .process
            .as_ref()
            .and_then(|p| p.env_set.get("PATH").cloned())
            .unwrap_or_else(|| process::DEFAULT_PATH.to_string());
        let found = path.split(':').filter(|d| d.starts_with('/')).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(Path::new(d).join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
        if found {
            return Ok(());
        }
        let fix = match package {
            Some(pkg) => format!("apt-get install {pkg}"),
            None => format!("install {program}"),
        };
        Err(format!(
            "profile {} is for {program}, which is not installed here (not in {path}); {fix}",
            self.name
        ))
    }

    /// Whether the profile has a section for `layer`.
    pub fn section_present(&self, layer: crate::launch::Layer) -> bool {
        use crate::launch::Layer;
        match layer {
            Layer::Namespaces => self.namespaces.is_some(),
            Layer::Filesystem => self.filesystem.is_some(),
            Layer::Cgroups => self.cgroups.is_some(),
            Layer::Capabilities => self.capabilities.is_some(),
            Layer::Rlimits => self.rlimits.is_some(),
            Layer::Process => self.process.is_some(),
            Layer::Landlock => self.landlock.is_some(),
            Layer::Seccomp => self.seccomp.is_some(),
            Layer::Network => self.network.is_some(),
        }
    }

    /// The mode each layer was asked for; a layer without a section is off.
    pub fn requested(&self, layer: crate::launch::Layer) -> Requirement {
        use crate::launch::Layer;
        match layer {
            Layer::Namespaces => self.namespaces.as_ref().map(|c| c.mode),
            Layer::Filesystem => self.filesystem.as_ref().map(|c| c.mode),
            Layer::Cgroups => self.cgroups.as_ref().map(|c| c.mode),
            Layer::Capabilities => self.capabilities.as_ref().map(|c| c.mode),
            Layer::Rlimits => self.rlimits.as_ref().map(|c| c.mode),
            Layer::Process => self.process.as_ref().map(|c| c.mode),
            Layer::Landlock => self.landlock.as_ref().map(|c| c.mode),
            Layer::Seccomp => self.seccomp.as_ref().map(|c| c.mode),
            Layer::Network => self.network.as_ref().map(|c| c.mode),
        }
        .unwrap_or(Requirement::Off)
    }
}
