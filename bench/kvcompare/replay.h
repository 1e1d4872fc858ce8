/* The BOKVTRC1 replay loop shared by lmdb_replay.c and sqlite_replay.c; it mirrors
 * bench/Sources/KVBench/main.swift (`KVBench trace`): the same op handling, the same
 * write-phase end (the last commit before the first S), the same percentiles and checksum.
 *
 * An engine file includes this file first, then defines the functions declared below. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- engine interface (all abort the process on error) ---- */
static const char *engine_name(void);
static void engine_open(const char *dir);
static void engine_begin_write(void);
static void engine_put(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
static void engine_delete(const uint8_t *k, size_t kl);
/* Writer's read inside the open write transaction; returns 1 and sets *first (first value
 * byte, 0 for an empty value) when found. */
static int engine_get_writer(const uint8_t *k, size_t kl, int *first);
/* Writes meta under the reserved key in the open write transaction and commits durably. */
static void engine_commit(const uint8_t *meta, size_t ml);
static void engine_abort_write(void);
static void engine_begin_read(void);
static int engine_get_read(const uint8_t *k, size_t kl, int *first);
/* Seek to the first key >= k, visit up to count entries; adds (first value byte + key
 * length) of each to *sum. */
static void engine_scan(const uint8_t *k, size_t kl, uint32_t count, uint64_t *sum);
static void engine_end_read(void);
static void engine_close(void);

/* A key no trace key equals, sorting before all of them (trace keys start with a letter). */
static const uint8_t META_KEY[] = {0x00, 'm', 'e', 't', 'a'};

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static long long write_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    char line[256];
    long long v = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "write_bytes:", 12) == 0) v = atoll(line + 12);
    fclose(f);
    return v;
}

static void status_field(const char *name, char *out, size_t outlen) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(name);
    snprintf(out, outlen, "?");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            char *p = line + n + 1;
            while (*p == ' ' || *p == '\t') p++;
            p[strcspn(p, "\n")] = 0;
            snprintf(out, outlen, "%s", p);
        }
    }
    fclose(f);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* KVBench's percentile: sorted[min(n - 1, Int(n * p))]. Sorts in place. */
static double percentile(double *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)((double)n * p);
    return v[i < n - 1 ? i : n - 1];
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb; (void)type; (void)ftw;
    return remove(path);
}

static long long du_alloc, du_apparent;
static int du_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)path; (void)ftw;
    if (type == FTW_F) { du_alloc += (long long)sb->st_blocks * 512; du_apparent += sb->st_size; }
    return 0;
}

static size_t rd_u16(const uint8_t *b, size_t len, size_t *pos) {
    if (len - *pos < 2) DIE("truncated trace at %zu", *pos);
    size_t v = (size_t)b[*pos] | (size_t)b[*pos + 1] << 8;
    *pos += 2;
    return v;
}

static uint32_t rd_u32(const uint8_t *b, size_t len, size_t *pos) {
    if (len - *pos < 4) DIE("truncated trace at %zu", *pos);
    uint32_t v = (uint32_t)b[*pos] | (uint32_t)b[*pos + 1] << 8 | (uint32_t)b[*pos + 2] << 16 | (uint32_t)b[*pos + 3] << 24;
    *pos += 4;
    return v;
}

static void push(double **v, size_t *n, size_t *cap, double x) {
    if (*n == *cap) { *cap = *cap ? *cap * 2 : 4096; *v = realloc(*v, *cap * sizeof **v); if (!*v) DIE("out of memory"); }
    (*v)[(*n)++] = x;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s TRACE DIR\n", argv[0]); return 2; }
    const char *path = argv[1], *dir = argv[2];

    /* The whole trace in one heap buffer (KVBench also reads it whole). */
    int fd = open(path, O_RDONLY);
    if (fd < 0) DIE("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) DIE("out of memory");
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0) DIE("read %s failed", path);
        got += (size_t)r;
    }
    close(fd);
    if (len < 8 || memcmp(buf, "BOKVTRC1", 8) != 0) DIE("%s: not a BOKVTRC1 trace", path);

    nftw(dir, rm_one, 64, FTW_DEPTH | FTW_PHYS);
    if (mkdir(dir, 0755) != 0) DIE("mkdir %s: %s", dir, strerror(errno));
    engine_open(dir);

    size_t pos = 8;
    long long puts = 0, deletes = 0, gets = 0, writer_gets = 0, hits = 0, commits = 0, scans = 0, discarded = 0;
    int read_phase = 0, in_write = 0, in_read = 0, writes_since_commit = 0;
    double *get_t = NULL, *scan_t = NULL;
    size_t ng = 0, cg = 0, ns = 0, cs = 0;
    uint64_t sum = 0;
    double start = now_s(), start_cpu = cpu_s();
    long long start_written = write_bytes();
    double write_end = start, write_cpu = 0;

