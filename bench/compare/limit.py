"""The machine's limits, measured in the same run with plain system calls: sequential
write bandwidth with fdatasync, fdatasync latency of 4 KiB and 64 KiB appends, and lz4 /
zstd speed on the data set's own bytes (python-lz4 and zstandard call the C libraries;
the per-call overhead is < 1 % at 64 KiB blocks)."""
import os
import time

from common import percentile


def _sequential(path, block, total, prezero):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = os.urandom(block)
        if prezero:  # written once with zeros and synced, as a log that pre-fills segments does
            zero = bytes(1 << 20)
            for off in range(0, total, len(zero)):
                os.pwrite(fd, zero, off)
            os.fsync(fd)
        lat = []
        t0 = time.perf_counter()
        for off in range(0, total, block):
            s = time.perf_counter()
            os.pwrite(fd, data, off)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - s)
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"MBps": total / seconds / 1e6, "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "flushes": len(lat) / seconds}


def disk(directory):
    os.sync()
    path = os.path.join(directory, "limit.bin")
    return {
        "seq1m": _sequential(path, 1 << 20, 256 << 20, prezero=False),
        "seq1m_prezeroed": _sequential(path, 1 << 20, 256 << 20, prezero=True),
        "4k": _sequential(path, 4096, 2000 * 4096, prezero=False),
        "4k_prezeroed": _sequential(path, 4096, 2000 * 4096, prezero=True),
        "64k": _sequential(path, 65536, 2000 * 65536, prezero=False),
        "64k_prezeroed": _sequential(path, 65536, 2000 * 65536, prezero=True),
    }


def codecs(ndjson_path, max_bytes=128 << 20):
    """Compresses the data set's NDJSON in 64 KiB blocks (about Backorder's batch size)."""
    import lz4.block
    import zstandard
    with open(ndjson_path, "rb") as f:
        data = f.read(max_bytes)
    lines = data.count(b"\n")
    blocks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    out = {}
    z1c, z1d = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    z3c = zstandard.ZstdCompressor(level=3)
    for name, comp, decomp in (
        ("lz4", lambda b: lz4.block.compress(b, store_size=True), lambda b: lz4.block.decompress(b)),
        ("zstd-1", z1c.compress, z1d.decompress),
        ("zstd-3", z3c.compress, z1d.decompress),
    ):
        t0 = time.perf_counter()
        packed = [comp(b) for b in blocks]
        ct = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in packed:
            decomp(p)
        dt = time.perf_counter() - t0
        size = sum(len(p) for p in packed)
        out[name] = {"compressMBps": len(data) / ct / 1e6, "decompressMBps": len(data) / dt / 1e6,
                     "compressEventsPerSecond": lines / ct, "decompressEventsPerSecond": lines / dt,
                     "ratio": len(data) / size, "bytesPerEvent": size / lines}
    return out
