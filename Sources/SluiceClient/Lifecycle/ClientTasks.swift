import Synchronization

/// The unstructured tasks the client library starts (session readers and writers, timers,
/// group membership, heartbeats, partition readers, closes left to finish), counted so a
/// test can see that a dropped or closed client leaves none running.
///
/// Counting is scoped by a task-local counter: tasks started while `ClientTasks.counter` is
/// bound count against it, and so do the tasks those tasks start (unstructured tasks inherit
/// task-locals), while other clients in the same process do not. With no counter bound, a
/// task costs one task-local read.
package enum ClientTasks {
    @TaskLocal package static var counter: ClientTaskCounter?

    /// Called as a task is created (in its capture list), so the count is never behind a
    /// task that has not started yet; the task calls `end()` on the result when it ends.
    static func begin(_ file: String = #fileID, _ line: Int = #line) -> CountedTask {
        let counter = counter
        let site = "\(file):\(line)"
        counter?.running.withLock { $0[site, default: 0] += 1 }
        return CountedTask(counter: counter, site: site)
    }
}

/// How many client tasks started under it are still running, and where they were started.
package final class ClientTaskCounter: Sendable {
    let running = Mutex([String: Int]())

    package init() {}

    package var count: Int { running.withLock { $0.values.reduce(0, +) } }

    /// The sites (file:line) of the tasks still running, with how many each: what a leak
    /// test names when it fails.
    package var sites: [String: Int] { running.withLock { $0.filter { $0.value != 0 } } }
}

/// One counted task's share of its counter.
struct CountedTask: Sendable {
    let counter: ClientTaskCounter?
    let site: String

    func end() { counter?.running.withLock { $0[site, default: 0] -= 1 } }
}
