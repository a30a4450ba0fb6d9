import Dispatch
import Glibc
import SluiceTestSupport

/// A child process whose stdout the test reads line by line, to be killed at a moment
/// the test chooses (the crash test's writer). Posix spawn, no shell.
// @unchecked: one test task uses a child at a time; its blocking calls run on a thread of
// their own (`offPool`) so they do not park the few cooperative threads.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let output: Int32
    private var buffered: [UInt8] = []
    private var reachedEnd = false
    private var reaped = false

    init(executable: String, arguments: [String]) throws {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw ChildProcessError("pipe: errno \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        posix_spawn_file_actions_addclose(&actions, pipeEnds[1])

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(pipeEnds[1])
        guard result == 0 else {
            close(pipeEnds[0])
            throw ChildProcessError("posix_spawn \(executable): errno \(result)")
        }
        pid = child
        output = pipeEnds[0]
    }

    deinit {
        if !reaped { kill() }
        close(output)
    }

    /// The next line of stdout without its newline; nil once the child closed stdout.
    func readLine() -> String? {
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            if reachedEnd { return nil }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { Glibc.read(output, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                reachedEnd = true
                continue
            }
            buffered.append(contentsOf: chunk[0..<count])
        }
    }

    /// SIGKILL, then waits for the child to be gone. Returns the wait status.
    @discardableResult
    func kill() -> Int32 {
        _ = Glibc.kill(pid, SIGKILL)
        return wait()
    }

    /// Waits for the child to exit; returns the raw wait status.
    @discardableResult
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        return status
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a blocking call (pipe reads, waitpid) on a thread of its own: blocking one of the
/// cooperative threads (two on a 2-core machine) would starve every other test's tasks.
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: work()) }
    }
}
