/*
 * What a zstd context costs when it is made per call (ZSTD_compress, ZSTD_decompress) against
 * one kept and reused (ZSTD_compressCCtx, ZSTD_decompressDCtx), for a single event's batch
 * (300 bytes) and a bulk batch (160 KB, about 1,250 events). Level 1, as the log writes.
 * bench/RESULTS.md, "Reading out and contexts kept" has the figures; EventLog's Codec keeps one
 * context of each kind per thread (ZstdContexts).
 *
 *   cc -O2 bench/zstd-contexts/main.c -lzstd -o /tmp/zstd-contexts && /tmp/zstd-contexts
 */
#include <stdio.h>
#include <time.h>
#include <zstd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void measure(const char *name, size_t size, int rounds) {
    static char source[160000], compressed[200000], back[160000];
    const char *text = "{\"type\":\"OutOfStockReported\",\"customerId\":\"C-000123\",\"size\":\"M\"}";
    for (size_t i = 0; i < size; i++) source[i] = text[(i * 7 + i / 64) % 66] ^ (char)(i / 500 % 3);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t written = 0;
    double t = now();
    for (int i = 0; i < rounds; i++) written = ZSTD_compress(compressed, sizeof compressed, source, size, 1);
    double oneShot = (now() - t) / rounds * 1e6;
    t = now();
    for (int i = 0; i < rounds; i++) written = ZSTD_compressCCtx(cctx, compressed, sizeof compressed, source, size, 1);
    double kept = (now() - t) / rounds * 1e6;
    t = now();
    for (int i = 0; i < rounds; i++) ZSTD_decompress(back, size, compressed, written);
    double dOneShot = (now() - t) / rounds * 1e6;
    t = now();
    for (int i = 0; i < rounds; i++) ZSTD_decompressDCtx(dctx, back, size, compressed, written);
    double dKept = (now() - t) / rounds * 1e6;
    printf("%-22s compress %7.1f µs per call, %7.1f µs reused; decompress %6.1f µs, %6.1f µs reused\n",
           name, oneShot, kept, dOneShot, dKept);
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
}

int main(void) {
    measure("300 B (one event)", 300, 100000);
    measure("160 KB (1,250 events)", 160000, 300);
    return 0;
}
