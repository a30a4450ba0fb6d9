/// The broker's one wording of a topic or partition that cannot be used. Every path that
/// looks one up (Produce, Subscribe, the group coordinator's commits and resets, the
/// tools' accessors) throws these, so a client reads the same message whichever call it
/// made.
extension BrokerError {
    public static func topicNotFound(_ name: String) -> BrokerError {
        BrokerError(.topicNotFound, "topic \(quoting(name)) does not exist")
    }

    /// A topic that existed when the call began and is gone now.
    static func topicDeleted(_ name: String) -> BrokerError {
        BrokerError(.topicNotFound, "topic \"\(name)\" was deleted")
    }

    static func unknownPartition(_ index: UInt32, topic: String, partitionCount: UInt32) -> BrokerError {
        BrokerError(.unknownPartition, "topic \"\(topic)\" has \(partitionCount) partition(s); partition \(index) does not exist")
    }

    static func offline(partition index: UInt32, topic: String, reason: String) -> BrokerError {
        BrokerError(.offline, "partition \(index) of topic \"\(topic)\" is offline: \(reason)")
    }

    /// In a cluster: the partition exists, but this broker is not one of its replicas.
    static func noReplicaHere(partition index: UInt32, topic: String) -> BrokerError {
        BrokerError(.notLeader, "partition \(index) of topic \"\(topic)\" has no replica on this broker; ask the Metadata RPC where its leader is")
    }

    static func notOpenYet(partition index: UInt32, topic: String) -> BrokerError {
        BrokerError(.notOpenYet, "partition \(index) of topic \"\(topic)\" is not open yet; retry")
    }
}
