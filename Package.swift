// swift-tools-version: 6.1
import PackageDescription

/// Release builds of the storage engine and the pipeline above it (log, key-value store,
/// event store, ingest, views) skip Swift's run-time exclusivity checks: a flush or
/// compaction paid ~10 % of its CPU for them, one per read of an iterator's or builder's
/// property, and a rebuild 13 % in all (bench/RESULTS.md). Debug builds, which run the
/// tests, keep every check, so an overlapping access still stops the test that makes it.
let releaseWithoutExclusivityChecks: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Backorder",
    // Linux only: the storage layer's durability rests on Linux's fdatasync, posix_fallocate
    // and flock, and Sources/EventLog/Storage.swift refuses to build elsewhere
    // (docs/RELIABILITY.md, "Platform").
    products: [
        .executable(name: "backorder", targets: ["BackorderCLI"]),
        .library(name: "EventLog", targets: ["EventLog"]),
        .library(name: "EventStore", targets: ["EventStore"]),
        .library(name: "KVStore", targets: ["KVStore"]),
        .library(name: "Projections", targets: ["Projections"]),
        .library(name: "OutOfStock", targets: ["OutOfStock"]),
        .library(name: "RecordsView", targets: ["RecordsView"]),
        .library(name: "JetStreamStore", targets: ["JetStreamStore"]),
        .library(name: "Consumers", targets: ["Consumers"]),
        .library(name: "BackorderServer", targets: ["BackorderServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(
            name: "CNats",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        .target(name: "CCRC32C"),
        .target(name: "CMallocTuning"),
        .target(name: "CPrefetch"),
        .target(
            name: "CSimdJSON",
            cxxSettings: [.define("SIMDJSON_THREADS_ENABLED", to: "1")],
            linkerSettings: [.linkedLibrary("simdjson")]
        ),
        .target(
            name: "EventLog",
            dependencies: ["CLZ4", "CZstd", "CCRC32C", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: releaseWithoutExclusivityChecks
        ),
        .target(name: "KVStore", dependencies: ["EventLog", "CPrefetch"], swiftSettings: releaseWithoutExclusivityChecks),
        .target(name: "EventStore", dependencies: ["EventLog", "KVStore"], swiftSettings: releaseWithoutExclusivityChecks),
        .target(name: "Projections", dependencies: ["EventStore", "EventLog", "KVStore"], swiftSettings: releaseWithoutExclusivityChecks),
        .target(name: "OutOfStock", dependencies: ["EventStore", "EventLog", "KVStore", "CSimdJSON", "CMallocTuning"], swiftSettings: releaseWithoutExclusivityChecks),
        .target(name: "RecordsView", dependencies: ["OutOfStock", "Projections", "KVStore", "EventStore", "EventLog"], swiftSettings: releaseWithoutExclusivityChecks),
        .target(name: "JetStreamStore", dependencies: ["EventStore", "EventLog", "Consumers", "CNats"]),
        .target(name: "Consumers", dependencies: ["EventStore", "EventLog"]),
        // `backorder serve`: the store over HTTP (docs/SERVER.md).
        .target(
            name: "BackorderServer",
            dependencies: [
                "EventLog", "EventStore", "OutOfStock", "RecordsView", "Projections", "KVStore", "Consumers", "JetStreamStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            // The web dashboard, embedded in the binary as byte arrays (WebRoutes.swift).
            resources: [.embedInCode("Web/index.html"), .embedInCode("Web/app.js"), .embedInCode("Web/app.css")]
        ),
        .target(name: "DataGenerator"),
        // The fault simulator (an in-memory `Storage` with power cuts, torn writes, errors
        // and bit flips); only the test targets use it.
        .target(name: "StorageSimulator", dependencies: ["EventLog", "DataGenerator"]),
        // Child processes with posix_spawn, not Foundation's Process (see SpawnedProcess.swift).
        .target(name: "Spawn"),
        // Running `backorder` from the tests without pipes (see ChildProcess.swift).
        .target(name: "TestSupport", dependencies: ["Spawn", "EventLog"]),
        .executableTarget(
            name: "BackorderCLI",
            dependencies: [
                "CMallocTuning",
                "EventLog",
                "EventStore",
                "Projections",
                "OutOfStock",
                "RecordsView",
                "KVStore",
                "JetStreamStore",
                "Consumers",
                "BackorderServer",
                "DataGenerator",
                "Spawn",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", "BackorderCLI", "DataGenerator", "StorageSimulator", "TestSupport"]
        ),
        .testTarget(
            name: "KVStoreTests",
            dependencies: ["KVStore", "EventLog", "StorageSimulator", "DataGenerator"]
        ),
        .testTarget(
            name: "RecordsViewTests",
            dependencies: ["RecordsView", "Projections", "KVStore", "OutOfStock", "EventStore", "EventLog", "DataGenerator", "StorageSimulator"]
        ),
        .testTarget(
            name: "EventStoreTests",
            dependencies: ["EventStore", "EventLog", "KVStore", "StorageSimulator", "DataGenerator", "TestSupport"]
        ),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "BackorderServer", "EventStore", "EventLog", "OutOfStock", "RecordsView", "DataGenerator", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "OutOfStockTests",
            dependencies: ["OutOfStock", "Projections", "EventStore", "EventLog", "DataGenerator", "BackorderCLI", "CMallocTuning", "JetStreamStore", "Consumers", "StorageSimulator", "TestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