#define NEED(n) do { if ((n) > len - pos) DIE("truncated trace at %zu", pos); } while (0)
#define U16() rd_u16(buf, len, &pos)
#define U32() rd_u32(buf, len, &pos)
    int ended = 0;
    while (pos < len && !ended) {
        uint8_t op = buf[pos++];
        size_t kl, vl;
        const uint8_t *k, *v;
        int first;
        switch (op) {
        case 'P':
            kl = U16(); NEED(kl); k = buf + pos; pos += kl;
            vl = U32(); NEED(vl); v = buf + pos; pos += vl;
            if (read_phase) DIE("put after the read phase started");
            if (!in_write) { engine_begin_write(); in_write = 1; }
            engine_put(k, kl, v, vl);
            puts++; writes_since_commit = 1;
            break;
        case 'D':
            kl = U16(); NEED(kl); k = buf + pos; pos += kl;
            if (read_phase) DIE("delete after the read phase started");
            if (!in_write) { engine_begin_write(); in_write = 1; }
            engine_delete(k, kl);
            deletes++; writes_since_commit = 1;
            break;
        case 'G':
            kl = U16(); NEED(kl); k = buf + pos; pos += kl;
            gets++;
            if (read_phase) {
                double t = now_s();
                if (engine_get_read(k, kl, &first)) { hits++; sum += (uint64_t)first; }
                push(&get_t, &ng, &cg, now_s() - t);
            } else {
                if (!in_write) { engine_begin_write(); in_write = 1; }
                if (engine_get_writer(k, kl, &first)) { hits++; sum += (uint64_t)first; }
                writer_gets++;
            }
            break;
        case 'S': {
            kl = U16(); NEED(kl); k = buf + pos; pos += kl;
            uint32_t count = U32();
            scans++;
            if (!read_phase) {
                read_phase = 1;
                if (in_write) {
                    /* Writes after the last commit: KVBench's snapshot does not see them either. */
                    engine_abort_write(); in_write = 0;
                    if (writes_since_commit) discarded = 1;
                }
                engine_begin_read(); in_read = 1;
            }
            double t = now_s();
            engine_scan(k, kl, count, &sum);
            push(&scan_t, &ns, &cs, now_s() - t);
            break;
        }
        case 'C': {
            size_t ml = U16(); NEED(ml);
            const uint8_t *meta = buf + pos; pos += ml;
            if (read_phase) DIE("commit after the read phase started");
            if (!in_write) { engine_begin_write(); in_write = 1; }
            engine_commit(meta, ml);
            in_write = 0; writes_since_commit = 0;
            commits++;
            write_end = now_s();
            write_cpu = cpu_s() - start_cpu;
            break;
        }
        case 'E':
            ended = 1;
            break;
        default:
            DIE("unknown op %d at %zu", op, pos - 1);
        }
    }
    if (in_read) engine_end_read();
    if (in_write) { engine_abort_write(); if (writes_since_commit) discarded = 1; }
    long long written = write_bytes() - start_written;
    char hwm[64], anon[64], file[64];
    status_field("VmHWM", hwm, sizeof hwm);
    status_field("RssAnon", anon, sizeof anon);
    status_field("RssFile", file, sizeof file);
    long long hwm_kb = atoll(hwm);
    engine_close();
    long long written_close = write_bytes() - start_written;
    double total_wall = now_s() - start;
    du_alloc = du_apparent = 0;
    nftw(dir, du_one, 64, FTW_PHYS);

    long long wops = puts + deletes + writer_gets;
    double wall = write_end - start;
    double gp50 = percentile(get_t, ng, 0.5) * 1e6, gp99 = percentile(get_t, ng, 0.99) * 1e6;
    double sp50 = percentile(scan_t, ns, 0.5) * 1e6, sp99 = percentile(scan_t, ns, 0.99) * 1e6;
    printf("%s trace replay: %lld puts, %lld deletes, %lld gets (%lld hits), %lld commits, %lld scans\n",
           engine_name(), puts, deletes, gets, hits, commits, scans);
    printf("write phase: %.2f s wall (%.0f ops/s; ops = puts + deletes + %lld writer gets = %lld), %.2f s CPU; all done by %.2f s\n",
           wall, wall > 0 ? (double)wops / wall : 0, writer_gets, wops, write_cpu, total_wall);
    printf("bytes written %lld MB (%lld bytes; %lld bytes including close)\n", written / 1000000, written, written_close);
    printf("on disk: %lld bytes allocated, %lld bytes apparent, in %s\n", du_alloc, du_apparent, dir);
    printf("read phase: get p50 %.1f µs p99 %.1f µs; scan p50 %.1f µs p99 %.1f µs\n", gp50, gp99, sp50, sp99);
    printf("peak RSS %s, RssAnon %s, RssFile %s (checksum %lld); trace buffer %zu MB of that\n",
           hwm, anon, file, (long long)sum, len / 1000000);
    if (discarded) printf("warning: writes after the last commit were discarded\n");
    printf("RESULT engine=%s ops=%lld wall=%.3f ops_s=%.0f cpu=%.3f written=%lld disk=%lld rss_kb=%lld "
           "get_p50=%.2f get_p99=%.2f scan_p50=%.2f scan_p99=%.2f hits=%lld checksum=%lld\n",
           engine_name(), wops, wall, wall > 0 ? (double)wops / wall : 0, write_cpu, written, du_alloc, hwm_kb,
           gp50, gp99, sp50, sp99, hits, (long long)sum);
    free(buf); free(get_t); free(scan_t);
    return 0;
}
