#!/bin/sh
# A stand-in for a script you did not write. It tries what such scripts try and prints
# one line per attempt. Nothing here is harmful when run outside a sandbox, but do read it.

try() { # try DESCRIPTION COMMAND...: ALLOWED if the command succeeds, else BLOCKED
    what=$1; shift
    if out=$("$@" 2>&1); then
        echo "ALLOWED  $what"
    else
        echo "BLOCKED  $what: $(printf '%s' "$out" | head -n 1)"
    fi
}

echo "running as: $(id)"
try "read /etc/shadow"                  cat /etc/shadow
try "list /root"                        ls /root
try "list /home"                        ls /home
try "write into /usr/bin"               touch /usr/bin/evil
try "write into /etc"                   touch /etc/evil
try "overwrite this script"             sh -c 'echo "# changed" >> /work/script.sh'
try "write a work file"                 sh -c 'echo data > /work/out.txt'
try "mount a tmpfs"                     mount -t tmpfs none /tmp
try "change the hostname"               hostname evil
try "create a user namespace"           unshare --user --map-root-user true
try "run a program it wrote to /work"   sh -c 'cp /usr/bin/id /work/id && /work/id'
echo "INFO     processes visible: $(ls /proc | grep -c '^[0-9]')"
echo "INFO     network interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "INFO     capabilities: $(grep CapEff /proc/self/status | tr -s '\t' ' ')"
echo "INFO     no_new_privs: $(grep NoNewPrivs /proc/self/status | cut -f2)"
echo "INFO     controlling terminal: $(awk '{print ($7 == 0 ? "none" : "yes")}' /proc/self/stat)"
echo "INFO     open files limit: $(ulimit -n), CPU seconds limit: $(ulimit -t)"
echo "INFO     SECRET_TOKEN is ${SECRET_TOKEN:-not set}"
try "write 32 MiB (fsize is 16M)"       sh -c 'head -c 33554432 /dev/zero > /work/big'
