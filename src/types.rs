//! Checked value types shared by every profile section.
//!
//! Values in this module can only be built through their `parse` functions, so a
//! `SandboxPath` in a validated profile is always absolute, normalized and free of `..`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How hard a layer is asked for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    /// The run is refused (exit 125) when the layer cannot be applied in full.
    #[default]
    Required,
    /// Apply what the host can give and report what was dropped.
    BestEffort,
    /// The layer is not applied.
    Off,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Requirement::Required => "required",
            Requirement::BestEffort => "best-effort",
            Requirement::Off => "off",
        })
    }
}

/// A place in a profile file: 1-based line and column, and which file ([`file_path`]; 0:
/// not known, as in a unit test's text). After `extends` merges files, the file is what
/// lets an error name the line of a parent profile correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Loc {
    pub fn of<T>(spanned: &Spanned<T>) -> Loc {
        spanned.loc
    }

    /// A place in no known file.
    pub fn at(line: u64, column: u64) -> Loc {
        Loc {
            line,
            column,
            file: 0,
        }
    }

    /// `FILE:LINE:COL` when the file is known, else `line L, column C`: for a message
    /// that points at a second place.
    ///
    /// Line 0 is the command line: column N is its Nth flag ([`register_flags`]), named.
    pub fn describe(&self) -> String {
        if self.line == 0 {
            return flag(self.column).unwrap_or_else(|| "the command line".to_string());
        }
        match file_path(self.file) {
            Some(f) => format!("{}:{}:{}", f.display(), self.line, self.column),
            None => format!("line {}, column {}", self.line, self.column),
        }
    }
}

/// The command line's profile flags (`--bind-cwd`, `--ro-bind A:B`), in order: a value
/// they give is located at line 0, column N (1-based) of this list.
static FLAGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remember the command line's profile flags, for [`Loc::describe`].
pub fn register_flags(flags: &[String]) {
    let mut all = FLAGS.lock().unwrap_or_else(|e| e.into_inner());
    all.clear();
    all.extend_from_slice(flags);
}

/// Flag `column` (1-based) of the command line.
fn flag(column: u64) -> Option<String> {
    let all = FLAGS.lock().unwrap_or_else(|e| e.into_inner());
    (column as usize)
        .checked_sub(1)
        .and_then(|i| all.get(i))
        .cloned()
}

/// The profile files read by this process, by id (1-based): a `Loc` names its file by id.
static FILES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// The id of `path` among the files read (registered on first use).
pub fn file_id(path: &std::path::Path) -> u32 {
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    match files.iter().position(|f| f == path) {
        Some(i) => i as u32 + 1,
        None => {
            files.push(path.to_path_buf());
            files.len() as u32
        }
    }
}

/// The path of file `id`, when it is one.
pub fn file_path(id: u32) -> Option<PathBuf> {
    let files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    id.checked_sub(1)
        .and_then(|i| files.get(i as usize))
        .cloned()
}

thread_local! {
    /// The file being deserialized: every `Loc` read meanwhile is in it.
    static CURRENT_FILE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// While alive, located values being deserialized are in file `id`.
pub struct InFile(u32);

impl InFile {
    pub fn enter(path: &std::path::Path) -> InFile {
        let id = file_id(path);
        InFile(CURRENT_FILE.with(|c| c.replace(id)))
    }
}

impl Drop for InFile {
    fn drop(&mut self) {
        CURRENT_FILE.with(|c| c.set(self.0));
    }
}

/// A value as written and where it was written (where an alias refers to an anchor: the
/// alias). Read through serde-saphyr's `Spanned` from YAML; serialized as `{value, loc}`,
/// which is how the shipped profiles are embedded (see `profile::shipped`) and read back
/// inside a [`PlainSpans`] scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

thread_local! {
    static PLAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While alive, `Spanned` values deserialize from their plain `{value, loc}` form (the
/// embedded JSON of the shipped profiles) instead of from YAML positions.
pub struct PlainSpans(bool);

impl PlainSpans {
    pub fn enter() -> PlainSpans {
        PlainSpans(PLAIN.with(|p| p.replace(true)))
    }
}

impl Drop for PlainSpans {
    fn drop(&mut self) {
        PLAIN.with(|p| p.set(self.0));
    }
}

#[derive(Deserialize)]
struct PlainSpanned<T> {
    value: T,
    loc: Loc,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if PLAIN.with(|p| p.get()) {
            let p = PlainSpanned::<T>::deserialize(d)?;
            let mut loc = p.loc;
            if loc.file == 0 {
                loc.file = CURRENT_FILE.with(|c| c.get());
            }
            return Ok(Spanned {
                value: p.value,
                loc,
            });
        }
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(Spanned {
            loc: Loc {
                line: s.referenced.line(),
                column: s.referenced.column(),
                file: CURRENT_FILE.with(|c| c.get()),
            },
            value: s.value,
        })
    }
}

/// In the profile format's JSON Schema a located value is its value.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A value written as a number or as a string with a unit (`1024`, `256M`, `5m`, `"0755"`):
/// its type in the profile format's JSON Schema.
pub struct Scalar;

impl schemars::JsonSchema for Scalar {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "number"]})
    }
}

