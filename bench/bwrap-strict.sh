#!/usr/bin/env bash
# Prints a bubblewrap command line configured like profiles/strict.yaml (extends base.yaml),
# running the rest of the arguments: read-only /usr, the /bin /sbin /lib* entries (recreated
# as symlinks on merged-/usr hosts), the /etc files, passwd/group/hostname written by the
# profile, tmpfs /tmp and /work (256M), a fresh /proc, a minimal /dev, a read-only root, a
# new session, no capabilities, uid/gid 1000. lasagna writes passwd/group/hostname from the
# profile into its staging tmpfs; bwrap binds the same content from a scratch directory
# (under $1), which costs about the same. Used by bench/launch.sh and bench/network.sh.
set -euo pipefail
scratch=$1/bwrap-etc
shift
mkdir -p "$scratch"
printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$scratch/passwd"
printf 'root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n' >"$scratch/group"
printf 'sandbox\n' >"$scratch/hostname"
scratch=$(cd "$scratch" && pwd)
bw="bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --hostname sandbox"
bw+=" --uid 1000 --gid 1000 --ro-bind /usr /usr"
for d in /bin /sbin /lib /lib64 /lib32; do
    if [ -L "$d" ]; then
        bw+=" --symlink $(readlink "$d") $d"
    elif [ -d "$d" ]; then
        bw+=" --ro-bind $d $d"
    fi
done
for f in /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d /etc/alternatives /etc/localtime; do
    bw+=" --ro-bind-try $f $f"
done
bw+=" --ro-bind $scratch/passwd /etc/passwd --ro-bind $scratch/group /etc/group"
bw+=" --ro-bind $scratch/hostname /etc/hostname"
bw+=" --perms 1777 --tmpfs /tmp --size 268435456 --perms 0777 --tmpfs /work"
bw+=" --proc /proc --dev /dev --chdir /work --remount-ro /"
echo "$bw $*"
