import Foundation

/// A fresh directory under the system temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "sluice-test") {
        path = FileManager.default.temporaryDirectory.path + "/\(label)-\(UUID().uuidString.lowercased())"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            preconditionFailure("cannot create \(path): \(error)")
        }
    }

    /// A fresh directory and what `make` builds in it, for a test to use and then remove;
    /// when `make` throws, the directory is removed before the error goes on.
    public static func holding<Contents>(
        _ make: (TemporaryDirectory) throws -> Contents
    ) throws -> (directory: TemporaryDirectory, contents: Contents) {
        let directory = TemporaryDirectory()
        do {
            return (directory, try make(directory))
        } catch {
            directory.remove()
            throw error
        }
    }

    public var url: URL { URL(fileURLWithPath: path) }

    /// The path of `name` inside this directory.
    public func path(_ name: String) -> String { path + "/" + name }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    public func write(_ text: String, to name: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path(name)))
    }

    public func read(_ name: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: path(name))), as: UTF8.self)
    }

    public func exists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: path(name))
    }
}
