/// The failure `eventually` throws: what was awaited, and where the test asked.
public struct NeverHappened: Error, CustomStringConvertible {
    public let description: String
}

/// Polls `condition` every 10 ms until it holds; throws `NeverHappened` once `bound` has
/// passed without it. Only for state the test can observe but not await (another
/// process's output, a server reaching a state asynchronously): where the code has a hook
/// to wait on, wait on the hook. The bound is a hang guard, never a timing assertion:
/// keep it far above how long the condition takes on a loaded machine.
public func eventually(
    _ what: String, within bound: Duration = .seconds(30),
    fileID: String = #fileID, line: Int = #line,
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + bound
    while true {
        if try await condition() { return }
        guard clock.now < deadline else { break }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw NeverHappened(description: "\(fileID):\(line): not within \(bound): \(what)")
}
