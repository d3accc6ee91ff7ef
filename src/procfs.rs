//! Reading /proc, /sys and /etc as text: the few readers every part of lasagna shares.
//! A leaf: nothing here knows about profiles, layers or the plan.

use std::path::Path;

/// A whole /proc or /sys file as text. Such files report size 0, so `fs::read_to_string`
/// stats them and then reads in 32-byte steps that double; a 4 KiB buffer takes the usual
/// file in one read, plus the read that sees EOF (`Take` hides the size hint, so no stat).
pub fn read_proc_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(4096);
    (&file).take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The user name of `uid` in /etc/passwd, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Whether a kernel release string (`6.1.0-26-amd64`) is at least `major.minor`.
pub fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_versions_compare() {
        assert!(super::kernel_at_least("6.1.0-26-amd64", 5, 12));
        assert!(super::kernel_at_least("5.12.0", 5, 12));
        assert!(!super::kernel_at_least("5.11.22", 5, 12));
        assert!(!super::kernel_at_least("garbage", 5, 12));
    }
}
