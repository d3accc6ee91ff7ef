//! The host paths a payload must not change through a writable bind, because what it
//! writes there acts after the run: lasagna's own profile directories and this run's
//! profile files (the next run's policy), the startup files of the caller's home (the
//! user's next login or shell), the hooks and config of the repository around the working
//! directory (the user's next commit). The filesystem layer keeps each one read-only
//! inside wherever a writable bind shows it (`filesystem::view`); `unprotect:` lifts a
//! class. Compare firejail's `disable-common.inc`, which does the same for its own
//! configuration and the same startup files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::layers::filesystem::{Guard, Guarded};

/// Startup files and directories below the home directory: (path, masked when missing).
/// A missing directory on the list is masked for the run so that the payload cannot
/// create it; a missing file is left alone.
const STARTUP: &[(&str, bool)] = &[
    // Shells.
    (".profile", false),
    (".bashrc", false),
    (".bash_profile", false),
    (".bash_login", false),
    (".bash_logout", false),
    (".zshenv", false),
    (".zshrc", false),
    (".zprofile", false),
    (".zlogin", false),
    (".zlogout", false),
    (".cshrc", false),
    (".tcshrc", false),
    (".login", false),
    (".logout", false),
    (".kshrc", false),
    (".mkshrc", false),
    (".config/fish", false),
    (".pam_environment", false),
    (".config/environment.d", false),
    // A login's PATH (Debian's ~/.profile adds them when they exist).
    ("bin", true),
    (".local/bin", true),
    // Sessions and services started at login.
    (".xinitrc", false),
    (".xprofile", false),
    (".xsession", false),
    (".xsessionrc", false),
    (".xserverrc", false),
    (".config/autostart", true),
    (".config/systemd", true),
    // Remote logins and keys.
    (".ssh", true),
    (".gnupg", false),
    // Programs that run what their configuration names.
    (".gitconfig", false),
    (".config/git", false),
    (".vimrc", false),
    (".vim", false),
    (".config/nvim", false),
    (".emacs", false),
    (".emacs.d", false),
];

/// The guarded paths of a run: the caller's profile directories, `files` (this run's
/// profile, by path; `<shipped>` entries are not files), the startup files below `home`,
/// the repository around `cwd`, without the classes in `unprotect`.
pub fn guarded(
    files: &[String],
    home: Option<&Path>,
    cwd: Option<&Path>,
    unprotect: &BTreeSet<Guard>,
) -> Vec<Guarded> {
    let mut out = Vec::new();
    let mut add = |path: PathBuf, class: Guard, mask_missing: bool| {
        if !unprotect.contains(&class) && path.is_absolute() {
            out.push(Guarded {
                path,
                class,
                mask_missing,
            });
        }
    };
    // `…/lasagna/profiles` → `…/lasagna`: the whole of lasagna's configuration.
    for dir in super::search_dirs() {
        let dir = dir.parent().map(Path::to_path_buf).unwrap_or(dir);
        add(dir, Guard::LasagnaConfig, true);
    }
    for f in files.iter().filter(|f| !f.starts_with('<')) {
        let path = Path::new(f);
        let path = match cwd {
            Some(cwd) if path.is_relative() => cwd.join(path),
            _ => path.to_path_buf(),
        };
        add(path, Guard::LasagnaConfig, false);
    }
    if let Some(home) = home.filter(|h| h.is_absolute() && *h != Path::new("/")) {
        for (rel, mask_missing) in STARTUP {
            add(home.join(rel), Guard::StartupFiles, *mask_missing);
        }
    }
    if let Some(git) = cwd.and_then(repository_of) {
        add(git.join("hooks"), Guard::GitHooks, true);
        add(git.join("config"), Guard::GitHooks, false);
    }
    out
}

/// The `.git` directory of the repository `dir` is in: the nearest ancestor (or `dir`)
/// holding one. A `.git` file (a worktree's link to its repository) is not followed.
fn repository_of(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().take(64).map(|d| d.join(".git")).find(|g| {
        std::fs::symlink_metadata(g)
            .map(|m| m.is_dir())
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprotect_drops_a_whole_class() {
        let home = Path::new("/home/u");
        let all = guarded(&[], Some(home), None, &BTreeSet::new());
        assert!(all.iter().any(|g| g.path == home.join(".bashrc")));
        assert!(all
            .iter()
            .any(|g| g.class == Guard::LasagnaConfig && g.path.ends_with("lasagna")));
        let some = guarded(&[], Some(home), None, &[Guard::StartupFiles].into());
        assert!(some.iter().all(|g| g.class != Guard::StartupFiles));
        assert!(some.iter().any(|g| g.class == Guard::LasagnaConfig));
    }

    #[test]
    fn profile_files_by_path_are_guarded_and_shipped_ones_are_not() {
        let files = vec![
            "<shipped>/strict.yaml".to_string(),
            "/srv/p/mine.yaml".to_string(),
            "rel.yaml".to_string(),
        ];
        let g = guarded(&files, None, Some(Path::new("/w")), &BTreeSet::new());
        let paths: Vec<&Path> = g
            .iter()
            .filter(|g| !g.mask_missing)
            .map(|g| g.path.as_path())
            .collect();
        assert!(paths.contains(&Path::new("/srv/p/mine.yaml")));
        assert!(paths.contains(&Path::new("/w/rel.yaml")));
        assert!(!paths
            .iter()
            .any(|p| p.to_string_lossy().contains("shipped")));
    }
}
