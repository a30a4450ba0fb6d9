import Foundation
import SluiceClient
import SluiceCluster
import SluiceTestSupport

extension FaultCluster {
    /// After a fault healed: waits (bounded) for every replica to be back in sync, reads
    /// every partition from its leader from the earliest offset to the high watermark,
    /// checks that against `history`, stops the brokers and compares every replica's
    /// files below the high watermark. The report is printed, written to
    /// `report-<fault>.txt` in the test's directory and, when $SLUICE_FAULT_REPORT names a
    /// file, appended there (scripts/test.sh prints that file).
    func verdict(_ fault: String, history: FaultHistory, notes: [String], interruption: (any Error)? = nil) async throws -> FaultReport {
        var notes = notes + history.failureSummary.prefix(5).map { "send failed: \($0)" }
        let crashes = unexpectedExits
        do {
            // A broker that died will not come back in sync: no wait for it.
            if crashes.isEmpty { _ = try await fullyReplicated("every replica back in sync after: \(fault)", within: .seconds(40)) }
        } catch {
            let states = current.topics[Self.topic]?.partitions.map(\.description) ?? []
            notes.append("not every replica back in the ISR: \(states.joined(separator: "; "))")
        }
        var read: [ReadRecord] = []
        var highWatermarks: [Int: Int64] = [:]
        do {
            (read, highWatermarks) = try await readBack()
        } catch {
            // Reported, not thrown: what was acknowledged and cannot be read is lost.
            notes.append("reading back failed: \(error)")
        }
        var report = FaultChecker.check(fault: fault, produced: history.produced, read: read)
        notes += highWatermarks.sorted { $0.key < $1.key }.map { "partition \($0.key): high watermark \($0.value), leader \(leader(of: UInt32($0.key)).map(String.init) ?? "none")" }
        await stopBrokers()
        if highWatermarks.isEmpty { report.replicaProblems.append("no high watermark known: the copies were not compared") }
        for (partition, highWatermark) in highWatermarks.sorted(by: { $0.key < $1.key }) {
            var copies: [String: String] = [:]
            for id in ids {
                if let path = broker(id).partitionDirectory(topic: Self.topic, partition: partition) { copies["\(id)"] = path }
            }
            if copies.count < ids.count { report.replicaProblems.append("\(Self.topic)/\(partition): only brokers \(copies.keys.sorted()) hold a copy") }
            report.replicaProblems += ReplicaCopies.compare(partition: "\(Self.topic)/\(partition)", copies: copies, highWatermark: highWatermark)
        }
        // A leader that acknowledged what an in-sync replica did not hold says so in its
        // log (Broker+Produce): a broken promise even when a later read happens to find
        // the records.
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in logs.sorted() where name.hasPrefix("broker-") && name.hasSuffix(".err") {
            let text = (try? String(contentsOfFile: directory.path(name), encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.contains("acks=all answered for a batch an in-sync replica does not hold") {
                report.replicaProblems.append("\(name): \(line)")
            }
        }
        report.notes = notes
        report.crashes = crashes
        report.interruption = interruption.map { "\($0)" }
        let text = "\(report)\n"
        print(text)
        try? text.write(toFile: directory.path("report-\(fault.filter { $0.isLetter || $0.isNumber })".prefix(200) + ".txt"), atomically: true, encoding: .utf8)
        if let shared = ProcessInfo.processInfo.environment["SLUICE_FAULT_REPORT"], let handle = FileHandle(forWritingAtPath: shared) ?? {
            FileManager.default.createFile(atPath: shared, contents: nil) ? FileHandle(forWritingAtPath: shared) : nil
        }() {
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try? handle.close()
        }
        return report
    }

    /// Brokers that exited without the test stopping them.
    var unexpectedExits: [String] { ids.compactMap { broker($0).unexpectedExit } }

    /// Every partition's records from its leader, earliest to the high watermark the
    /// leader describes, and those watermarks.
    func readBack() async throws -> (records: [ReadRecord], highWatermarks: [Int: Int64]) {
        let admin = try await SluiceAdminClient(bootstrap: bootstrap)
        let described: TopicDescription
        do {
            described = try await admin.describeTopic(named: Self.topic)
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
        var records: [ReadRecord] = []
        var highWatermarks: [Int: Int64] = [:]
        for partition in described.partitions {
            let index = Int(partition.partition)
            highWatermarks[index] = partition.highWatermark
            guard partition.highWatermark > 0 else { continue }
            records += try await read(partition: index, below: partition.highWatermark)
        }
        return (records, highWatermarks)
    }

    /// Bounded by a hang guard far above how long reading a few hundred records takes.
    private func read(partition: Int, below highWatermark: Int64) async throws -> [ReadRecord] {
        let consumer = Consumer(bootstrap: bootstrap, topic: Self.topic, partitions: [partition: .earliest])
        let records = try await withThrowingTaskGroup(of: [ReadRecord]?.self) { group in
            group.addTask {
                var records: [ReadRecord] = []
                for try await record in consumer {
                    let decoded = FaultRecordValue.decode(record.value)
                    records.append(ReadRecord(
                        partition: partition, offset: record.offset, key: decoded?.key ?? "?", sequence: decoded?.sequence ?? -1))
                    if record.offset >= highWatermark - 1 { break }
                }
                return records
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let records else { throw NotObserved(description: "partition \(partition) not read up to \(highWatermark) within 60 s") }
        return records
    }
}
