// Transport benchmark: produce N records of 1 KiB through the real Swift `Producer`, then
// read them back over one Subscribe stream, against a running broker. An engineer's
// harness for profiling the wire and the broker's hot paths (docs/benchmarks-perf-notes.md);
// the user-facing benchmark is `sluice bench`. bench/wire.sh starts a release broker with
// fsync never and runs this against it:
//
//   bench/wire.sh                      # or, with a broker already listening:
//   swift run -c release --package-path bench SluiceWireBench 127.0.0.1:9092
//
// Environment (all optional): SLUICE_WIRE_RECORDS (default 1,000,000), SLUICE_WIRE_RECORD_BYTES
// (1024), SLUICE_WIRE_PARTITIONS (1), SLUICE_WIRE_BATCH_BYTES (producer batch, 512 KiB),
// SLUICE_WIRE_LINGER_MS (5), SLUICE_WIRE_ACKS (leader: none, leader, all),
// SLUICE_WIRE_PHASES (produce,read,consume: which phases run; read counts raw batch bytes
// on a Subscribe stream, consume decodes every record through `Consumer`),
// SLUICE_WIRE_CLIENT_WINDOW / _BUFFER / _FRAME (the client's initialWindowBytes,
// inboundBufferBytes, maxFrameBytes), SLUICE_WIRE_READ_MAX_BYTES (the read phase's
// SubscribeRequest.max_bytes; 0, the default, is the broker's 1 MiB).
import Glibc
import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire

// Everything runs off the main actor: top-level code is main-actor isolated, and every await
// from it (one per record in the produce loop) would cost two thread switches.
func runBenchmark() async throws {
    let environment = { (name: String) -> String? in getenv(name).map { String(cString: $0) } }
    func setting(_ name: String, _ fallback: Int) -> Int { environment(name).flatMap { Int($0) } ?? fallback }

    let target = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:9092"
    guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
        fatalError("usage: SluiceWireBench host:port")
    }
    var address = BrokerAddress(host: String(target[..<colon]), port: port)
    // Client transport settings to try before they become defaults (nil keeps the default).
    if let bytes = environment("SLUICE_WIRE_CLIENT_WINDOW").flatMap({ Int($0) }) { address.transport.initialWindowBytes = bytes }
    if let bytes = environment("SLUICE_WIRE_CLIENT_BUFFER").flatMap({ Int($0) }) { address.transport.inboundBufferBytes = bytes }
    if let bytes = environment("SLUICE_WIRE_CLIENT_FRAME").flatMap({ Int($0) }) { address.transport.maxFrameBytes = bytes }
    let recordCount = setting("SLUICE_WIRE_RECORDS", 1_000_000)
    let recordBytes = setting("SLUICE_WIRE_RECORD_BYTES", 1024)
    let partitions = setting("SLUICE_WIRE_PARTITIONS", 1)
    let phases = Set((environment("SLUICE_WIRE_PHASES") ?? "produce,read,consume").split(separator: ",").map(String.init))
    let topic = "wirebench-\(getpid())-\(Int.random(in: 0..<1_000_000))"
    var logger = Logger(label: "sluice.wirebench")
    logger.logLevel = .warning

    func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    func report(_ phase: String, records: Int, bytes: Int, elapsed: Duration) {
        let time = seconds(elapsed)
        print(
            "\(phase): \(records) records, \(bytes) bytes in \((time * 100).rounded() / 100) s: "
                + "\(Int(Double(records) / time)) msgs/s, \((Double(bytes) / 1e5 / time).rounded() / 10) MB/s")
    }

    let admin = SluiceAdminClient(connection: try await address.connect(logger: logger))
    _ = try await admin.createTopic(CreateTopicRequest(name: topic, partitions: UInt32(partitions), replicationFactor: 1))
    await admin.close()
    print("topic \(topic): \(partitions) partition(s), \(recordCount) records of \(recordBytes) bytes")

    if phases.contains("produce") {
        var configuration = ProducerConfiguration()
        configuration.acks =
            switch environment("SLUICE_WIRE_ACKS") ?? "leader" {
            case "none": .none
            case "all": .all
            default: .leader
            }
        configuration.linger = .milliseconds(setting("SLUICE_WIRE_LINGER_MS", 5))
        configuration.maxBatchBytes = setting("SLUICE_WIRE_BATCH_BYTES", 512 * 1024)
        configuration.maxBufferedBytes = max(configuration.maxBufferedBytes, 8 * configuration.maxBatchBytes)
        let producer = Producer(address: address, configuration: configuration, logger: logger)
        // One value for every record: the benchmark measures the path, not the payload's making.
        let value = ByteBuffer(repeating: 0x5A, count: recordBytes)
        let start = ContinuousClock.now
        var last: Delivery?
        for index in 0..<recordCount {
            last = try await producer.enqueue(topic: topic, value: value, partition: index % partitions)
        }
        await producer.flush()
        let elapsed = ContinuousClock.now - start
        if let last { _ = try await last.result() }
        report("produce", records: recordCount, bytes: recordCount * recordBytes, elapsed: elapsed)
        await producer.close()
    }

    if phases.contains("read") {
        // Raw catch-up read: batches as the broker sends them, counted, not decoded into records.
        let connection = try await address.connect(logger: logger)
        let start = ContinuousClock.now
        let call = try await ProtobufCall<SubscribeRequest, SubscribeResponse>(connection, path: "/sluice.v1.Broker/Subscribe")
        try await call.send(SubscribeRequest(
            topic: topic, defaultStart: StartPosition(position: .earliest(true)),
            maxBytes: UInt32(setting("SLUICE_WIRE_READ_MAX_BYTES", 0))))
        try await call.finishSending()
        var records = 0
        var bytes = 0
        for try await response in call.responses {
            for batch in response.batches {
                records += Int(batch.recordCount)
                bytes += batch.records.readableBytes
            }
            if records >= recordCount { break }
        }
        let elapsed = ContinuousClock.now - start
        call.cancel()
        report("read (raw batches)", records: records, bytes: bytes, elapsed: elapsed)
        await connection.close()
    }

    if phases.contains("consume") {
        let consumer = Consumer(address: address, topic: topic, defaultStart: .earliest, logger: logger)
        let start = ContinuousClock.now
        var records = 0
        var bytes = 0
        for try await record in consumer {
            records += 1
            bytes += record.value.readableBytes
            if records >= recordCount { break }
        }
        report("consume (records)", records: records, bytes: bytes, elapsed: ContinuousClock.now - start)
    }
}

try await Task.detached { try await runBenchmark() }.value
