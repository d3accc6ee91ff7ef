#!/bin/sh
# Run script.sh (or the script given as $1) inside the `untrusted` profile.
# Works as root and as a normal user. LASAGNA selects the binary.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
script=${1:-$here/script.sh}
script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
lasagna=lasagna
# `make build` puts it under target/<host triple>/, `cargo build` under target/release/.
for built in "$here"/../../target/*/release/lasagna "$here/../../target/release/lasagna"; do
    if [ -x "$built" ]; then
        lasagna=$built
        break
    fi
done
lasagna=${LASAGNA:-$lasagna}

# Bind sources must be absolute host paths, so the bind of the script is written here,
# in a small profile that extends untrusted.yaml. YAML single quotes: ' is written ''.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }
profile=$(mktemp "${TMPDIR:-/tmp}/lasagna-untrusted.XXXXXX")
trap 'rm -f "$profile"' EXIT
cat >"$profile" <<YAML
name: untrusted
extends: $(quote "$here/untrusted.yaml")
layers:
  filesystem:
    mounts:
      - ro-bind: /work/script.sh
        source: $(quote "$script")
YAML

# A secret in the caller's environment, to show that it does not reach the script.
SECRET_TOKEN=hunter2 "$lasagna" run -v -p "$profile" -- /bin/sh /work/script.sh
