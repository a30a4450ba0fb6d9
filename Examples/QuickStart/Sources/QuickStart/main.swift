// Creates a topic (if missing), publishes three keyed records, reads them back and ends.
// Usage: QuickStart [HOST:PORT]   (default 127.0.0.1:9092)
import Foundation
import NIOCore
import SluiceClient

let target = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:9092"
guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
    fatalError("usage: QuickStart [HOST:PORT]")
}
let address = BrokerAddress(host: String(target[..<colon]), port: port)

func quickStart() async throws {
    // The topic, created once: a second run finds it there.
    let admin = try await SluiceAdminClient(address: address)
    try await admin.createTopic(name: "quickstart-orders", partitions: 3, existingIsFine: true)
    await admin.close()

    // Publish: records with one key go to one partition, in order.
    let producer = Producer(address: address)
    var written: [RecordMetadata] = []
    for (key, value) in [("alice", "ordered a book"), ("bob", "ordered a lamp"), ("alice", "paid")] {
        let placed = try await producer.send(topic: "quickstart-orders", key: ByteBuffer(string: key), value: ByteBuffer(string: value))
        print("wrote partition \(placed.partition) offset \(placed.offset): \(key) \(value)")
        written.append(placed)
    }
    await producer.close()

    // Read back exactly what was written: a Consumer is an endless sequence (it waits for new
    // records), so this one starts at each written record and stops once it has them all.
    var starts: [Int: ConsumerStart] = [:]
    for placed in written {
        if case .offset(let known)? = starts[placed.partition], known <= placed.offset { continue }
        starts[placed.partition] = .offset(placed.offset)
    }
    var missing = Set(written.map { "\($0.partition)/\($0.offset)" })
    for try await record in Consumer(address: address, topic: "quickstart-orders", partitions: starts) {
        guard missing.remove("\(record.partition)/\(record.offset)") != nil else { continue }
        print("read partition \(record.partition) offset \(record.offset): \(String(buffer: record.key ?? ByteBuffer())) \(String(buffer: record.value))")
        if missing.isEmpty { break }
    }
    print("done")
}

do {
    try await quickStart()
} catch {
    FileHandle.standardError.write(Data("QuickStart: \(error)\n".utf8))
    exit(1)
}
