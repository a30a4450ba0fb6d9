extension Broker {
    /// This broker's copy of partition `index` of topic `name`, open, for the follower
    /// that copies the leader's log into it (SluiceService's `ReplicaFetcher`): the same
    /// lookup Produce and Subscribe make, without the leadership check.
    public func followedPartition(topic name: String, index: UInt32) throws(BrokerError) -> Partition {
        try partition(topic: name, index: index)
    }
}
