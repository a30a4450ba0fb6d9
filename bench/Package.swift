// swift-tools-version:6.1
// Storage benchmarks, kept out of the main package so `swift build` and CI never build
// them. Run from the repository root:
//   swift run -c release --package-path bench SluiceStorageBench [directory]
// and bench/fio.sh in the same sitting. Results: docs/benchmarks.md.
// Transport: bench/wire.sh (SluiceWireBench against a release `sluice serve`).
import PackageDescription

let package = Package(
    name: "sluice-bench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "sluice", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "SluiceStorageBench",
            dependencies: [
                .product(name: "SluiceStorage", package: "sluice"),
                .product(name: "SluiceChecksum", package: "sluice"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]),
        // The gRPC transport and broker hot paths end to end; bench/wire.sh runs it.
        .executableTarget(
            name: "SluiceWireBench",
            dependencies: [
                .product(name: "SluiceClient", package: "sluice"),
                .product(name: "SluiceAPI", package: "sluice"),
                .product(name: "SluiceWire", package: "sluice"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
