import EventStore

extension StoreOptions {
    /// A small store for tests: `partitions` partitions, no waiting for another writer's
    /// lock, small preallocated segments.
    static func forTests(partitions: Int, preallocationBytes: Int = 256 << 10) -> StoreOptions {
        var options = StoreOptions()
        options.log.partitionCount = partitions
        options.log.lockTimeoutMilliseconds = 0
        options.log.preallocationBytes = preallocationBytes
        return options
    }
}