/// A profile error: where it is, what is wrong, and how to fix it when known.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ProfileError {
    pub file: PathBuf,
    pub loc: Option<Loc>,
    pub message: String,
    pub hint: Option<String>,
}

impl ProfileError {
    pub fn at(loc: Loc, message: impl Into<String>) -> ProfileError {
        ProfileError {
            file: PathBuf::new(),
            loc: Some(loc),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ProfileError {
        self.hint = Some(hint.into());
        self
    }

    pub fn in_file(mut self, file: &std::path::Path) -> ProfileError {
        if self.file.as_os_str().is_empty() {
            self.file = file.to_path_buf();
        }
        self
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::escape;
        // A place in a known file names that file (a parent's line after `extends`).
        let file = self
            .loc
            .and_then(|l| file_path(l.file))
            .unwrap_or_else(|| self.file.clone());
        write!(f, "{}", escape(&file.to_string_lossy()))?;
        if let Some(loc) = self.loc {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        write!(f, ": {}", escape(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {})", escape(hint))?;
        }
        Ok(())
    }
}

/// An absolute, normalized path as seen inside the sandbox (or on the host, for
/// bind sources): starts with `/`, no `..`, no `.`, no empty components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SandboxPath(String);

impl SandboxPath {
    pub fn parse(raw: &str) -> Result<SandboxPath, String> {
        if raw.is_empty() {
            return Err("empty path".into());
        }
        if raw.contains('\0') {
            return Err(format!("path {raw:?} contains a NUL byte"));
        }
        if !raw.starts_with('/') {
            return Err(format!(
                "path {raw:?} is relative; write it absolute, starting with /"
            ));
        }
        let mut parts = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(format!(
                        "path {raw:?} contains '..'; write the path it means without '..'"
                    ))
                }
                p => parts.push(p),
            }
        }
        Ok(SandboxPath(format!("/{}", parts.join("/"))))
    }

    pub fn root() -> SandboxPath {
        SandboxPath("/".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path without its leading `/`, for joining under another root.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether `self` equals `other` or lies inside it.
    pub fn starts_with(&self, other: &SandboxPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
    }

    pub fn parent(&self) -> Option<SandboxPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            SandboxPath::root()
        } else {
            SandboxPath(self.0[..cut].to_string())
        })
    }
}

impl fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse a spanned raw path, turning a bad one into a located error.
pub fn parse_path(raw: &Spanned<String>) -> Result<SandboxPath, ProfileError> {
    SandboxPath::parse(&raw.value).map_err(|msg| ProfileError::at(Loc::of(raw), msg))
}

/// A byte size written as a number or with a K/M/G/T suffix (binary units), or `unlimited`.
pub fn parse_size(raw: &str) -> Result<Option<u64>, String> {
    let s = raw.trim();
    if s.eq_ignore_ascii_case("unlimited") || s == "max" {
        return Ok(None);
    }
    let (digits, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1u64),
        Some((i, _)) => {
            let unit = s[i..].trim().to_ascii_uppercase();
            let mult = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("size {raw:?} has unknown unit; use K, M, G or T")),
            };
            (&s[..i], mult)
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {raw:?} is not a number with an optional K/M/G/T unit"))?;
    n.checked_mul(mult)
        .map(Some)
        .ok_or_else(|| format!("size {raw:?} is too large"))
}

