//! Reading /proc, /sys and /etc as text, and random bytes from /dev/urandom: the few readers every part of lasagna shares.
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
    passwd_entry(uid).map(|(name, _)| name)
}

/// The name and home directory of `uid` in /etc/passwd, if it has an entry there. Read
/// from the file, not through NSS: the launcher is linked statically, and a static glibc
/// that falls through to a module such as `systemd` in nsswitch.conf (a uid the file does
/// not name) loads a shared object into a process that has no dynamic loader of its own.
pub fn passwd_entry(uid: u32) -> Option<(String, String)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let id: u32 = f.get(2)?.parse().ok()?;
        (id == uid && f.len() >= 6).then(|| (f[0].to_string(), f[5].to_string()))
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

/// Fill `buf` from /dev/urandom; where it cannot be read, from the clock and the pid (names
/// then still differ between runs, which is all their callers need: none is a secret of
/// lasagna's own).
pub fn random_bytes(buf: &mut [u8]) {
    use std::io::Read;
    let got = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if got.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8;
        }
    }
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    random_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
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
