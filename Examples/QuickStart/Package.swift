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
    ],
    targets: [
        .executableTarget(
            name: "QuickStart",
            dependencies: [
                // One import: SluiceClient re-exports what its API takes and returns.
                .product(name: "SluiceClient", package: "sluice"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
