#!/usr/bin/env bash
# The Debian package installs cleanly with dpkg -i and then works: `make deb`, dpkg -i,
# `lasagna doctor`, the man pages and completions where Debian looks for them, a run of the
# installed binary, then dpkg -r. Run by `make test` as root where cargo-deb is installed
# (.ci/run installs it); elsewhere it says why it did nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "check-deb: not root; skipped" >&2; exit 0; fi
if ! cargo deb --version >/dev/null 2>&1; then
    if [ "${LASAGNA_TEST_STRICT:-}" = 1 ]; then echo "check-deb: cargo-deb is not installed (cargo install cargo-deb)" >&2; exit 1; fi
    echo "check-deb: cargo-deb is not installed; skipped" >&2; exit 0
fi
if dpkg -s lasagna >/dev/null 2>&1; then echo "check-deb: a lasagna package is installed already; left alone" >&2; exit 1; fi
make -s deb >/dev/null
deb=$(ls -t target/debian/lasagna_*.deb | head -1)
trap 'dpkg -r lasagna >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb" >/dev/null
/usr/bin/lasagna doctor >/dev/null
test -f /usr/share/man/man1/lasagna.1 && test -f /usr/share/man/man5/lasagna-profile.5
test -f /usr/share/bash-completion/completions/lasagna && test -f /usr/share/lasagna/profile.schema.json
out=$(/usr/bin/lasagna run -p strict -- /bin/echo installed)
[ "$out" = installed ]
dpkg -r lasagna >/dev/null
trap - EXIT
test ! -e /usr/bin/lasagna
echo "check-deb: $deb installs, passes doctor, runs and removes cleanly"
