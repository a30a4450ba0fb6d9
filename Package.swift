// swift-tools-version:6.1
// Sluice: a distributed, persistent, partitioned message queue with a gRPC API.
// Layers depend one way (see docs/architecture.md): C shims -> Checksum -> Wire/API/Storage
// -> Broker -> Service/Client -> the `sluice` executable. The client library carries no
// storage engine: it shares only SluiceChecksum with the log.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
// The layers' own code: an `import` is internal unless it says `public import`, so a layer
// shows another's types only where its public API names them, and the compiler says so.
let layerSettings = swiftSettings + [.enableUpcomingFeature("InternalImportsByDefault")]

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .library(name: "SluiceClient", targets: ["SluiceClient"]),
        .library(name: "SluiceChecksum", targets: ["SluiceChecksum"]),
        // For bench/ (a separate package, so the main build does not build benchmarks).
        .library(name: "SluiceStorage", targets: ["SluiceStorage"]),
        .library(name: "SluiceAPI", targets: ["SluiceAPI"]),
        .library(name: "SluiceWire", targets: ["SluiceWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // The client's Producer and GroupConsumer are `Service`s (graceful shutdown on SIGTERM).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // C shims: the only places that include C headers.
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        // protoc-c output; regenerate with codegen/generate.sh (headers in include/, sources in generated/).
        .target(name: "CSluiceProto", exclude: ["generated/descriptor_set.pb"], linkerSettings: [.linkedLibrary("protobuf-c")]),
        .target(name: "CSluiceCRC32C"),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),

        // Layers.
        .target(
            name: "SluiceWire",
            dependencies: ["CNghttp2", nioCore, nioPosix, logging,
                           .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: layerSettings),
        .target(name: "SluiceAPI", dependencies: ["CSluiceProto", nioCore], swiftSettings: layerSettings),
        // Batch compression (zstd, lz4) over the two shims above; the client uses it.
        .target(name: "SluiceCompression", dependencies: ["CZstd", "CLZ4", nioCore], swiftSettings: layerSettings),
        // CRC32C over the shim: the checksum of stored batches and of every produced batch's
        // records, shared by the log and the client.
        .target(name: "SluiceChecksum", dependencies: ["CSluiceCRC32C", nioCore], swiftSettings: layerSettings),
        .target(name: "SluiceStorage", dependencies: ["SluiceChecksum", nioCore, nioPosix, logging], swiftSettings: layerSettings),
        .target(
            name: "SluiceBroker", dependencies: ["SluiceStorage", "SluiceChecksum", "SluiceAPI", "SluiceCompression", nioCore, logging],
            swiftSettings: layerSettings),
        .target(
            name: "SluiceService",
            dependencies: ["SluiceWire", "SluiceAPI", "SluiceBroker", "SluiceCluster", nioCore, nioPosix, logging],
            swiftSettings: layerSettings),
        .target(name: "SluiceCluster", dependencies: ["SluiceWire", "SluiceAPI", nioCore, logging], swiftSettings: layerSettings),
        .target(
            name: "SluiceClient",
            dependencies: ["SluiceWire", "SluiceAPI", "SluiceChecksum", "SluiceCompression", nioCore, nioPosix, logging,
                           .product(name: "DequeModule", package: "swift-collections"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: layerSettings),
        // `sluice bench`: load generation, open-loop schedules and HDR latency summaries.
        .target(
            name: "SluiceBench",
            dependencies: ["SluiceClient", "SluiceAPI", "SluiceCompression", "SluiceWire", nioCore, logging,
                           .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: layerSettings),
        .executableTarget(
            name: "sluice",
            dependencies: ["SluiceService", "SluiceClient", "SluiceBench", "SluiceBroker", "SluiceStorage", "SluiceCluster", nioCore, nioPosix, logging,
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: layerSettings),
        // A child process for the storage crash test: appends until killed, reporting
        // which offsets were acknowledged durable.
        .executableTarget(name: "SluiceCrashWriter", dependencies: ["SluiceStorage"], swiftSettings: layerSettings),

        // What the test targets share: seeded random numbers, `eventually`, temporary
        // directories, `sluice` child processes, fake file systems. A plain target, no
        // product, so nothing that ships links it.
        .target(
            name: "SluiceTestSupport", dependencies: ["SluiceStorage", "SluiceCluster", nioCore, logging], path: "Tests/SluiceTestSupport",
            swiftSettings: swiftSettings),

        .testTarget(
            name: "SluiceWireTests", dependencies: ["SluiceTestSupport", "SluiceWire", nioCore, nioPosix], exclude: ["Interop"],
            swiftSettings: swiftSettings),
        .testTarget(name: "SluiceAPITests", dependencies: ["SluiceTestSupport", "SluiceAPI", nioCore], swiftSettings: swiftSettings),
        .testTarget(
            name: "SluiceClusterTests",
            dependencies: ["SluiceTestSupport", "SluiceCluster", "SluiceWire", "SluiceAPI", "SluiceClient", nioCore, nioPosix, logging],
            swiftSettings: swiftSettings),
        // Sluice's Swift client against a real `sluice serve` process (the binary is found
        // next to the test bundle; `swift build --build-tests` builds it).
        .testTarget(
            name: "SluiceInteropTests",
            dependencies: ["SluiceTestSupport", "SluiceClient", "SluiceWire", "SluiceAPI", nioCore, logging,
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings),
        // The client's partitioner, batch encoding and batching rules, against docs/test-vectors.json.
        .testTarget(
            name: "SluiceClientTests", dependencies: ["SluiceTestSupport", "SluiceClient", "SluiceCompression", "SluiceAPI", "SluiceWire", nioCore, logging],
            swiftSettings: swiftSettings),
        // The bench tool's own correctness (percentiles, open-loop schedule, counts against a
        // real `sluice serve`), never its speed.
        .testTarget(
            name: "SluiceBenchTests", dependencies: ["SluiceTestSupport", "SluiceBench", "SluiceClient", "SluiceAPI", nioCore,
                                                     .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: swiftSettings),
        .testTarget(name: "SluiceStorageTests", dependencies: ["SluiceTestSupport", "SluiceStorage", "SluiceChecksum", nioCore], swiftSettings: swiftSettings),
        .testTarget(
            name: "SluiceBrokerTests",
            dependencies: [
                "SluiceTestSupport", "SluiceBroker", "SluiceService", "SluiceClient", "SluiceCompression", "SluiceWire", "SluiceAPI",
                "SluiceStorage", "SluiceChecksum", "SluiceCluster", nioCore, nioPosix,
            ],
            swiftSettings: swiftSettings),
        // Replication under faults on real processes (3 brokers in network namespaces, a
        // 3-member etcd) and the checker of what was acknowledged; scripts/test.sh runs it
        // as a step of its own (docs/testing.md, "The fault suite").
        .testTarget(
            name: "SluiceFaultTests",
            dependencies: ["SluiceTestSupport", "SluiceClient", "SluiceStorage", "SluiceCluster", "SluiceAPI", nioCore, nioPosix, logging],
            swiftSettings: swiftSettings),
    ]
)
