// The README's "From Swift" program: creates its topic (if missing), publishes three keyed
// records, reads every partition up to its high watermark and ends. The body of
// quickStart() is the README's snippet with the broker's address taken from the command line.
// Usage: QuickStart [HOST:PORT]   (default 127.0.0.1:9092)
import Foundation
import SluiceClient

let target = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:9092"
guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
    fatalError("usage: QuickStart [HOST:PORT]")
}
let address = BrokerAddress(host: String(target[..<colon]), port: port)

func quickStart() async throws {
    let admin = try await SluiceAdminClient(address: address)
    try await admin.createTopic(name: "quickstart-orders", partitions: 3, existingIsFine: true)

    let producer = Producer(address: address)
    for (key, value) in [("alice", "ordered a book"), ("bob", "ordered a lamp"), ("alice", "paid")] {
        let placed = try await producer.send(topic: "quickstart-orders", key: ByteBuffer(string: key),
                                            value: ByteBuffer(string: value))
        print("wrote partition \(placed.partition) offset \(placed.offset): \(key) \(value)")
    }
    await producer.close()

    // A Consumer waits for new records for ever: this one reads every partition up to its high
    // watermark (the end of what is committed now), then stops.
    var ends: [Int: Int64] = [:]
    for partition in try await admin.describeTopic(named: "quickstart-orders").partitions
    where partition.highWatermark > partition.logStartOffset {
        ends[Int(partition.partition)] = partition.highWatermark
    }
    await admin.close()
    var reading = ends
    for try await record in Consumer(address: address, topic: "quickstart-orders",
                                     partitions: ends.mapValues { _ in .earliest }) {
        print("read partition \(record.partition) offset \(record.offset): "
              + "\(String(buffer: record.key ?? ByteBuffer())) \(String(buffer: record.value))")
        if record.offset + 1 >= ends[record.partition, default: 0] { reading[record.partition] = nil }
        if reading.isEmpty { break }
    }
    print("done")
}

do {
    try await quickStart()
} catch {
    FileHandle.standardError.write(Data("QuickStart: \(error)\n".utf8))
    exit(1)
}
