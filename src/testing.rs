//! Test support shared by the unit tests (`cfg(test)` modules under `src/`) and the
//! integration tests (`tests/common`): one notion of a skip, of strict mode, and of what
//! the host is expected to have. Nothing here runs in `lasagna` itself.
//!
//! A test that needs something the host lacks skips loudly (`SKIP test: reason` on
//! stderr). With `LASAGNA_TEST_STRICT=1` (CI) a skip is a failure, except for a
//! [`Feature`] the run does not declare in `LASAGNA_TEST_EXPECT` (comma-separated names):
//! a pure-v2 host skips the cgroup-v1 tests, an aarch64 host the x86-only ones, loudly and
//! by design, while a host that declares them and lacks them fails.

use std::sync::OnceLock;

/// Whether a skip is a failure (`LASAGNA_TEST_STRICT=1`).
pub fn strict() -> bool {
    std::env::var("LASAGNA_TEST_STRICT").is_ok_and(|v| v == "1")
}

/// Skip `test` for `reason`; under strict mode that is a failure.
pub fn skip(test: &str, reason: &str) {
    if strict() {
        panic!("SKIP {test}: {reason} (LASAGNA_TEST_STRICT=1 makes a skip a failure)");
    }
    eprintln!("SKIP {test}: {reason}");
}

/// What a test may need of the host beyond what every supported host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// cgroup v1 controller hierarchies (`/sys/fs/cgroup/<controller>`).
    CgroupV1,
    /// The x86_64 syscall ABI (x32 and int 0x80 probes).
    X86_64,
    /// At least this Landlock ABI.
    LandlockAbi(u32),
    /// `dev.tty.legacy_tiocsti=1`: TIOCSTI works for an unprivileged process, so a control
    /// run can inject.
    LegacyTiocsti,
}

impl Feature {
    fn name(self) -> String {
        match self {
            Feature::CgroupV1 => "cgroup-v1".into(),
            Feature::X86_64 => "x86_64".into(),
            Feature::LandlockAbi(n) => format!("landlock-abi-{n}"),
            Feature::LegacyTiocsti => "legacy-tiocsti".into(),
        }
    }

    /// Whether this host has it.
    pub fn present(self) -> bool {
        match self {
            Feature::CgroupV1 => {
                std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
            }
            Feature::X86_64 => cfg!(target_arch = "x86_64"),
            Feature::LandlockAbi(n) => landlock_abi() >= n,
            Feature::LegacyTiocsti => std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
                .map(|v| v.trim() == "1")
                // Before 6.2 there is no switch: TIOCSTI always works.
                .unwrap_or(true),
        }
    }

    /// Whether the run declared it (`LASAGNA_TEST_EXPECT`); `landlock-abi-N` declares
    /// every ABI up to N.
    fn expected(self) -> bool {
        let list = std::env::var("LASAGNA_TEST_EXPECT").unwrap_or_default();
        list.split(',').map(str::trim).any(|e| {
            e == self.name()
                || match (
                    self,
                    e.strip_prefix("landlock-abi-")
                        .and_then(|n| n.parse::<u32>().ok()),
                ) {
                    (Feature::LandlockAbi(want), Some(have)) => want <= have,
                    _ => false,
                }
        })
    }
}

/// Whether `test` can run on this host; when it cannot, a declared feature fails the test
/// (under strict mode) and an undeclared one skips it loudly.
pub fn need(test: &str, feature: Feature) -> bool {
    if feature.present() {
        return true;
    }
    let reason = format!("this host lacks {}", feature.name());
    if feature.expected() {
        skip(
            test,
            &format!("{reason}, which LASAGNA_TEST_EXPECT declares"),
        );
    } else {
        eprintln!("SKIP {test}: {reason} (not declared in LASAGNA_TEST_EXPECT: skipped by design)");
    }
    false
}

/// The host's Landlock ABI, asked of the kernel directly rather than of lasagna
/// (`landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`, syscall 444),
/// through python's ctypes so that no test needs `unsafe`.
pub fn landlock_abi() -> u32 {
    static ABI: OnceLock<u32> = OnceLock::new();
    *ABI.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import ctypes; print(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))",
            ])
            .output();
        out.ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<i64>()
                    .ok()
            })
            .unwrap_or(-1)
            .max(0) as u32
    })
}
