#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// `Storage` on the real file system, through POSIX calls.
public struct PosixStorage: Storage {
    /// The real file system.
    public init() {}

    public func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile {
        var flags: Int32 = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        if create { flags |= O_CREAT }
        let fd = retryOnInterrupt { Glibc.open(path, flags, 0o644) }
        guard fd >= 0 else { throw LogError.fromErrno(errno, operation: "open", path: path) }
        return PosixFile(fd: fd, path: path)
    }

    public func createDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw LogError.fromErrno(errno, operation: "mkdir", path: prefix)
            }
            prefix += "/"
        }
    }

    public func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw LogError.fromErrno(errno, operation: "opendir", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        errno = 0
        while let entry = readdir(dir) {
            // The name is read through a pointer into the record readdir returned, never as
            // `entry.pointee.d_name`: that copies the whole 256-byte field, while glibc sizes
            // each record to its name (`d_reclen`), so a short record at the end of its buffer
            // makes the copy read past it — a crash now and then (the same bug as
            // swift-corelibs-foundation PR #5472, in Process.run).
            let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
            errno = 0
        }
        guard errno == 0 else { throw LogError.fromErrno(errno, operation: "readdir", path: path) }
        return names
    }

    public func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    public func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw LogError.fromErrno(errno, operation: "rename", path: to) }
    }

    public func remove(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else { throw LogError.fromErrno(errno, operation: "unlink", path: path) }
    }

    public func removeDirectory(_ path: String) throws {
        guard rmdir(path) == 0 || errno == ENOENT else { throw LogError.fromErrno(errno, operation: "rmdir", path: path) }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw LogError.fromErrno(errno, operation: "open directory", path: path) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw LogError.fromErrno(errno, operation: "fsync directory", path: path) }
    }

    public func lock(_ path: String) throws -> any StorageLock {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError.fromErrno(errno, operation: "open lock file", path: path) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            Glibc.close(fd)
            if code == EWOULDBLOCK { throw LogError.locked(path: path) }
            throw LogError.fromErrno(code, operation: "flock", path: path)
        }
        return PosixLock(fd: fd)
    }

    /// Probes with the lock file opened read-only: a reader without write access to the
    /// store (an auditor's account) still tells a writer from none — through `lock`, which
    /// opens the file for writing, it would take every writer as present.
    public func isLockHeld(_ path: String) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno != ENOENT }
        defer { Glibc.close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }
}

private func retryOnInterrupt(_ call: () -> Int32) -> Int32 {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// A file descriptor. `pread`/`pwrite` carry their own positions, so one file may be
/// used from several threads at once; `close` is guarded so it happens once.
final class PosixFile: StorageFile {
    let path: String
    private let fd: Int32
    private let isClosed = Atomic<Bool>(false)

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        var position = offset
        while remaining > 0 {
            let n = pwrite(fd, pointer, remaining, off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                throw LogError.fromErrno(errno, operation: "pwrite", path: path)
            }
            // A short write without an error means the disk filled up part way.
            if n == 0 { throw LogError.diskFull(path: path) }
            pointer += n
            remaining -= n
            position += Int64(n)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var total = 0
        while total < buffer.count {
            let n = pread(fd, base + total, buffer.count - total, off_t(offset + Int64(total)))
            if n < 0 {
                if errno == EINTR { continue }
                throw LogError.fromErrno(errno, operation: "pread", path: path)
            }
            if n == 0 { break }
            total += n
        }
        return total
    }

    func sync() throws {
        guard fdatasync(fd) == 0 else { throw LogError.fromErrno(errno, operation: "fdatasync", path: path) }
    }

    func size() throws -> Int64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw LogError.fromErrno(errno, operation: "fstat", path: path) }
        return Int64(info.st_size)
    }

    func truncate(to size: Int64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw LogError.fromErrno(errno, operation: "ftruncate", path: path) }
    }

    func close() {
        if !isClosed.exchange(true, ordering: .acquiringAndReleasing) { Glibc.close(fd) }
    }
}

final class PosixLock: StorageLock {
    private let fd: Int32
    private let released = Atomic<Bool>(false)

    init(fd: Int32) { self.fd = fd }
    deinit { release() }

    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) {
            flock(fd, LOCK_UN)
            Glibc.close(fd)
        }
    }
}
