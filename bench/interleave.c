/* Interleaved launch timing: runs each command once per round, round after round, so
 * that drift on a shared machine (other tenants, frequency changes) hits every peer
 * alike. Prints one line per command: name, median, p90 and mean wall in ms.
 *
 * usage: interleave ROUNDS WARMUP name1 'cmd1 args' name2 'cmd2 args' ...
 * Commands are split on spaces (no quoting) and started with posix_spawn, stdout and
 * stderr to /dev/null. A command that exits non-zero stops the measurement. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static char **split(char *s) {
    size_t n = 0, cap = 8;
    char **v = malloc(cap * sizeof *v);
    for (char *tok = strtok(s, " "); tok; tok = strtok(NULL, " ")) {
        if (n + 2 > cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = tok;
    }
    v[n] = NULL;
    return v;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run(char **argv, posix_spawn_file_actions_t *fa) {
    pid_t pid;
    double t0 = now_ms();
    if (posix_spawn(&pid, argv[0], fa, NULL, argv, environ) != 0) {
        perror(argv[0]);
        exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now_ms() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "interleave: %s failed (status %d)\n", argv[0], st);
        exit(1);
    }
    return t;
}

int main(int argc, char **argv) {
    if (argc < 5 || (argc - 3) % 2) {
        fprintf(stderr, "usage: %s ROUNDS WARMUP name 'cmd' [name 'cmd']...\n", argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]), warmup = atoi(argv[2]), k = (argc - 3) / 2;
    char **names = malloc(k * sizeof *names);
    char ***cmds = malloc(k * sizeof *cmds);
    double **t = malloc(k * sizeof *t);
    for (int i = 0; i < k; i++) {
        names[i] = argv[3 + 2 * i];
        cmds[i] = split(argv[4 + 2 * i]);
        t[i] = malloc(rounds * sizeof **t);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    for (int r = 0; r < warmup; r++)
        for (int i = 0; i < k; i++) run(cmds[i], &fa);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < k; i++) t[i][r] = run(cmds[i], &fa);
    for (int i = 0; i < k; i++) {
        double sum = 0;
        for (int r = 0; r < rounds; r++) sum += t[i][r];
        qsort(t[i], rounds, sizeof **t, cmp);
        printf("%s %.3f %.3f %.3f\n", names[i], t[i][rounds / 2],
               t[i][(int)(0.9 * (rounds - 1) + 0.5)], sum / rounds);
    }
    return 0;
}
