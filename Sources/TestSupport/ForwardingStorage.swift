import EventLog

/// The real file system, for tests that change what some files do — fail, fill up, wait —
/// by handing out their own files (`wrap`). The fault simulator replaces the whole file
/// system instead; this keeps real files and timing.
open class ForwardingStorage: Storage, @unchecked Sendable {
    public let base = PosixStorage()

    public init() {}

    /// The file handed out for `file`, opened at `path` (`file` itself unless overridden).
    open func wrap(_ file: any StorageFile, path: String) -> any StorageFile { file }

    public func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile {
        wrap(try base.open(path, create: create, writable: writable), path: path)
    }
    public func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    public func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    public func exists(_ path: String) -> Bool { base.exists(path) }
    public func rename(_ from: String, to: String) throws { try base.rename(from, to: to) }
    public func remove(_ path: String) throws { try base.remove(path) }
    public func removeDirectory(_ path: String) throws { try base.removeDirectory(path) }
    public func syncDirectory(_ path: String) throws { try base.syncDirectory(path) }
    public func lock(_ path: String) throws -> any StorageLock { try base.lock(path) }
    open func isLockHeld(_ path: String) -> Bool { base.isLockHeld(path) }
}

/// A file whose calls go to `inner`; a test overrides the ones it changes.
open class ForwardingFile: StorageFile, @unchecked Sendable {
    public let inner: any StorageFile

    public init(_ inner: any StorageFile) { self.inner = inner }

    public var path: String { inner.path }
    open func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws { try inner.write(bytes, at: offset) }
    open func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int { try inner.read(into: buffer, at: offset) }
    open func sync() throws { try inner.sync() }
    open func size() throws -> Int64 { try inner.size() }
    open func truncate(to size: Int64) throws { try inner.truncate(to: size) }
    open func close() { inner.close() }
}
