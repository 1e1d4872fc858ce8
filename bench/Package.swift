// swift-tools-version: 6.1
// LogBench: throughput and latency benchmark of the EventLog library; StoreBench and
// CompareBench (bench/compare.sh); ClusterBench (embedded vs JetStream R1/R3); HotPaths, the ordo-one/benchmark suite.
// A separate package so that the root package's build (and CI) never compiles it.
// Build: nice -n 10 swift build -c release --scratch-path .build-bench   (see README.md)
// Hot paths: swift package benchmark --target HotPaths
import PackageDescription

let package = Package(
    name: "LogBench",
    dependencies: [
        .package(name: "Backorder", path: ".."),
        // The malloc interposer gives allocation counts; without listing the trait, the
        // default traits would also pull in a runtime interposer that is not mirrored here.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "LogBench",
            dependencies: [.product(name: "EventLog", package: "Backorder")],
            path: "Sources/LogBench"
        ),
        .executableTarget(
            name: "KVBench",
            dependencies: [.product(name: "KVStore", package: "Backorder"), .product(name: "EventLog", package: "Backorder")],
            path: "Sources/KVBench"
        ),
        .executableTarget(
            name: "StoreBench",
            dependencies: [
                .product(name: "EventStore", package: "Backorder"),
                .product(name: "EventLog", package: "Backorder"),
                .product(name: "OutOfStock", package: "Backorder"),
                .product(name: "Projections", package: "Backorder"),
                .product(name: "RecordsView", package: "Backorder"),
            ],
            path: "Sources/StoreBench"
        ),
        .executableTarget(
            name: "QueryBench",
            dependencies: [
                .product(name: "EventStore", package: "Backorder"),
                .product(name: "OutOfStock", package: "Backorder"),
                .product(name: "RecordsView", package: "Backorder"),
            ],
            path: "Sources/QueryBench"
        ),
        .executableTarget(
            name: "CompareBench",
            dependencies: [
                .product(name: "EventStore", package: "Backorder"),
                .product(name: "EventLog", package: "Backorder"),
                .product(name: "OutOfStock", package: "Backorder"),
            ],
            path: "Sources/CompareBench"
        ),
        .executableTarget(
            name: "ClusterBench",
            dependencies: [
                .product(name: "EventStore", package: "Backorder"),
                .product(name: "EventLog", package: "Backorder"),
                .product(name: "OutOfStock", package: "Backorder"),
                .product(name: "JetStreamStore", package: "Backorder"),
            ],
            path: "Sources/ClusterBench"
        ),
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EventStore", package: "Backorder"),
                .product(name: "EventLog", package: "Backorder"),
                .product(name: "OutOfStock", package: "Backorder"),
                .product(name: "Projections", package: "Backorder"),
                .product(name: "RecordsView", package: "Backorder"),
            ],
            path: "Benchmarks/HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