/// A duration written as seconds (`30`) or with a unit (`500ms`, `30s`, `5m`, `1h`).
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let s = raw.trim();
    let split = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("duration {raw:?} is not a number with an optional unit (ms, s, m, h)")
    })?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "duration {raw:?} has unknown unit; use ms, s, m or h"
            ))
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("duration {raw:?} must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_path_rejects_relative_and_dotdot() {
        assert!(SandboxPath::parse("etc").is_err());
        assert!(SandboxPath::parse("/etc/../root").is_err());
        assert!(SandboxPath::parse("").is_err());
        assert_eq!(
            SandboxPath::parse("//usr/./lib/").unwrap().as_str(),
            "/usr/lib"
        );
    }

    #[test]
    fn sandbox_path_prefixes() {
        let usr = SandboxPath::parse("/usr").unwrap();
        assert!(SandboxPath::parse("/usr/lib").unwrap().starts_with(&usr));
        assert!(!SandboxPath::parse("/usrx").unwrap().starts_with(&usr));
        assert_eq!(SandboxPath::parse("/usr/lib").unwrap().parent(), Some(usr));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64M"), Ok(Some(64 << 20)));
        assert_eq!(parse_size("1GiB"), Ok(Some(1 << 30)));
        assert_eq!(parse_size("unlimited"), Ok(None));
        assert!(parse_size("12Q").is_err());
        assert_eq!(parse_duration("1.5s").unwrap().as_millis(), 1500);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert!(parse_duration("-1").is_err());
    }
}

// ---- merging sections (`extends`) ----------------------------------------------------------

/// How a profile section combines with the one it extends: the child's section is laid
/// over its parent's. Implemented with [`merge_fields!`](crate::merge_fields), which names
/// each field's rule where the struct is declared, so a new field without a rule does not
/// compile.
pub trait Merge {
    fn merge(parent: Self, child: Self) -> Self;
}

/// The per-field rules [`merge_fields!`](crate::merge_fields) uses.
pub mod merge {
    use super::Merge;

    /// A value the child sets replaces the parent's.
    pub fn or<T>(parent: Option<T>, child: Option<T>) -> Option<T> {
        child.or(parent)
    }

    /// Lists (and maps) join: the parent's entries first, then the child's.
    pub fn append<T: Append>(parent: T, child: T) -> T {
        T::append(parent, child)
    }

    /// A sub-section present in both merges field by field.
    pub fn nested<T: Merge>(parent: Option<T>, child: Option<T>) -> Option<T> {
        match (parent, child) {
            (Some(p), Some(c)) => Some(T::merge(p, c)),
            (p, c) => c.or(p),
        }
    }

    /// What [`append`] can join.
    pub trait Append {
        fn append(parent: Self, child: Self) -> Self;
    }

    impl<T> Append for Vec<T> {
        fn append(mut parent: Self, child: Self) -> Self {
            parent.extend(child);
            parent
        }
    }

    impl<K: Ord, V> Append for std::collections::BTreeMap<K, V> {
        fn append(mut parent: Self, child: Self) -> Self {
            parent.extend(child);
            parent
        }
    }

    impl<T: Append> Append for Option<T> {
        fn append(parent: Self, child: Self) -> Self {
            match (parent, child) {
                (Some(p), Some(c)) => Some(T::append(p, c)),
                (p, c) => c.or(p),
            }
        }
    }
}

/// `merge_fields!(Section { a: or, b: append, c: nested })` implements [`Merge`] for
/// `Section` with one rule per field from [`merge`].
#[macro_export]
macro_rules! merge_fields {
    ($ty:ident { $($field:ident: $rule:ident),* $(,)? }) => {
        impl $crate::types::Merge for $ty {
            fn merge(parent: Self, child: Self) -> Self {
                $ty { $($field: $crate::types::merge::$rule(parent.$field, child.$field)),* }
            }
        }
    };
}

/// A layer's profile section as written (serde, every key optional so that `extends` can
/// lay a child over its parent), and how it is checked into the layer's `Config`.
pub trait LayerSection: Merge + Clone {
    /// The checked section: what the layer's plan works from.
    type Config;
    /// Check every value, with errors at their file:line:col; `dir` is the directory of
    /// the profile file, against which relative paths in it resolve.
    fn validate(&self, dir: &std::path::Path) -> Result<Self::Config, ProfileError>;

    /// [`LayerSection::validate`] with every error a section can tell apart (one per list
    /// entry where the entries are independent); `check` lists them all.
    fn validate_each(&self, dir: &std::path::Path) -> Result<Self::Config, Vec<ProfileError>> {
        self.validate(dir).map_err(|e| vec![e])
    }
}
