import Foundation
import NIOCore
import SluiceClient

/// The writes a fault happens under: `keys` keys, each written in sequence 0, 1, 2, ...
/// (round robin across keys) with acks=all by one producer that keeps up to `window`
/// records in flight, so a fault always finds some unanswered. Every send and every
/// acknowledgement goes into the history. Bounded: `records` sends, each answered or
/// failed within the producer's delivery timeout.
struct FaultWorkload: Sendable {
    var keys = 6
    var records = 300
    var window = 16
    /// Idempotent (the default; $SLUICE_FAULT_IDEMPOTENT=0 turns it off): a retry after a
    /// lost answer must not write the record twice. Without it a retried batch whose first
    /// answer was lost is written twice, and the checker counts a duplicate.
    var idempotent = ProcessInfo.processInfo.environment["SLUICE_FAULT_IDEMPOTENT"] != "0"

    /// Produces `records` records (keys' sequences continue from `firstSequence`); returns
    /// once every one is answered or failed.
    func run(bootstrap: [BrokerAddress], history: FaultHistory, firstSequence: Int = 0) async {
        var configuration = ProducerConfiguration()
        configuration.acks = .all
        configuration.idempotent = idempotent
        configuration.linger = .milliseconds(2)
        configuration.deliveryTimeout = .seconds(30)
        configuration.requestTimeout = .seconds(8)
        let producer = Producer(bootstrap: bootstrap, configuration: configuration)
        var inFlight: [(index: Int, delivery: Delivery)] = []
        for number in 0..<records {
            let key = "k\(number % keys)"
            let sequence = firstSequence + number / keys
            let index = history.sent(key: key, sequence: sequence)
            do {
                let delivery = try await producer.enqueue(
                    topic: FaultCluster.topic, key: ByteBuffer(string: key), value: FaultRecordValue.encode(key: key, sequence: sequence))
                inFlight.append((index, delivery))
            } catch {
                history.failed(index, error)
            }
            if inFlight.count >= window { await settle(inFlight.removeFirst(), history) }
        }
        for pending in inFlight { await settle(pending, history) }
        await producer.close()
    }

    private func settle(_ pending: (index: Int, delivery: Delivery), _ history: FaultHistory) async {
        do {
            let metadata = try await pending.delivery.result()
            history.acknowledge(pending.index, partition: metadata.partition, offset: metadata.offset)
        } catch {
            history.failed(pending.index, error)
        }
    }
}
