import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// Compressed batches through a real `sluice serve`, and a surge against a broker with a
/// slow disk and a small produce memory budget (docs/profiles.md).
///
/// The surge runs a bounded record count by default (seconds); SLUICE_SOAK=1 runs it for
/// 60 s instead, SLUICE_SURGE_RECORDS sets the per-producer count.
@Suite("Compression and surges against sluice serve", .serialized, .timeLimit(.minutes(5)))
struct SurgeAndCompressionTests {
    static let soak = ProcessInfo.processInfo.environment["SLUICE_SOAK"].map { $0 != "" && $0 != "0" } == true

    @Test("zstd and lz4 batches are stored as sent and read back by a consumer", arguments: [RecordCompression.zstd, .lz4])
    func compressedBatches(codec: RecordCompression) async throws {
        try await withBroker(["--fsync", "never"]) { broker in
            let topic = "compressed-\(codec)"
            try await broker.createTopic(topic, partitions: 1)
            var configuration = ProducerConfiguration()
            configuration.compression = codec
            configuration.linger = .seconds(3600)  // one batch, closed by flush
            let producer = Producer(address: broker.address, configuration: configuration)
            let values = (0..<200).map { "record \($0) " + String(repeating: "abc", count: $0 % 40) }
            var deliveries: [Delivery] = []
            for value in values {
                deliveries.append(try await producer.enqueue(topic: topic, value: ByteBuffer(string: value), partition: 0))
            }
            await producer.flush()
            for (index, delivery) in deliveries.enumerated() { #expect(try await delivery.result().offset == Int64(index)) }
            await producer.close()

            // Stored as sent: the batch comes back with its codec bits and compressed bytes.
            let connection = try await broker.address.connect(logger: .init(label: "test"))
            let call = try await ProtobufCall<SubscribeRequest, SubscribeResponse>(
                connection, path: "/sluice.v1.Broker/Subscribe", timeout: .seconds(30))
            try await call.send(SubscribeRequest(topic: topic, partitions: [.init(partition: 0, start: StartPosition(position: .earliest(true)))]))
            try await call.finishSending()
            var responses = call.responses.makeAsyncIterator()
            let first = try #require(try await responses.next()?.batches.first)
            call.cancel()
            await connection.close()
            #expect(first.attributes & 7 == codec.rawValue)
            let uncompressed = values.reduce(0) { $0 + $1.utf8.count }
            #expect(first.records.readableBytes < uncompressed / 2)
            #expect(try codec.decompress(first.records, maxBytes: 1 << 20).readableBytes > uncompressed)

            let records = try await read(Consumer(address: broker.address, topic: topic), count: values.count)
            #expect(records.map { String(buffer: $0.value) } == values)
            #expect(records.map(\.offset) == Array(0..<Int64(values.count)))
        }
    }

    @Test("sluice produce --compression zstd and --profile throughput; sluice consume reads the lines back")
    func commandLine() async throws {
        try await withBroker([]) { broker in
            try await broker.createTopic("cli-compressed", partitions: 1)
            let lines = (0..<50).map { "line \($0) with some repeated text text text" }
            for flags in [["--compression", "zstd", "--compression-level", "9"], ["--profile", "throughput"], ["--profile", "latency", "--compression", "lz4"]] {
                let produced = try await runSluice(
                    ["produce", "--broker", broker.brokerArgument, "--topic", "cli-compressed"] + flags,
                    input: lines.joined(separator: "\n") + "\n", in: broker.root)
                #expect(produced.status == 0, "\(flags): \(produced.stderr)")
            }
            let consumed = try await runSluice(
                ["consume", "--broker", broker.brokerArgument, "--topic", "cli-compressed", "--profile", "throughput"],
                in: broker.root)
            #expect(consumed.status == 0, "\(consumed.stderr)")
            // Text output: partition, offset, timestamp, key, value, tab-separated.
            let values = consumed.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).last.map(String.init) }
            #expect(values == (lines + lines + lines).map { Optional($0) })
            let refused = try await runSluice(
                ["produce", "--broker", broker.brokerArgument, "--topic", "cli-compressed", "--compression", "gzip"],
                input: "x\n", in: broker.root)
            #expect(refused.status != 0 && refused.stderr.contains("compression"))
        }
    }

    /// VmRSS of a process, in bytes, from /proc/PID/status.
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }

    /// Memory a broker may use on top of its idle RSS and the budget under this surge: per
    /// producer connection its stream's unconsumed window and inbound buffer
    /// (1 MiB + 256 KiB) and one request held while waiting for the budget, allocator
    /// slack (ByteBuffers grow in powers of two, malloc keeps freed memory per thread), and
    /// the append and sync threads' stacks. 48 MiB holds with a wide margin; docs/profiles.md.
    static let fixedOverheadBytes = 48 * 1024 * 1024

    static func surgeValue(producer: Int, sequence: Int, filler: String) -> String {
        "\(producer):\(sequence):" + filler
    }

    @Test("a surge against a slow disk and an 8 MiB budget: only backpressure, bounded memory, every ack readable",
          .timeLimit(.minutes(4)))
    func surge() async throws {
        let budget = 8 * 1024 * 1024
        // fdatasync made 100 ms slower: the disk takes at most about budget / 100 ms.
        try await withBroker(["--fsync", "always", "--max-inflight-bytes", "\(budget)", "--test-sync-delay-ms", "100"]) { broker in
            let topic = "surge"
            let producers = 4
            try await broker.createTopic(topic, partitions: UInt32(producers))
            let pid = try #require(broker.process?.processIdentifier)
            let idle = try #require(Self.residentBytes(pid))

            let environment = ProcessInfo.processInfo.environment
            let perProducer = environment["SLUICE_SURGE_RECORDS"].flatMap(Int.init) ?? (Self.soak ? Int.max : 4000)
            let deadline = ContinuousClock.now + (Self.soak ? .seconds(60) : .seconds(120))
            let filler = String(repeating: "s", count: 1000)

            // Sampling RSS is measurement, not synchronisation: it runs until told to stop.
            let sampler = Task { () -> Int in
                var peak = 0
                while !Task.isCancelled {
                    peak = max(peak, Self.residentBytes(pid) ?? 0)
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return peak
            }
            // Each producer its own connection and partition; far more buffered (32 MiB
            // each) than the broker may hold.
            // Acknowledged records by (partition << 40 | offset): their sequence number,
            // from which the value is rebuilt (so a 60 s soak does not hoard values).
            let acknowledged = try await withThrowingTaskGroup(of: [Int64: Int].self) { group in
                for index in 0..<producers {
                    group.addTask {
                        var configuration = ProducerConfiguration()
                        configuration.acks = .all
                        configuration.maxBatchBytes = 256 * 1024
                        configuration.deliveryTimeout = .seconds(600)
                        configuration.requestTimeout = .seconds(120)
                        let producer = Producer(address: broker.address, configuration: configuration)
                        var pending: [(sequence: Int, delivery: Delivery)] = []
                        var answers: [Int64: Int] = [:]
                        func settle(_ entry: (sequence: Int, delivery: Delivery)) async throws {
                            let metadata = try await entry.delivery.result()  // throws on any error but backpressure
                            answers[Int64(index) << 40 | metadata.offset] = entry.sequence
                        }
                        var sequence = 0
                        while sequence < perProducer && ContinuousClock.now < deadline {
                            let text = Self.surgeValue(producer: index, sequence: sequence, filler: filler)
                            pending.append((sequence, try await producer.enqueue(
                                topic: topic, value: ByteBuffer(string: text), partition: index)))
                            sequence += 1
                            if pending.count >= 16_384 {
                                for entry in pending { try await settle(entry) }
                                pending.removeAll(keepingCapacity: true)
                            }
                        }
                        for entry in pending { try await settle(entry) }
                        await producer.close()
                        return answers
                    }
                }
                var all: [Int64: Int] = [:]
                for try await answers in group { all.merge(answers) { first, _ in first } }
                return all
            }
            sampler.cancel()
            let peak = await sampler.value
            let bound = idle + budget + Self.fixedOverheadBytes
            #expect(peak > 0 && peak <= bound, "peak RSS \(peak >> 20) MiB, idle \(idle >> 20) MiB, bound \(bound >> 20) MiB")

            // Every acknowledged record is there, at its offset, with its value.
            let records = try await read(Consumer(address: broker.address, topic: topic), count: acknowledged.count)
            #expect(records.count == acknowledged.count)
            var matched = 0
            for record in records {
                guard let sequence = acknowledged[Int64(record.partition) << 40 | record.offset] else { continue }
                if String(buffer: record.value) == Self.surgeValue(producer: record.partition, sequence: sequence, filler: filler) {
                    matched += 1
                }
            }
            #expect(matched == acknowledged.count)
            print("surge: \(acknowledged.count) records acknowledged, idle RSS \(idle >> 20) MiB, peak \(peak >> 20) MiB, bound \(bound >> 20) MiB")
        }
    }
}
