// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Backorder",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "backorder", targets: ["BackorderCLI"]),
        .library(name: "EventLog", targets: ["EventLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .target(name: "CCRC32C"),
        .target(
            name: "EventLog",
            dependencies: ["CLZ4", "CZstd", "CCRC32C"]
        ),
        .executableTarget(
            name: "BackorderCLI",
            dependencies: [
                "EventLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", "BackorderCLI"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
