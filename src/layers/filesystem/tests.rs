//! Snapshot tests of the filesystem planner: a profile section and a host tree in, the
//! list of planned steps out (as bubblewrap's and youki's own tests pin their mount
//! sequences). The host tree is made by each test, under a directory of its own.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::view;
use super::*;
use crate::types::LayerSection;

/// A host tree for one test, removed at the end.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let root = std::env::temp_dir().join(format!("lasagna-view-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/file"), b"x").unwrap();
        std::fs::write(root.join("etc-file"), b"y").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/nonexistent-lasagna-view", root.join("dangling")).unwrap();
        // Canonical: the planner names sources by their real path.
        Tree(std::fs::canonicalize(&root).unwrap())
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Plan `yaml` (with `$T` for the tree) and return the steps with the tree as `$T`.
fn steps(tree: &Tree, yaml: &str, fresh_proc: bool) -> (Vec<String>, view::FsPlan) {
    let yaml = yaml.replace("$T", tree.path());
    let section: Section = serde_saphyr::from_str(&yaml).unwrap();
    let cfg = section
        .validate(Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = crate::hostfs::cached(|| view::plan(&cfg, fresh_proc));
    let out = plan
        .steps()
        .into_iter()
        .map(|s| s.replace(tree.path(), "$T"))
        .collect();
    (out, plan)
}

#[test]
fn binds_tmpfs_and_files_in_profile_order() {
    let tree = Tree::new("order");
    let (got, plan) = steps(
        &tree,
        "mounts:
  - ro-bind: /usr
    source: $T/usr
  - tmpfs: /tmp
    size: 1M
  - file: /etc/hostname
    content: \"box\\n\"
  - bind: /data
    source: $T/data
",
        true,
    );
    assert_eq!(
        got,
        [
            "/usr: bind dir $T/usr ReadOnly (own)",
            "/tmp: tmpfs Some(1048576) 755 (own)",
            "/etc/hostname: file 4 bytes 444 (own)",
            "/data: bind dir $T/data ReadWrite (own)",
        ]
    );
    assert!(plan.problems.is_empty() && plan.creates.is_empty());
}

#[test]
fn a_link_to_a_bound_tree_is_recreated_and_others_are_followed() {
    let tree = Tree::new("links");
    let (got, _) = steps(
        &tree,
        "mounts:
  - ro-bind: /usr
    source: $T/usr
  - ro-bind: /bin
    source: $T/bin
",
        true,
    );
    // $T/bin -> usr/bin: inside, /bin -> usr/bin leads to the same bound directory.
    assert_eq!(
        got,
        [
            "/usr: bind dir $T/usr ReadOnly (own)",
            "/bin: symlink -> usr/bin (own)",
        ]
    );
    // Without /usr bound the link is followed on the host and its target bound.
    let (got, _) = steps(
        &tree,
        "mounts:\n  - ro-bind: /bin\n    source: $T/bin\n",
        true,
    );
    assert_eq!(got, ["/bin: bind dir $T/usr/bin ReadOnly (own)"]);
}

#[test]
fn a_mount_point_inside_a_bound_directory_is_created_on_the_host() {
    let tree = Tree::new("inside");
    let (got, _) = steps(
        &tree,
        "mounts:
  - bind: /data
    source: $T/data
  - tmpfs: /data/cache
  - ro-bind: /data/sub/conf
    source: $T/etc-file
",
        true,
    );
    assert_eq!(
        got,
        [
            "/data: bind dir $T/data ReadWrite (own)",
            "/data/cache: tmpfs Some(268435456) 755 (host $T/data/cache)",
            "/data/sub/conf: bind file $T/etc-file ReadOnly (host $T/data/sub/conf)",
            "create $T/data/cache: dir 755",
            "create $T/data/sub/conf: file",
        ]
    );
}

#[test]
fn missing_sources_are_problems_unless_optional() {
    let tree = Tree::new("missing");
    let (got, plan) = steps(
        &tree,
        "mounts:
  - ro-bind: /nope
    source: $T/nope
  - ro-bind: /also
    source: $T/also-nope
    optional: true
  - ro-bind: /dangling
    source: $T/dangling
",
        true,
    );
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
    assert!(plan.problems[0].contains("does not exist on this host"));
    assert!(plan.problems[1].contains("is a symlink to"));
    assert_eq!(plan.notes.len(), 1);
    assert!(plan.notes[0].contains("left out: not on this host"));
}

#[test]
fn proc_and_dev_entries_are_builtin() {
    let tree = Tree::new("builtin");
    let (got, _) = steps(&tree, "mounts:\n  - mask: /proc/kcore\n", true);
    assert_eq!(got, ["/proc/kcore: mask (builtin)"]);
}

#[test]
fn a_mount_point_through_a_link_in_a_bound_directory_is_refused() {
    let tree = Tree::new("planted");
    symlink("/etc", tree.0.join("data/planted")).unwrap();
    let (got, plan) = steps(
        &tree,
        "mounts:
  - bind: /data
    source: $T/data
  - tmpfs: /data/planted/x
",
        true,
    );
    // The bind stays; nothing is made through the link, on the host or inside.
    assert_eq!(got, ["/data: bind dir $T/data ReadWrite (own)"]);
    assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
    assert!(plan.problems[0].contains("symlink"), "{}", plan.problems[0]);
}
