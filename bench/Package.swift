// swift-tools-version: 6.1
// LogBench: throughput and latency benchmark of the EventLog library.
// A separate package so that the root package's build (and CI) never compiles it.
// Build: nice -n 10 swift build -c release --scratch-path .build-bench   (see README.md)
import PackageDescription

let package = Package(
    name: "LogBench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Backorder", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "LogBench",
            dependencies: [.product(name: "EventLog", package: "Backorder")],
            path: "Sources/LogBench"
        ),
        .executableTarget(
            name: "StoreBench",
            dependencies: [
                .product(name: "EventStore", package: "Backorder"),
                .product(name: "EventLog", package: "Backorder"),
                .product(name: "OutOfStock", package: "Backorder"),
                .product(name: "Projections", package: "Backorder"),
            ],
            path: "Sources/StoreBench"
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
    ],
    swiftLanguageModes: [.v6]
)
