// swift-tools-version:6.1
// The README's "From Swift" example as a package of its own, depending on Sluice by path
// the way a user's package would. tests/interop/test_examples.py builds it and runs it
// against a real broker, so the README cannot drift from the code.
import PackageDescription

let package = Package(
    name: "QuickStart",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its folder name, which
        // differs between clones.
        .package(name: "sluice", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "QuickStart",
            dependencies: [
                .product(name: "SluiceClient", package: "sluice"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
