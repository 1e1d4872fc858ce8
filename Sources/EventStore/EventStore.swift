// The event store: streams on top of the write-ahead log.
